//! `cargo xtask init` through the real binary, in a scratch project root holding the
//! committed example files: what it writes, what it refuses, and that its production file
//! passes the preflight it exists to satisfy.

use std::collections::BTreeMap;
use std::fs;

use crate::support::compose::compose_env;
use crate::support::sandbox::Sandbox;

fn vars(text: &str) -> BTreeMap<String, String> {
    let file = xtask::envfile::parse(text, &|_| None);
    assert_eq!(file.malformed, []);
    file.vars()
}

/// Runs init and checks it succeeded; returns the variables of the file it wrote.
fn init(sandbox: &Sandbox, args: &[&str], file: &str) -> BTreeMap<String, String> {
    let run = sandbox.xtask(&[&["init"], args].concat());
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(sandbox.mode(file), 0o600);
    vars(&sandbox.read(file))
}

fn assert_fresh_secrets(vars: &BTreeMap<String, String>) {
    let key = &vars["SECRET_KEY"];
    assert!(key.len() >= 50 && key != "change-me", "{key:?}");
    assert!(vars["POSTGRES_PASSWORD"].len() >= 16 && vars["POSTGRES_PASSWORD"] != "change-me");
}

#[test]
fn init_writes_a_private_dev_file_from_the_example() {
    let sandbox = Sandbox::with_examples();
    let vars = init(&sandbox, &[], ".env");
    assert_eq!((vars["DEBUG"].as_str(), vars["ALLOWED_HOSTS"].as_str()), ("1", "localhost,127.0.0.1"));
    assert_eq!(vars["POSTGRES_HOST"], "db");
    assert_fresh_secrets(&vars);
    // The example's comments document every variable: they stay.
    let example = sandbox.read("docker/dev.env.example");
    assert_eq!(sandbox.read(".env").lines().next(), example.lines().next());
    assert_eq!(sandbox.names(), [".env"]);
}

#[test]
fn every_run_draws_new_secrets() {
    let (one, two) = (Sandbox::with_examples(), Sandbox::with_examples());
    let (one, two) = (init(&one, &[], ".env"), init(&two, &[], ".env"));
    assert_ne!(one["SECRET_KEY"], two["SECRET_KEY"]);
    assert_ne!(one["POSTGRES_PASSWORD"], two["POSTGRES_PASSWORD"]);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let sandbox = Sandbox::with_examples();
    init(&sandbox, &[], ".env");
    let before = sandbox.snapshot();
    let run = sandbox.xtask(&["init"]);
    let line = "error: .env already exists: pass --force to replace it (the old file is kept as .env.bak-<UTC time>)";
    assert_eq!((run.code, run.stderr_lines()), (1, vec![line]));
    assert_eq!(sandbox.snapshot(), before);
}

#[test]
fn force_keeps_a_private_backup_of_the_old_file() {
    let sandbox = Sandbox::with_examples();
    init(&sandbox, &["--prod", "--host", "example.com"], ".env.prod");
    let old = sandbox.read(".env.prod");
    let run = sandbox.xtask(&["init", "--prod", "--host", "example.com", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    let backups: Vec<String> = sandbox.names().into_iter().filter(|n| n.starts_with(".env.prod.bak-")).collect();
    assert_eq!(backups.len(), 1, "{:?}", sandbox.names());
    assert_eq!(sandbox.read(&backups[0]), old);
    assert_eq!(sandbox.mode(&backups[0]), 0o600);
    assert_ne!(vars(&sandbox.read(".env.prod"))["SECRET_KEY"], vars(&old)["SECRET_KEY"]);
    assert!(run.stdout.contains(&format!("the old file is kept as {}", sandbox.root().join(&backups[0]).display())));
}

#[test]
fn prod_writes_the_host_and_passes_the_preflight() {
    let sandbox = Sandbox::with_examples();
    let vars = init(&sandbox, &["--prod", "--host", "Example.com"], ".env.prod");
    assert_eq!(vars["DEBUG"], "0");
    assert_eq!(vars["ALLOWED_HOSTS"], "example.com");
    assert_eq!(vars["CSRF_TRUSTED_ORIGINS"], "https://example.com");
    assert_eq!(vars["POSTGRES_HOST"], "db");
    assert_fresh_secrets(&vars);
    let check = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    assert_eq!((check.code, check.stderr.as_str()), (0, ""), "{check:?}");
    // The bundled database and Redis, and the template's worker and scheduler.
    let files = "/docker/compose.db.yml -f ROOT/docker/compose.redis.yml -f ROOT/.stack/processes/prod.yml";
    let files = files.replace("ROOT", &sandbox.root().display().to_string());
    assert!(check.stdout.contains(&format!("{files} build web\n")), "{check:?}");
    assert!(check.stdout.contains(&format!("{files} run --name site-prod-oneoff-")), "{check:?}");
    assert_eq!(sandbox.xtask(&["--dry-run", "prod"]).code, 0);
}

#[test]
fn a_local_tls_mode_gets_its_ca_and_certificate_at_once() {
    let sandbox = Sandbox::with_examples();
    let dry = sandbox.xtask(&["--dry-run", "init", "--prod", "--host", "shop.test"]);
    assert!(dry.stdout.contains("# would write a local CA and a certificate for shop.test under certs/"), "{dry:?}");
    assert!(!sandbox.root().join("certs").exists(), "the dry run wrote certificates");
    let vars = init(&sandbox, &["--prod", "--host", "shop.test"], ".env.prod");
    assert_eq!(vars["TLS_MODE"], "local");
    for key in ["certs/ca-key.pem", "certs/site-key.pem"] {
        assert_eq!(sandbox.mode(key), 0o600, "{key}");
        assert!(sandbox.read(key).starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
    let ca = sandbox.xtask(&["tls", "ca"]);
    assert_eq!((ca.code, ca.stdout.trim()), (0, sandbox.root().join("certs/ca.pem").to_str().unwrap()), "{ca:?}");
    // openssl, an independent reader, accepts the chain for the host and refuses another name.
    let verify = |host: &str| {
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile", "certs/ca.pem", "-verify_hostname", host, "certs/site.pem"])
            .current_dir(sandbox.root())
            .output()
            .unwrap()
    };
    let good = verify("shop.test");
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stdout) + String::from_utf8_lossy(&good.stderr));
    assert!(!verify("other.test").status.success(), "the certificate covers a name it was not made for");
}

#[test]
fn files_mode_is_written_on_request_and_an_unknown_one_refused() {
    let sandbox = Sandbox::with_examples();
    let vars = init(&sandbox, &["--prod", "--host", "example.com", "--tls", "files"], ".env.prod");
    assert_eq!((vars["TLS_MODE"].as_str(), vars["TLS_CERT_FILE"].as_str()), ("files", ""));
    assert!(!sandbox.root().join("certs").exists());
    let check = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stderr.contains("TLS_CERT_FILE is empty (TLS_MODE=files): set it to the path of"), "{check:?}");
    let other = Sandbox::with_examples();
    let run = other.xtask(&["init", "--prod", "--host", "example.com", "--tls", "letsencrypt"]);
    let line = r#"error: --tls "letsencrypt" is not a TLS mode: use local, files or acme"#;
    assert_eq!((run.code, run.stderr_lines()), (1, vec![line]));
    assert!(other.names().is_empty(), "{:?}", other.names());
}

#[test]
fn acme_mode_is_written_with_a_bootstrap_certificate_and_asks_for_an_email() {
    let sandbox = Sandbox::with_examples();
    let run = sandbox.xtask(&["init", "--prod", "--host", "shop.example.com", "--tls", "acme"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("TLS_MODE=acme: set ACME_EMAIL in .env.prod"), "{run:?}");
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"), "{run:?}");
    let vars = xtask::envfile::parse(&sandbox.read(".env.prod"), &|_| None).vars();
    assert_eq!((vars["TLS_MODE"].as_str(), vars["ACME_EMAIL"].as_str()), ("acme", ""));
    let mut certs: Vec<String> = fs::read_dir(sandbox.root().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    certs.sort();
    assert_eq!(certs, ["acme-bootstrap-key.pem", "acme-bootstrap.pem"], "only the bootstrap pair, no local CA");
    let check = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stderr.contains("ACME_EMAIL is empty (TLS_MODE=acme)"), "{check:?}");
}

#[test]
fn db_host_points_production_at_a_managed_database() {
    let sandbox = Sandbox::with_examples();
    let vars = init(&sandbox, &["--prod", "--host", "example.com", "--db-host", "pg.internal.example"], ".env.prod");
    assert_eq!(vars["POSTGRES_HOST"], "pg.internal.example");
    let check = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(!check.stdout.contains("compose.db.yml"), "{check:?}");
}

#[test]
fn bad_flags_fail_with_one_line_and_write_nothing() {
    let cases: [(&[&str], &str); 6] = [
        (&["--prod"], "error: init --prod needs --host HOST, the site's public host name (e.g. --host example.com)"),
        (&["--host", "example.com"], "error: --host only applies to .env.prod: add --prod"),
        (
            &["--prod", "--host", "https://example.com"],
            r#"error: --host "https://example.com" has a scheme: pass a bare host name, e.g. --host example.com"#,
        ),
        (
            &["--prod", "--host", "example.com/shop"],
            r#"error: --host "example.com/shop" has a path: pass a bare host name, e.g. --host example.com"#,
        ),
        (
            &["--prod", "--host", "*"],
            r#"error: --host "*" is a wildcard, which would accept any Host header: pass a bare host name, e.g. --host example.com"#,
        ),
        (
            &["--prod", "--host", "example.com", "--db-host", "db:5432"],
            r#"error: --db-host "db:5432" has a port: pass a bare host name, e.g. --db-host db.example.com"#,
        ),
    ];
    for (args, line) in cases {
        let sandbox = Sandbox::with_examples();
        let run = sandbox.xtask(&[&["init"], args].concat());
        assert_eq!((run.code, run.stderr_lines(), run.stdout.as_str()), (1, vec![line], ""), "{args:?}");
        assert!(sandbox.names().is_empty(), "{:?}", sandbox.names());
    }
}

#[test]
fn dry_run_shows_the_file_with_secrets_masked_and_writes_nothing() {
    let sandbox = Sandbox::with_examples();
    let run = sandbox.xtask(&["--dry-run", "init", "--prod", "--host", "example.com"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let path = sandbox.root().join(".env.prod");
    assert_eq!(run.stdout.lines().next(), Some(format!("# would write {} (mode 0600):", path.display()).as_str()));
    let shown = vars(&run.stdout);
    assert_eq!(shown["SECRET_KEY"], "<64 random characters>");
    assert_eq!(shown["POSTGRES_PASSWORD"], "<random password>");
    assert_eq!(shown["ALLOWED_HOSTS"], "example.com");
    assert!(sandbox.names().is_empty(), "{:?}", sandbox.names());
}

#[test]
fn compose_reads_the_written_secrets_unchanged() {
    let sandbox = Sandbox::with_examples();
    init(&sandbox, &[], ".env");
    init(&sandbox, &["--prod", "--host", "example.com"], ".env.prod");
    for file in [".env", ".env.prod"] {
        let text = sandbox.read(file);
        let written =
            |key: &str| text.lines().find_map(|line| line.strip_prefix(&format!("{key}="))).unwrap().to_owned();
        let read = compose_env(&sandbox.root().join(file)).unwrap();
        assert_eq!(read["SECRET_KEY"], written("SECRET_KEY"), "{file}");
        assert_eq!(read["POSTGRES_PASSWORD"], written("POSTGRES_PASSWORD"), "{file}");
    }
}
