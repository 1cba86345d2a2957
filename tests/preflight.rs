//! The env file checks through the real binary: `check --prod` and `prod` refuse every bad
//! production file in tests/fixtures/env/prod with one exact line and start nothing; `check`
//! does the same for `.env`. Then the parser is held against Compose v2 itself.

use std::fs;

use crate::support::compose::compose_env;
use crate::support::repo_file;
use crate::support::sandbox::{Run, Sandbox};

const NEW_KEY: &str = "set 50 or more random characters, e.g. the output of python3 -c 'import secrets; print(secrets.token_urlsafe(50))'";
const NEW_PASSWORD: &str =
    "set a random password, e.g. the output of python3 -c 'import secrets; print(secrets.token_hex(16))'";

/// Each fixture is prod/good.env with one thing wrong (and a comment on line 1 saying what),
/// and the one line the preflight prints for it.
fn bad_prod_files() -> Vec<(&'static str, String)> {
    let lines = [
        ("debug-on", ".env.prod:2: DEBUG=True shows tracebacks and settings to every visitor: set DEBUG=0".to_owned()),
        ("debug-typo", r#".env.prod:2: DEBUG="ture" is not a boolean: use one of 0/1/true/false/yes/no"#.to_owned()),
        ("secret-key-missing", format!(".env.prod: SECRET_KEY is missing: {NEW_KEY}")),
        ("secret-key-short", format!(".env.prod:3: SECRET_KEY has only 23 characters: {NEW_KEY}")),
        ("secret-key-example", format!(".env.prod:3: SECRET_KEY is the example value change-me: {NEW_KEY}")),
        (
            "secret-key-insecure",
            format!(".env.prod:3: SECRET_KEY starts with django-insecure-, the mark of a development key: {NEW_KEY}"),
        ),
        (
            "allowed-hosts-empty",
            ".env.prod:4: ALLOWED_HOSTS is empty: set the site's host names, e.g. ALLOWED_HOSTS=example.com".to_owned(),
        ),
        (
            "allowed-hosts-star",
            ".env.prod:4: ALLOWED_HOSTS contains *, which accepts any Host header: list the site's host names".to_owned(),
        ),
        (
            "allowed-hosts-url",
            r#".env.prod:4: ALLOWED_HOSTS entry "https://example.com" is not a bare host name: write example.com"#.to_owned(),
        ),
        (
            "csrf-origin-no-scheme",
            r#".env.prod:5: CSRF_TRUSTED_ORIGINS entry "www.example.com" has no http:// or https:// scheme: write https://www.example.com"#.to_owned(),
        ),
        (
            "redis-no-password",
            ".env.prod:15: REDIS_URL has no password: a Redis any container can reach must ask for one: write redis://:PASSWORD@HOST:6379/0".to_owned(),
        ),
        (
            "redis-malformed",
            ".env.prod:16: REDIS_URL does not start with redis:// or rediss://: write it as redis://:PASSWORD@HOST:6379/0 (rediss:// for TLS)".to_owned(),
        ),
        (
            "redis-password-mismatch",
            ".env.prod:16: REDIS_URL's password is not REDIS_PASSWORD's: the bundled Redis asks for REDIS_PASSWORD: make the two the same (`cargo xtask init --prod --force` writes both)".to_owned(),
        ),
        ("password-missing", format!(".env.prod: POSTGRES_PASSWORD is missing: {NEW_PASSWORD}")),
        ("password-example", format!(".env.prod:9: POSTGRES_PASSWORD is the example value change-me: {NEW_PASSWORD}")),
        (
            "postgres-host-missing",
            ".env.prod: POSTGRES_HOST is missing: set db for the bundled database or the managed database's host name (without it Django uses SQLite)".to_owned(),
        ),
        (
            "malformed-line",
            r#".env.prod:8: "run migrations before starting" is not a variable name (it has a space): write NAME=value"#.to_owned(),
        ),
        (
            "unclosed-quote",
            r#".env.prod:14: SECURE_SSL_REDIRECT: the value opens with " but never closes it: add the closing ""#.to_owned(),
        ),
        (
            "bare-name",
            ".env.prod:11: HTTP_PORT has no `=`: write HTTP_PORT=value (a bare name takes its value from the shell running Compose)".to_owned(),
        ),
        (
            "interpolation-typo",
            ".env.prod:10: POSTGRES_DB: `${` starts an invalid variable reference: write ${NAME} or ${NAME:-default}, or $$ for a literal $".to_owned(),
        ),
        (
            "duplicate",
            ".env.prod:15: HTTP_PORT is set again (first on line 11); Compose uses this last one: keep only one".to_owned(),
        ),
        (
            "hsts-not-a-number",
            r#".env.prod:13: SECURE_HSTS_SECONDS="1y" is not a whole number of seconds: use e.g. 31536000 (one year)"#.to_owned(),
        ),
        (
            "ssl-redirect-typo",
            r#".env.prod:14: SECURE_SSL_REDIRECT="on" is not a boolean: use one of 0/1/true/false/yes/no"#.to_owned(),
        ),
        ("http-port-not-a-port", r#".env.prod:11: HTTP_PORT="80800" is not a port number: use one from 1 to 65535"#.to_owned()),
        (
            "workers-zero",
            r#".env.prod:12: GUNICORN_WORKERS="0" is not a positive whole number: use e.g. 3, or leave it empty for 2 per CPU + 1"#.to_owned(),
        ),
    ];
    lines.into_iter().collect()
}

fn fixture(path: &str) -> String {
    fs::read_to_string(repo_file(&format!("tests/fixtures/env/{path}"))).unwrap()
}

/// Runs `args` and checks it refused with exactly `lines` and the summary, and changed nothing.
fn assert_refused(sandbox: &Sandbox, args: &[&str], lines: &[String], summary: &str) {
    let before = sandbox.snapshot();
    let run = sandbox.xtask(args);
    let mut expected: Vec<&str> = lines.iter().map(String::as_str).collect();
    expected.push(summary);
    assert_eq!((run.code, run.stderr_lines(), run.stdout.as_str()), (1, expected, ""), "{args:?}");
    assert_eq!(sandbox.snapshot(), before, "{args:?} changed the project root");
}

fn prod_summary(count: usize) -> String {
    let count = if count == 1 { "1 problem".to_owned() } else { format!("{count} problems") };
    format!("error: .env.prod is not safe for production ({count} above); nothing was started")
}

#[test]
fn every_bad_production_file_is_refused_with_its_line_and_nothing_starts() {
    let cases = bad_prod_files();
    assert!(cases.len() >= 12);
    for (name, line) in cases {
        let sandbox = Sandbox::empty();
        sandbox.write(".env.prod", &fixture(&format!("prod/{name}.env")));
        for args in
            [["--dry-run", "check", "--prod"].as_slice(), &["--dry-run", "prod"], &["--dry-run", "prod", "--with-db"]]
        {
            assert_refused(&sandbox, args, std::slice::from_ref(&line), &prod_summary(1));
        }
    }
}

#[test]
fn every_bad_production_fixture_is_in_the_table() {
    let listed: Vec<String> = bad_prod_files().into_iter().map(|(name, _)| format!("{name}.env")).collect();
    let dir = fs::read_dir(repo_file("tests/fixtures/env/prod")).unwrap();
    for name in dir.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()) {
        assert!(
            listed.contains(&name) || ["good.env", "many.env"].contains(&name.as_str()),
            "{name} has no expected line"
        );
    }
}

#[test]
fn all_problems_are_reported_together_in_line_order() {
    let sandbox = Sandbox::empty();
    sandbox.write(".env.prod", &fixture("prod/many.env"));
    let lines = [
        ".env.prod:2: DEBUG=yes shows tracebacks and settings to every visitor: set DEBUG=0".to_owned(),
        format!(".env.prod:3: SECRET_KEY is the example value change-me: {NEW_KEY}"),
        ".env.prod:4: ALLOWED_HOSTS contains *, which accepts any Host header: list the site's host names".to_owned(),
        r#".env.prod:8: HTTP_PORT="http" is not a port number: use one from 1 to 65535"#.to_owned(),
        format!(".env.prod: POSTGRES_PASSWORD is missing: {NEW_PASSWORD}"),
    ];
    assert_refused(&sandbox, &["--dry-run", "check", "--prod"], &lines, &prod_summary(5));
}

/// The commands of a dry run, without its `#` comments.
fn plan_lines(run: &Run) -> Vec<&str> {
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    run.stdout.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn a_good_production_file_passes_and_check_plans_the_deploy_checks() {
    let sandbox = Sandbox::empty();
    sandbox.write(".env.prod", &fixture("prod/good.env"));
    let before = sandbox.snapshot();
    let check = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    let root = sandbox.root().display().to_string();
    let compose = format!(
        "cd {root} && WEB_IMAGE=site-web DJANGO_DIR=project-template DJANGO_DEPENDENCIES=project-template/requirements.txt \
         PYTHON_VERSION=3.13 DJANGO_SETTINGS=config.settings.prod DJANGO_PROJECT_SETTINGS=config.settings.prod \
         DJANGO_APP=config.wsgi DJANGO_WORKER_CLASS=sync BUILD_PACKAGES='' RUN_PACKAGES='' TLS_CERT_FILE={root}/certs/site.pem \
         TLS_KEY_FILE={root}/certs/site-key.pem TLS_CERT_SHA256='' NGINX_CONF_SHA256='' DJANGO_BUILD_CONTEXT={root}/.stack/build/prod \
         docker compose --project-name site-prod --project-directory {root} \
         --env-file {root}/.env.prod -f {root}/docker/compose.prod.yml -f {root}/docker/compose.db.yml \
         -f {root}/.stack/processes/prod.yml"
    );
    let lines = plan_lines(&check);
    assert_eq!(lines[0], format!("{compose} build web"));
    let (run, check_deploy) = (
        format!("{compose} run --name site-prod-oneoff-"),
        " -T --no-deps web python manage.py check --deploy --fail-level WARNING",
    );
    assert!(lines[1].starts_with(&run) && lines[1].ends_with(check_deploy), "{lines:?}");
    assert_eq!(lines.len(), 4, "build, run, read back, remove: {lines:?}");
    let prod = sandbox.xtask(&["--dry-run", "prod"]);
    let first_start = " up --detach --no-build --no-deps web beat worker nginx";
    assert!(plan_lines(&prod).iter().any(|line| line.ends_with(first_start)), "{prod:?}");
    assert_eq!(sandbox.snapshot(), before);
}

#[test]
fn check_without_prod_validates_dot_env_and_plans_django_check() {
    let sandbox = Sandbox::empty();
    sandbox.write(".env", &fixture("dev/good.env"));
    let run = sandbox.xtask(&["--dry-run", "check"]);
    let lines = plan_lines(&run);
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains(" --project-name site-dev ") && lines[0].ends_with(" build web"), "{lines:?}");
    assert!(lines[1].ends_with(" -T --no-deps web python manage.py check"), "{lines:?}");
}

#[test]
fn check_refuses_a_dot_env_that_would_be_misread() {
    let cases = [
        ("dev/debug-typo.env", r#".env:2: DEBUG="maybe" is not a boolean: use one of 0/1/true/false/yes/no"#),
        ("dev/dev-port.env", r#".env:3: DEV_PORT="localhost:8000" is not a port number: use one from 1 to 65535"#),
    ];
    for (path, line) in cases {
        let sandbox = Sandbox::empty();
        sandbox.write(".env", &fixture(path));
        let summary = "error: .env is not valid (1 problem above); nothing was started";
        assert_refused(&sandbox, &["--dry-run", "check"], &[line.to_owned()], summary);
    }
}

#[test]
fn a_missing_env_file_names_the_command_that_creates_it() {
    let sandbox = Sandbox::empty();
    let run = sandbox.xtask(&["--dry-run", "check", "--prod"]);
    let line = "error: .env.prod not found: run `cargo xtask init --prod --host HOST` to create it";
    assert_eq!((run.code, run.stderr_lines()), (1, vec![line]));
}

#[test]
fn the_example_files_parse_and_the_production_one_is_refused() {
    let sandbox = Sandbox::empty();
    sandbox.write(".env", &fs::read_to_string(repo_file("docker/dev.env.example")).unwrap());
    assert_eq!(plan_lines(&sandbox.xtask(&["--dry-run", "check"])).len(), 4);
    let example = fs::read_to_string(repo_file("docker/prod.env.example")).unwrap();
    sandbox.write(".env.prod", &example);
    let line_of = |key: &str| example.lines().position(|l| l.starts_with(&format!("{key}="))).unwrap() + 1;
    let lines = [
        format!(".env.prod:{}: SECRET_KEY is the example value change-me: {NEW_KEY}", line_of("SECRET_KEY")),
        format!(
            ".env.prod:{}: POSTGRES_PASSWORD is the example value change-me: {NEW_PASSWORD}",
            line_of("POSTGRES_PASSWORD")
        ),
        format!(
            ".env.prod:{}: REDIS_URL's password is the example value change-me: set a random one (`cargo xtask init --prod --force` writes REDIS_PASSWORD and REDIS_URL)",
            line_of("REDIS_URL")
        ),
    ];
    assert_refused(&sandbox, &["--dry-run", "prod"], &lines, &prod_summary(3));
}

#[test]
fn the_parser_reads_every_fixture_and_example_as_compose_v2_does() {
    let mut paths = vec![
        repo_file("docker/dev.env.example"),
        repo_file("docker/prod.env.example"),
        repo_file("tests/fixtures/env/syntax.env"),
    ];
    for dir in ["prod", "dev"] {
        let entries = fs::read_dir(repo_file(&format!("tests/fixtures/env/{dir}"))).unwrap();
        paths.extend(entries.map(|entry| entry.unwrap().path()));
    }
    for path in paths {
        let ours = xtask::envfile::parse(&fs::read_to_string(&path).unwrap(), &|_| None);
        let theirs = compose_env(&path);
        match (&theirs, ours.malformed.first()) {
            (Ok(vars), None) => assert_eq!(&ours.vars(), vars, "{}", path.display()),
            (Err(_), Some(_)) => {}
            // Stricter on purpose: a bare name would take its value from the shell.
            (Ok(_), Some(bad)) if bad.message.contains("has no `=`") => {}
            _ => panic!("{}: Compose says {theirs:?}, the parser {:?}", path.display(), ours.malformed),
        }
    }
}

// --- TLS ---------------------------------------------------------------------------------

mod tls {
    use std::time::{Duration, SystemTime};

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    /// A certificate for `hosts`, valid from `from` to `to` days from now, and its key.
    fn leaf(hosts: &[&str], from: i64, to: i64, issuer: Option<&Issuer<'_, KeyPair>>) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()).unwrap();
        let at = |days: i64| {
            let t = if days >= 0 {
                SystemTime::now() + DAY * days as u32
            } else {
                SystemTime::now() - DAY * (-days) as u32
            };
            time::OffsetDateTime::from(t)
        };
        (params.not_before, params.not_after) = (at(from), at(to));
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.pem(), key)
    }

    fn intermediate() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    }

    const HOSTS: &[&str] = &["example.com", "www.example.com"];

    /// good.env in `files` mode with the given chain and key (None: that file is not written).
    fn sandbox(chain: Option<&str>, key: Option<&KeyPair>, extra: &str) -> Sandbox {
        let sandbox = Sandbox::empty();
        let env = fixture("prod/good.env")
            + "TLS_MODE=files\nTLS_CERT_FILE=tls/chain.pem\nTLS_KEY_FILE=tls/key.pem\n"
            + extra;
        sandbox.write(".env.prod", &env);
        fs::create_dir(sandbox.root().join("tls")).unwrap();
        if let Some(chain) = chain {
            sandbox.write("tls/chain.pem", chain);
        }
        if let Some(key) = key {
            sandbox.write("tls/key.pem", &key.serialize_pem());
        }
        sandbox
    }

    /// `check --prod` refuses with exactly `line` (the root shown as ROOT) and changes nothing.
    fn assert_refused_with(sandbox: &Sandbox, line: &str) {
        let before = sandbox.snapshot();
        let run = sandbox.xtask(&["--dry-run", "check", "--prod"]);
        let root = sandbox.root().display().to_string();
        let stderr = run.stderr.replace(&root, "ROOT");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!((run.code, lines), (1, vec![line, prod_summary(1).as_str()]), "{run:?}");
        assert_eq!(sandbox.snapshot(), before);
    }

    #[test]
    fn a_valid_own_certificate_passes() {
        let (cert, key) = leaf(HOSTS, -1, 90, None);
        let run = sandbox(Some(&cert), Some(&key), "").xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
        assert!(run.stdout.contains("TLS_CERT_FILE=") && run.stdout.contains("/tls/chain.pem"), "{run:?}");
        assert!(!run.stdout.contains("PRIVATE KEY"));
    }

    #[test]
    fn an_unknown_mode() {
        let sandbox = sandbox(None, None, "");
        let env = fixture("prod/good.env") + "TLS_MODE=letsencrypt\n";
        sandbox.write(".env.prod", &env);
        assert_refused_with(
            &sandbox,
            r#".env.prod:15: TLS_MODE="letsencrypt" is not a TLS mode: use local, files or acme"#,
        );
    }

    #[test]
    fn the_same_port_for_http_and_https() {
        let (cert, key) = leaf(HOSTS, -1, 90, None);
        let sandbox = sandbox(Some(&cert), Some(&key), "HTTPS_PORT=80\n");
        assert_refused_with(&sandbox, ".env.prod:18: HTTP_PORT and HTTPS_PORT are both 80: give each its own port, e.g. HTTP_PORT=80 and HTTPS_PORT=443");
    }

    #[test]
    fn a_missing_certificate_file() {
        let (_, key) = leaf(HOSTS, -1, 90, None);
        let sandbox = sandbox(None, Some(&key), "");
        assert_refused_with(&sandbox, ".env.prod:16: TLS_CERT_FILE=tls/chain.pem: cannot read ROOT/tls/chain.pem: No such file or directory (os error 2): point it at a readable PEM file holding the certificate chain");
    }

    #[test]
    fn a_key_that_is_not_a_key() {
        let (cert, _) = leaf(HOSTS, -1, 90, None);
        let sandbox = sandbox(Some(&cert), None, "");
        sandbox.write("tls/key.pem", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
        assert_refused_with(&sandbox, ".env.prod:17: TLS_KEY_FILE=tls/key.pem: ROOT/tls/key.pem is not an unencrypted PKCS#8 key: point it at the unencrypted key (`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8` converts an older format)");
    }

    #[test]
    fn a_key_of_another_certificate() {
        let (cert, _) = leaf(HOSTS, -1, 90, None);
        let (_, other) = leaf(HOSTS, -1, 90, None);
        let sandbox = sandbox(Some(&cert), Some(&other), "");
        assert_refused_with(&sandbox, ".env.prod:17: TLS_KEY_FILE=tls/key.pem is not the key of the certificate in TLS_CERT_FILE=tls/chain.pem: use the key the certificate was issued for");
    }

    #[test]
    fn a_chain_with_the_leaf_not_first() {
        let (ca, issuer) = intermediate();
        let (cert, key) = leaf(HOSTS, -1, 90, Some(&issuer));
        let sandbox = sandbox(Some(&(ca + &cert)), Some(&key), "");
        assert_refused_with(&sandbox, ".env.prod:17: TLS_CERT_FILE=tls/chain.pem does not start with the certificate of TLS_KEY_FILE=tls/key.pem: put the site's certificate first, then its intermediates");
    }

    #[test]
    fn an_expired_certificate() {
        let (cert, key) = leaf(HOSTS, -90, -1, None);
        let sandbox = sandbox(Some(&cert), Some(&key), "");
        let run = sandbox.xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!(run.code, 1);
        let line = run.stderr.lines().next().unwrap();
        assert!(
            line.starts_with(".env.prod:16: the certificate in TLS_CERT_FILE=tls/chain.pem expired at 20"),
            "{run:?}"
        );
        assert!(line.ends_with("Z: renew it and point TLS_CERT_FILE at the new one"), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 2, "{run:?}");
    }

    #[test]
    fn a_certificate_not_valid_yet() {
        let (cert, key) = leaf(HOSTS, 2, 90, None);
        let run = sandbox(Some(&cert), Some(&key), "").xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!((run.code, run.stderr.lines().count()), (1, 2), "{run:?}");
        assert!(run.stderr.contains("tls/chain.pem is valid only from 20"), "{run:?}");
        assert!(run.stderr.contains("check this machine's clock, or use a certificate valid now"), "{run:?}");
    }

    #[test]
    fn a_certificate_for_another_host() {
        let (cert, key) = leaf(&["example.com", "shop.example.com"], -1, 90, None);
        let sandbox = sandbox(Some(&cert), Some(&key), "");
        assert_refused_with(&sandbox, ".env.prod:4: the certificate in TLS_CERT_FILE=tls/chain.pem does not cover ALLOWED_HOSTS name www.example.com: use one issued for it, or remove the name");
    }

    #[test]
    fn a_certificate_near_its_end_is_a_warning_only() {
        let (cert, key) = leaf(HOSTS, -80, 10, None);
        let run = sandbox(Some(&cert), Some(&key), "").xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!(run.code, 0, "{run:?}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{run:?}");
        assert!(
            lines[0].starts_with(".env.prod: warning: the certificate in TLS_CERT_FILE=tls/chain.pem expires at 20"),
            "{run:?}"
        );
        assert!(
            ["(in 9 days): renew it soon", "(in 10 days): renew it soon"].iter().any(|end| lines[0].ends_with(end)),
            "{run:?}"
        );
    }
}

// --- ACME ----------------------------------------------------------------------------------

mod acme {
    use super::*;

    /// good.env in `acme` mode, with its ALLOWED_HOSTS replaced by `hosts` and `extra` appended.
    fn sandbox(hosts: &str, extra: &str) -> Sandbox {
        let sandbox = Sandbox::empty();
        let env = fixture("prod/good.env")
            .replace("ALLOWED_HOSTS=example.com,www.example.com", &format!("ALLOWED_HOSTS={hosts}"))
            + "TLS_MODE=acme\n"
            + extra;
        sandbox.write(".env.prod", &env);
        sandbox
    }

    /// `check --prod` refuses with exactly `lines` and changes nothing.
    fn assert_refused_with(sandbox: &Sandbox, lines: &[&str]) {
        let before = sandbox.snapshot();
        let run = sandbox.xtask(&["--dry-run", "check", "--prod"]);
        let root = sandbox.root().display().to_string();
        let stderr = run.stderr.replace(&root, "ROOT");
        let summary = prod_summary(lines.len());
        let expected: Vec<&str> = lines.iter().copied().chain([summary.as_str()]).collect();
        assert_eq!((run.code, stderr.lines().collect::<Vec<_>>()), (1, expected), "{run:?}");
        assert_eq!(sandbox.snapshot(), before);
    }

    #[test]
    fn an_acme_site_passes_and_plans_the_certbot_overlay() {
        let sandbox = sandbox("example.com,www.example.com", "ACME_EMAIL=admin@example.com\n");
        let run = sandbox.xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
        assert!(run.stdout.contains("/docker/compose.acme.yml"), "{run:?}");
        assert!(run.stdout.contains("ACME_DOMAINS='example.com,www.example.com' ACME_CA_BUNDLE=''"), "{run:?}");
        assert!(run.stdout.contains("/certs/acme-bootstrap.pem"), "{run:?}");
        assert!(!run.stdout.contains("PRIVATE KEY"));
    }

    #[test]
    fn acme_without_an_email() {
        let sandbox = sandbox("example.com,www.example.com", "");
        assert_refused_with(&sandbox, &[".env.prod: ACME_EMAIL is missing (TLS_MODE=acme): set it to the address the CA sends expiry notices to, e.g. ACME_EMAIL=admin@example.com"]);
    }

    #[test]
    fn acme_for_hosts_no_public_ca_issues_for() {
        let sandbox = sandbox("localhost,10.0.0.7,printer.local", "ACME_EMAIL=admin@example.com\n");
        let line = |host: &str| {
            format!(".env.prod:4: no public CA issues a certificate for ALLOWED_HOSTS name {host} (TLS_MODE=acme): use TLS_MODE=local for it, or set ACME_DIRECTORY_URL to a CA that does")
        };
        let lines = [line("localhost"), line("10.0.0.7"), line("printer.local")];
        assert_refused_with(&sandbox, &lines.iter().map(String::as_str).collect::<Vec<_>>());
        let own_ca = "ACME_EMAIL=admin@example.com\nACME_DIRECTORY_URL=https://ca.internal:14000/dir\n";
        let run = self::sandbox("localhost,10.0.0.7,printer.local", own_ca).xtask(&["--dry-run", "check", "--prod"]);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (0, ""),
            "an ACME_DIRECTORY_URL of its own issues for any name: {run:?}"
        );
    }

    #[test]
    fn acme_for_a_subdomain_wildcard() {
        let sandbox = sandbox(".example.com", "ACME_EMAIL=admin@example.com\n");
        assert_refused_with(&sandbox, &[".env.prod:4: ALLOWED_HOSTS name .example.com stands for every subdomain, which http-01 cannot prove (TLS_MODE=acme): list each name, e.g. example.com,www.example.com, or use TLS_MODE=files with a wildcard certificate"]);
    }

    #[test]
    fn acme_with_a_bad_directory_url_or_ca_bundle() {
        let extra = "ACME_EMAIL=admin\nACME_DIRECTORY_URL=http://ca.example.com/dir\nACME_CA_BUNDLE=tls/ca.pem\n";
        let sandbox = sandbox("example.com,www.example.com", extra);
        assert_refused_with(&sandbox, &[
            r#".env.prod:16: ACME_EMAIL is "admin", not an email address (TLS_MODE=acme): set it to the address the CA sends expiry notices to, e.g. ACME_EMAIL=admin@example.com"#,
            ".env.prod:17: ACME_DIRECTORY_URL=http://ca.example.com/dir is not an https:// URL: use the CA's https:// directory URL, or unset it for Let's Encrypt (https://acme-v02.api.letsencrypt.org/directory)",
            ".env.prod:18: ACME_CA_BUNDLE=tls/ca.pem: No such file or directory (os error 2): point it at a readable PEM file of the ACME server's CA certificates, or unset it",
        ]);
    }
}
