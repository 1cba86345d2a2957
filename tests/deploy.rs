//! `cargo xtask deploy` without an engine: the dry run prints every command and the stack
//! files it would deploy (checked here as YAML: images by digest, no secret in any spec,
//! host-mode ports, the database's placement), with an empty PATH so that nothing runs; and
//! the refusals are one line each. The same on a real Swarm: tests/e2e/swarm.rs.

use std::fs;

use crate::support::repo_file;
use crate::support::sandbox::Sandbox;
use serde_yaml::Value;

const DIGEST: &str = "sha256:34c63b15fb1ac93ce8b6fc8909d690d469d1973e8e9379f109ca7a0e4852a3ce";

fn image(kind: &str) -> String {
    format!("127.0.0.1:5000/site/{kind}@{DIGEST}")
}

/// A project with the stack files, a production env file the preflight accepts and a
/// manifest whose release 1.0.0 was pushed.
fn sandbox(extra_env: &str) -> Sandbox {
    let sandbox =
        Sandbox::empty().with_repo_files(&["docker/stack.yml", "docker/stack.db.yml", "docker/nginx/default.conf"]);
    let good = fs::read_to_string(repo_file("tests/fixtures/env/prod/good.env")).unwrap();
    sandbox.write(".env.prod", &format!("{good}TLS_MODE=local\nHTTPS_PORT=8443\nNGINX_IMAGE=nginx:test\n{extra_env}"));
    let images = ["static", "web"].map(|k| format!("\"{k}\": \"{}\"", image(k))).join(", ");
    let manifest = format!(
        r#"{{"name": "site", "version": "1.0.0", "git_commit": "{}", "source_date_epoch": 1, "artifacts": [], "images": {{{images}}},
            "earlier": [{{"name": "site", "version": "0.9.0", "git_commit": "{}", "source_date_epoch": 1, "artifacts": []}}]}}"#,
        "c0".repeat(20),
        "c1".repeat(20)
    );
    sandbox.write("dist/manifest.json", &manifest);
    sandbox
}

/// The YAML documents a dry run prints after its `# --- FILE` lines, by file name.
fn stack_files(stdout: &str) -> Vec<(String, Value)> {
    let mut files = Vec::new();
    for part in stdout.split("# --- ").skip(1) {
        let (name, body) = part.split_once('\n').unwrap();
        let name = name.rsplit('/').next().unwrap().to_owned();
        files.push((name, serde_yaml::from_str(body).unwrap_or_else(|e| panic!("{e}:\n{body}"))));
    }
    files
}

#[test]
fn a_dry_run_prints_every_command_and_stack_file_and_runs_nothing() {
    let sandbox = sandbox("");
    let run = sandbox.xtask(&["--dry-run", "deploy"]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    for expected in [
        "# deploy release 1.0.0 of site to the Swarm",
        "docker network create --driver overlay --attachable site_backend",
        "docker secret create --label 'xtask.stack=site' site_secret_key_",
        "docker secret create --label 'xtask.stack=site' site_postgres_password_",
        "docker stack deploy --with-registry-auth --prune --compose-file",
        "site-db.yml site-db",
        "docker service create --detach --name site_migrate --mode replicated-job --restart-condition none",
        &format!("{} python manage.py migrate --noinput", image("web")),
        "# if site_web serves already: first site_web alone",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    let env = fs::read_to_string(sandbox.root().join(".env.prod")).unwrap();
    for secret in ["SECRET_KEY=", "POSTGRES_PASSWORD="] {
        let value = env.lines().find_map(|l| l.strip_prefix(secret)).unwrap();
        assert!(!out.contains(value), "the value of {secret} is printed");
    }
    assert!(out.contains("--secret 'source=site_secret_key_") && out.contains(",target=SECRET_KEY' "), "{out}");

    let files = stack_files(out);
    assert_eq!(files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["site-db.yml", "site.yml"]);
    let (db, site) = (&files[0].1, &files[1].1);
    let web = &site["services"]["web"];
    assert_eq!(web["image"], Value::from(image("web")));
    assert_eq!(web["deploy"]["replicas"], Value::from(2));
    assert_eq!(web["deploy"]["update_config"]["order"], Value::from("start-first"));
    assert_eq!(web["deploy"]["update_config"]["failure_action"], Value::from("rollback"));
    assert_eq!(web["deploy"]["endpoint_mode"], Value::from("dnsrr"));
    assert_eq!(web["deploy"]["labels"]["xtask.version"], Value::from("1.0.0"));
    assert_eq!(web["environment"]["SECRET_KEY_FILE"], Value::from("/run/secrets/SECRET_KEY"));
    assert_eq!(web["environment"]["ALLOWED_HOSTS"], Value::from("example.com,www.example.com"));
    for absent in ["SECRET_KEY", "POSTGRES_PASSWORD", "HTTP_PORT", "TLS_MODE"] {
        assert!(web["environment"].get(absent).is_none(), "{absent} is in web's environment");
    }
    assert_eq!(site["services"]["static"]["image"], Value::from(image("static")));
    let edge = &site["services"]["edge"];
    assert_eq!(edge["image"], Value::from("nginx:test"));
    assert_eq!(edge["configs"][0]["target"], Value::from("/etc/nginx/templates/default.conf.template"));
    let conf = site["configs"]["default.conf.template"]["name"].as_str().unwrap();
    assert!(conf.starts_with("site_default_conf_template_"), "{conf}");
    assert!(out.contains(&format!("docker config create --label 'xtask.stack=site' {conf} -")), "{out}");
    assert_eq!(edge["deploy"]["mode"], Value::from("global"));
    let ports: Vec<(u64, u64, &str)> = edge["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (p["target"].as_u64().unwrap(), p["published"].as_u64().unwrap(), p["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(80, 80, "host"), (443, 8443, "host")]);
    assert_eq!(edge["environment"]["HTTPS_PORT"], Value::from("8443"));
    let secret_names: Vec<&str> =
        site["secrets"].as_mapping().unwrap().values().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(secret_names.len(), 4, "{secret_names:?}");
    assert!(site["secrets"]["SECRET_KEY"]["external"].as_bool().unwrap());
    assert_eq!(site["networks"]["backend"]["name"], Value::from("site_backend"));
    for service in ["web", "static", "edge"] {
        assert!(site["services"][service].get("ports").is_none() || service == "edge", "{service} is published");
    }
    let constraints = &db["services"]["db"]["deploy"]["placement"]["constraints"];
    assert_eq!(constraints[0], Value::from("node.labels.site.db == true"));
    assert_eq!(
        db["services"]["db"]["environment"]["POSTGRES_PASSWORD_FILE"],
        Value::from("/run/secrets/POSTGRES_PASSWORD")
    );
    assert!(!sandbox.root().join(".stack").exists(), "the dry run wrote the stack files");
}

#[test]
fn a_version_by_name_and_the_newest_pushed_by_default() {
    let sandbox = sandbox("");
    let run = sandbox.xtask(&["--dry-run", "deploy", "v1.0.0"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("\n# deploy release 1.0.0 of site"), "{}", run.stdout);
}

#[test]
fn bad_deploys_are_refused_in_one_line() {
    let cases = [
        (
            "TLS_MODE=acme\nACME_EMAIL=ops@example.com\n",
            &["--dry-run", "deploy"][..],
            "TLS_MODE=acme is not supported by `cargo xtask deploy`",
        ),
        ("WEB_REPLICAS=0\n", &["--dry-run", "deploy"][..], "WEB_REPLICAS=\"0\" is not a number of web tasks"),
        (
            "",
            &["--dry-run", "deploy", "2.0.0"][..],
            "has no release 2.0.0: release it with `cargo xtask release --push --version 2.0.0`",
        ),
        ("", &["--dry-run", "deploy", "0.9.0"][..], "release 0.9.0 has no pushed web image in manifest.json"),
    ];
    for (extra, args, message) in cases {
        let sandbox = sandbox(extra);
        let run = sandbox.xtask(args);
        assert_eq!(run.code, 1, "{args:?} with {extra:?}: {run:?}");
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{run:?}");
        assert!(errors[0].contains(message), "{}", errors[0]);
    }
    let sandbox = sandbox("");
    fs::remove_file(sandbox.root().join("dist/manifest.json")).unwrap();
    let run = sandbox.xtask(&["--dry-run", "deploy"]);
    assert!(run.stderr.contains("has no manifest.json: run `cargo xtask release --push` first"), "{run:?}");
}

/// BACKUP_SCHEDULE on Swarm: the backup service from docker/stack.yml's template, its image
/// the one `release --push` pushed, every secret a file its agent reads; none of it in web's
/// environment.
#[test]
fn a_backup_schedule_adds_the_backup_service_with_its_secrets_as_files() {
    const PASSWORD: &str = "correct-horse-battery-staple-42";
    let site_sandbox = sandbox(&format!(
        "BACKUP_SCHEDULE=daily@03:30\nBACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\nBACKUP_PASSWORD={PASSWORD}\n\
         BACKUP_SSH_KEY=certs/backup_id\nBACKUP_KNOWN_HOSTS=certs/backup_known_hosts\nBACKUP_KEEP=daily=7\n"
    ));
    site_sandbox.write("certs/backup_id", "PRIVATE KEY\n");
    site_sandbox.write("certs/backup_known_hosts", "10.0.0.2 ssh-ed25519 AAAA\n");
    let run = site_sandbox.xtask(&["--dry-run", "deploy"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("BACKUP_SCHEDULE in .env.prod asks for the backup service and no release in dist/manifest.json pushed its image: release again with `cargo xtask release --push --version 1.0.0`"),
        "{}",
        run.stderr
    );

    // Pushed with the earlier release only: a later one without it still gets it.
    let path = site_sandbox.root().join("dist/manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    manifest["earlier"][0]["images"] =
        serde_json::json!({"web": image("web"), "static": image("static"), "backup": image("backup")});
    fs::write(&path, manifest.to_string()).unwrap();
    let run = site_sandbox.xtask(&["--dry-run", "deploy"]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = stack_files(&run.stdout);
    let site = &files.iter().find(|(name, _)| name == "site.yml").unwrap().1;
    let backup = &site["services"]["backup"];
    assert_eq!(backup["image"], Value::from(image("backup")));
    let env = &backup["environment"];
    for (key, value) in [
        ("RESTIC_REPOSITORY", "sftp:backup@10.0.0.2:/srv/site"),
        ("RESTIC_PASSWORD_FILE", "/run/secrets/RESTIC_PASSWORD"),
        ("PGPASSWORD_FILE", "/run/secrets/POSTGRES_PASSWORD"),
        ("PGHOST", "db"),
        ("PGDATABASE", "django"),
        ("BACKUP_EVERY", "86400"),
        ("BACKUP_AT", "12600"),
        ("BACKUP_FORGET", "--group-by host --keep-daily 7"),
        ("BACKUP_HOST", "site-prod"),
        ("BACKUP_RELEASE", "1.0.0"),
        ("BACKUP_HEALTHY_WHILE_STORING", "1"),
    ] {
        assert_eq!(env[key], Value::from(value), "{key} in {env:?}");
    }
    let targets: Vec<&str> =
        backup["secrets"].as_sequence().unwrap().iter().map(|s| s["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["RESTIC_PASSWORD", "backup_ssh_key", "backup_known_hosts", "POSTGRES_PASSWORD"]);
    assert_eq!(backup["healthcheck"]["interval"], Value::from("60s"));
    assert_eq!(backup["volumes"][0], Value::from("media:/backup/staging/media:ro"));
    assert_eq!(site["secrets"].as_mapping().unwrap().len(), 7, "{:?}", site["secrets"]);
    assert!(
        run.stdout.contains("docker secret create --label 'xtask.stack=site' site_backup_ssh_key_"),
        "{}",
        run.stdout
    );
    let web = &site["services"]["web"]["environment"];
    for absent in ["BACKUP_PASSWORD", "BACKUP_PASSWORD_FILE", "BACKUP_REPOSITORY", "BACKUP_SCHEDULE"] {
        assert!(web.get(absent).is_none(), "{absent} is in web's environment");
    }
    assert!(!run.stdout.contains(PASSWORD), "the backup password is printed");

    // A repository in this host's directory is refused, as by the production stack.
    let sandbox_local =
        sandbox(&format!("BACKUP_SCHEDULE=daily\nBACKUP_REPOSITORY=local:/srv/b\nBACKUP_PASSWORD={PASSWORD}\n"));
    let run = sandbox_local.xtask(&["--dry-run", "deploy"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("BACKUP_SCHEDULE in ") && run.stderr.contains("needs a repository off this host"),
        "{}",
        run.stderr
    );
}
