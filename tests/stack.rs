//! The stacks checked with the real tools: Compose v2 validates the dev, prod and
//! prod+db configurations, hadolint lints the Dockerfiles, nginx checks and serves the
//! nginx conf, the Django tests run against SQLite and PostgreSQL, and the production preflight
//! refuses the example env file but accepts a generated one. `cargo xtask ci` runs each
//! as its own step (the `stack_check::` names).

mod stack_check {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::sync::Mutex;

    use serde_json::Value;
    use xtask::context::Context;
    use xtask::plan::Action;
    use xtask::project::{Description, Flavour};
    use xtask::stack::compose::Stack;
    use xtask::stack::processes;
    use xtask::tools::{self, system};

    use crate::support::skip::skip;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace holds the xtask crate")
    }

    fn ok<T>(result: anyhow::Result<T>) -> T {
        result.unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn output(command: &mut Command) -> Output {
        command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
    }

    fn assert_success(command: &mut Command) -> Output {
        let out = output(command);
        assert!(
            out.status.success(),
            "{command:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A project directory holding `env` (copied from the committed example) and links
    /// to the real docker/ and project-template/. The compose files read `env_file: .env`
    /// relative to the project directory, and the repository root has none in a fresh
    /// clone (the developer's own, when present, must not decide the outcome).
    fn scratch_project(env: &str, example: &str, extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let from = root().join(example);
        let text = fs::read_to_string(&from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        fs::write(dir.path().join(env), text + extra).expect("the env file");
        for linked in ["docker", "project-template"] {
            symlink(root().join(linked), dir.path().join(linked)).expect("a symlink");
        }
        dir
    }

    /// `docker compose config` of the stack as the xtask invokes it, with Compose v2 from
    /// `target/tools`: `-q` validates, then the resolved configuration is returned.
    fn compose_config(env: &str, example: &str, files: &[&str]) -> Value {
        compose_config_with(env, example, "", files)
    }

    /// [`compose_config`] with `extra` lines after the example's.
    fn compose_config_with(env: &str, example: &str, extra: &str, files: &[&str]) -> Value {
        ok(system::require(&[&system::DOCKER]));
        let project = scratch_project(env, example, extra);
        let config = ok(tools::compose_v2());
        let compose = |args: &[&str]| {
            let mut command = Command::new("docker");
            command.env("DOCKER_CONFIG", &config).envs(XTASK_ENV);
            command.envs(description_vars(env));
            command.arg("compose").args(global_args(project.path(), env, files)).args(args);
            command
        };
        assert_clean(&mut compose(&["config", "-q"]));
        let out = assert_success(&mut compose(&["config", "--format", "json"]));
        serde_json::from_slice(&out.stdout).expect("compose config prints JSON")
    }

    /// The variables the xtask sets for the stacks' Compose commands.
    const XTASK_ENV: [(&str, &str); 12] = [
        ("WEB_IMAGE", "stack-check-web"),
        ("TLS_CERT_FILE", "/srv/tls/fullchain.pem"),
        ("TLS_KEY_FILE", "/srv/tls/privkey.pem"),
        // TLS_MODE=acme: the xtask sets the first two, ACME_EMAIL is the env file's.
        ("ACME_DOMAINS", "example.com"),
        ("ACME_CA_BUNDLE", ""),
        ("ACME_EMAIL", "admin@example.com"),
        ("DEV_WEB_IMAGE", "stack-check-dev-web"),
        // BACKUP_SCHEDULE: the xtask sets the last three, the first two are the env file's.
        ("BACKUP_REPOSITORY", "sftp:backup@backup.example.net:/srv/site"),
        ("BACKUP_PASSWORD", "stack-check-backup-password"),
        ("BACKUP_EVERY", "86400"),
        ("BACKUP_FORGET", "--group-by host --keep-daily 7"),
        ("BACKUP_HOST", "stack-check"),
    ];

    /// The variables the xtask sets from the project's description (the repository's own).
    fn description_vars(env: &str) -> Vec<(&'static str, String)> {
        let flavour = if env == ".env" { Flavour::Dev } else { Flavour::Prod };
        Description::default().compose_vars(flavour)
    }

    /// The flags the xtask gives every Compose command: project name, directory, env file,
    /// then the stack's files, the bundled Redis (the examples' REDIS_URL names it) and the
    /// template's processes, whose file the xtask's own renderer writes into `project`.
    fn global_args(project: &Path, env: &str, files: &[&str]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--project-name".into(), "stack-check".into()];
        args.extend(["--project-directory".into(), project.as_os_str().to_owned()]);
        args.extend(["--env-file".into(), project.join(env).into_os_string()]);
        let stack = match env {
            ".env" => Stack::Dev,
            _ => Stack::Prod { with_db: files.contains(&"docker/compose.db.yml") },
        };
        let cx = Context { root: project.to_owned(), name: "stack-check".into(), dry_run: false, verbose: false };
        let overlay =
            processes::overlay(&cx, stack, &Description::default(), true).expect("the template has processes");
        ok(overlay.run(&cx));
        let files = files.iter().chain(&["docker/compose.redis.yml"]).map(|file| root().join(file));
        for file in files.chain([overlay.path]) {
            args.extend(["-f".into(), file.into_os_string()]);
        }
        args
    }

    /// Succeeds and says nothing: a warning (an obsolete key, an unset variable) is a failure.
    fn assert_clean(command: &mut Command) {
        let out = assert_success(command);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(said.trim().is_empty(), "{command:?} printed:\n{said}");
    }

    const STACKS: [(&str, &str, &[&str]); 5] = [
        (".env", "docker/dev.env.example", &["docker/compose.yml"]),
        (".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml"]),
        (".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml", "docker/compose.db.yml"]),
        (".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml", "docker/compose.acme.yml"]),
        (".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml", "docker/compose.backup.yml"]),
    ];

    /// Standalone Compose v1 is the xtask's fallback, so it must accept the same files.
    #[test]
    fn compose_config_v1() {
        let Some(v1) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("docker-compose"))
            .find(|path| path.is_file())
        else {
            return skip("no standalone docker-compose (v1) on PATH, so no fallback to check");
        };
        for (env, example, files) in STACKS {
            let project = scratch_project(env, example, "");
            let mut command = Command::new(&v1);
            command.envs(XTASK_ENV).envs(description_vars(env));
            command.args(global_args(project.path(), env, files));
            assert_clean(command.args(["config", "-q"]));
        }
    }

    /// Compose v2 warns that `version:` is obsolete; the files carry none.
    #[test]
    fn compose_config_files_have_no_version_key() {
        for file in
            ["docker/compose.yml", "docker/compose.prod.yml", "docker/compose.db.yml", "docker/compose.acme.yml"]
        {
            let text = fs::read_to_string(root().join(file)).expect("a compose file");
            let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
            assert!(yaml.get("version").is_none(), "{file} has a version: key");
        }
    }

    fn published(config: &Value) -> Vec<String> {
        let services = config["services"].as_object().expect("services");
        let mut names: Vec<String> =
            services.iter().filter(|(_, s)| s.get("ports").is_some()).map(|(name, _)| name.clone()).collect();
        names.sort();
        names
    }

    #[test]
    fn compose_config_dev() {
        let config = compose_config(".env", "docker/dev.env.example", &["docker/compose.yml"]);
        assert_eq!(published(&config), ["web"], "in dev only web (runserver) is published");
        let web = &config["services"]["web"];
        assert_eq!(web["build"]["args"]["DJANGO_DEPENDENCIES"], "project-template/requirements.txt", "{web}");
        // Without a build context filled by the xtask (a command that builds nothing), a
        // directory that exists, for Compose v1's check.
        assert!(web["build"]["context"].as_str().is_some_and(|c| c.ends_with("/docker")), "{web}");
        assert_eq!(web["environment"]["DJANGO_SETTINGS_MODULE"], "config.settings.dev", "{web}");
        let mounts = web["volumes"].as_array().expect("web volumes");
        assert!(
            mounts.iter().any(|m| m["source"].as_str().is_some_and(|s| s.ends_with("/project-template"))),
            "{mounts:?}"
        );
        let ports = config["services"]["web"]["ports"].as_array().expect("web ports");
        assert!(
            ports.iter().all(|p| p["host_ip"] == "127.0.0.1"),
            "runserver with DEBUG on is published beyond loopback: {ports:?}"
        );
    }

    #[test]
    fn compose_config_prod() {
        let config = compose_config(".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml"]);
        assert_eq!(published(&config), ["nginx"], "in production only nginx is published");
        assert!(config["services"].get("db").is_none(), "the production stack has no database of its own");
        let nginx = &config["services"]["nginx"];
        let targets: Vec<u64> =
            nginx["ports"].as_array().unwrap().iter().filter_map(|p| p["target"].as_u64()).collect();
        assert_eq!(targets, [80, 443], "{nginx}");
        for (target, source) in
            [("/etc/nginx/tls/fullchain.pem", XTASK_ENV[1].1), ("/etc/nginx/tls/privkey.pem", XTASK_ENV[2].1)]
        {
            let volumes = nginx["volumes"].as_array().unwrap();
            let mount =
                volumes.iter().find(|v| v["target"] == target).unwrap_or_else(|| panic!("no {target}: {nginx}"));
            assert_eq!(
                (mount["type"].as_str(), mount["source"].as_str(), mount["read_only"].as_bool()),
                (Some("bind"), Some(source), Some(true))
            );
        }
    }

    #[test]
    fn compose_config_prod_with_db() {
        let files = ["docker/compose.prod.yml", "docker/compose.db.yml"];
        let config = compose_config(".env.prod", "docker/prod.env.example", &files);
        assert_eq!(published(&config), ["nginx"], "the bundled database is never published");
        assert!(config["services"].get("db").is_some(), "compose.db.yml adds the db service");
    }

    /// The template's worker and scheduler run web's image with web's settings: in dev under
    /// the autoreloader, in production hardened, with their stop grace and, for the worker,
    /// a healthcheck; the bundled Redis asks for its password and is never published.
    #[test]
    fn compose_config_processes_and_redis() {
        let dev = compose_config(".env", "docker/dev.env.example", &["docker/compose.yml"]);
        let worker = &dev["services"]["worker"];
        assert_eq!(worker["image"], "stack-check-dev-web", "{worker}");
        assert_eq!(dev["services"]["web"]["image"], "stack-check-dev-web", "web builds the image the processes run");
        let command: Vec<&str> = worker["command"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(command[..4], ["python", "-m", "stack_settings.autoreload", "sh"], "{worker}");
        assert!(command[5].starts_with("exec celery -A config worker"), "{worker}");

        let prod = compose_config(".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml"]);
        assert_eq!(published(&prod), ["nginx"], "neither the processes nor Redis are published");
        let (worker, beat, redis) =
            (&prod["services"]["worker"], &prod["services"]["beat"], &prod["services"]["redis"]);
        assert_eq!(worker["image"], "stack-check-web", "{worker}");
        assert_eq!(worker["cap_drop"], serde_json::json!(["ALL"]), "{worker}");
        assert_eq!(worker["environment"]["DJANGO_SETTINGS_MODULE"], "config.settings.prod", "{worker}");
        let check = worker["healthcheck"]["test"].as_array().unwrap();
        // Compose prints the command as it reads it: `$$` is the container shell's `$`.
        assert!(check[1].as_str().unwrap().starts_with("test $$(( $$(date +%s) - $$(stat"), "{worker}");
        assert_eq!(beat["stop_grace_period"], "10s", "{beat}");
        assert_eq!(beat["depends_on"]["redis"]["condition"], "service_healthy", "{beat}");
        assert_eq!(redis["user"], "redis", "{redis}");
        let redis_command = redis["command"].as_array().unwrap().last().unwrap().as_str().unwrap();
        assert!(redis_command.contains("requirepass") && !redis_command.contains("--requirepass"), "{redis}");
    }

    /// BACKUP_SCHEDULE: the backup service is not published, reads the media read-only,
    /// gets the SSH files as secrets and the password in its environment only, and keeps
    /// only the capabilities it drops at its start.
    #[test]
    fn compose_config_prod_backup() {
        let files = ["docker/compose.prod.yml", "docker/compose.backup.yml"];
        let extra = "BACKUP_PASSWORD=stack-check-backup-password\nBACKUP_REPOSITORY=rest:https://u:p@b.example.net/\n";
        let config = compose_config_with(".env.prod", "docker/prod.env.example", extra, &files);
        // The backup settings are the backup service's: web and the processes get them empty.
        for service in ["web", "worker", "beat"] {
            let env = &config["services"][service]["environment"];
            for key in ["BACKUP_PASSWORD", "BACKUP_REPOSITORY"] {
                assert_eq!(env[key], "", "{service} gets {key}: {env}");
            }
        }
        assert_eq!(published(&config), ["nginx"], "the backup service is never published");
        let backup = &config["services"]["backup"];
        let media = backup["volumes"].as_array().expect("volumes").iter().find(|v| v["source"] == "media");
        assert_eq!(
            media.map(|v| (&v["target"], &v["read_only"])),
            Some((&"/backup/staging/media".into(), &true.into()))
        );
        let secrets: Vec<&Value> =
            backup["secrets"].as_array().expect("secrets").iter().map(|s| &s["source"]).collect();
        assert_eq!(secrets, ["backup_ssh_key", "backup_known_hosts"], "{backup}");
        assert_eq!(config["secrets"]["backup_ssh_key"]["file"], "/dev/null", "{config}");
        assert_eq!(backup["environment"]["RESTIC_PASSWORD"], "stack-check-backup-password", "{backup}");
        assert_eq!(backup["cap_drop"], serde_json::json!(["ALL"]), "{backup}");
        assert_eq!(backup["cap_add"], serde_json::json!(["DAC_READ_SEARCH", "SETUID", "SETGID"]), "{backup}");
        assert_eq!(backup["labels"]["xtask.health"], "report", "{backup}");
        assert!(backup["healthcheck"]["test"].to_string().contains("health"), "{backup}");
    }

    /// TLS_MODE=acme: certbot shares the webroot and its certificates with nginx, which reads
    /// them read-only and is still the only service published.
    #[test]
    fn compose_config_prod_acme() {
        let files = ["docker/compose.prod.yml", "docker/compose.acme.yml"];
        let config = compose_config(".env.prod", "docker/prod.env.example", &files);
        assert_eq!(published(&config), ["nginx"], "certbot is never published");
        let (nginx, certbot) = (&config["services"]["nginx"], &config["services"]["certbot"]);
        assert_eq!(nginx["environment"]["TLS_DIR"], "/etc/nginx/acme", "{nginx}");
        assert_eq!(certbot["cap_drop"], serde_json::json!(["ALL"]), "{certbot}");
        let mount = |service: &Value, target: &str| {
            let volumes = service["volumes"].as_array().expect("volumes");
            let found = volumes.iter().find(|v| v["target"] == target);
            found.map(|v| {
                (v["source"].as_str().unwrap_or_default().to_owned(), v["read_only"].as_bool().unwrap_or(false))
            })
        };
        for (target, volume) in [("/var/www/acme", "acme-webroot"), ("/etc/letsencrypt", "letsencrypt")] {
            assert_eq!(mount(nginx, target), Some((volume.to_owned(), true)), "{nginx}");
            assert_eq!(mount(certbot, target), Some((volume.to_owned(), false)), "{certbot}");
        }
        assert_eq!(mount(certbot, "/etc/ssl/acme-ca.pem"), Some(("/dev/null".to_owned(), true)), "{certbot}");
        assert_eq!(certbot["depends_on"]["nginx"]["condition"], "service_healthy", "{certbot}");
        let without = compose_config(".env.prod", "docker/prod.env.example", &["docker/compose.prod.yml"]);
        assert!(without["services"].get("certbot").is_none(), "certbot only in acme mode");
        assert_eq!(without["services"]["nginx"]["environment"]["TLS_DIR"], "/etc/nginx/tls");
    }

    #[test]
    fn hadolint_dockerfile() {
        let hadolint = ok(tools::hadolint());
        for dockerfile in ["docker/Dockerfile", "docker/static.Dockerfile", "docker/backup/Dockerfile"] {
            assert_success(Command::new(&hadolint).arg(dockerfile).current_dir(root()));
        }
    }

    /// A script of tests/django/, its output passed through.
    fn script(name: &str, args: &[&str]) {
        let status = Command::new("bash")
            .arg(format!("tests/django/{name}"))
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .status()
            .expect("bash runs");
        assert!(status.success(), "tests/django/{name} {} failed ({status})", args.join(" "));
    }

    #[test]
    fn nginx_conf() {
        ok(system::require(&[&system::NGINX, &system::OPENSSL]));
        script("nginx-t.sh", &[]);
    }

    /// The conf served on loopback: the redirect and TLS, cache headers, precompressed files, inert uploads.
    #[test]
    fn nginx_smoke() {
        ok(system::require(&[&system::NGINX, &system::CURL, &system::OPENSSL]));
        script("nginx-smoke.sh", &[]);
    }

    /// The two runs share one virtualenv, which the script creates on first use.
    static DJANGO_VENV: Mutex<()> = Mutex::new(());

    /// The Django suite; its output goes straight to the terminal, so CI logs show every test.
    fn django(database: &str, needs: &[&system::SystemTool]) {
        ok(system::require(needs));
        let _venv = DJANGO_VENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        script("run-tests.sh", &[database]);
    }

    #[test]
    fn django_sqlite() {
        django("sqlite", &[&system::PYTHON_VENV]);
    }

    /// The settings layer over a `startproject` project.
    #[test]
    fn django_layer() {
        django("layer", &[&system::PYTHON_VENV]);
    }

    /// `cargo xtask new`'s repository passes its own `cargo xtask ci` steps that need no engine,
    /// its Django tests (package renamed) on this repository's virtualenv (same requirements).
    #[test]
    fn new_project() {
        ok(system::require(&[&system::PYTHON_VENV]));
        let _venv = DJANGO_VENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let made = dir.path().join("shop");
        let mut new = Command::new(env!("CARGO_BIN_EXE_xtask"));
        new.args(["new", &made.to_string_lossy()]).env_remove("XTASK_ROOT");
        for (key, value) in [("GIT_AUTHOR_NAME", "new"), ("GIT_COMMITTER_NAME", "new")] {
            new.env(key, value);
        }
        new.env("GIT_AUTHOR_EMAIL", "new@example.invalid").env("GIT_COMMITTER_EMAIL", "new@example.invalid");
        assert_success(&mut new);
        let venv = root().join("target/django-venv");
        fs::create_dir_all(&venv).expect("the virtualenv directory");
        fs::create_dir_all(made.join("target")).expect("target/ of the new repository");
        symlink(&venv, made.join("target/django-venv")).expect("a symlink");
        // The new repository's own ci, less the steps that need the engine (e2e), that would
        // recurse (new project) or that only check again what is this one's byte for byte:
        // its env-file reader against Compose (env fuzz), its Rust's lints (clippy) and its
        // book (book, whose tool may still be building in the background of this run). Its
        // own target directory keeps its build from replacing this repository's binaries; the
        // dependencies built and the tools installed here are reused.
        let target = root().join("target/new-project");
        seed_dependencies(&target);
        let mut ci = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        ci.args([
            "xtask",
            "ci",
            "--keep-going",
            "--skip",
            "e2e",
            "--skip",
            "new project",
            "--skip",
            "env fuzz",
            "--skip",
            "book",
            "--skip",
            "clippy",
        ])
        .current_dir(&made)
        .env_remove("XTASK_ROOT")
        .env("CARGO_TARGET_DIR", &target)
        .env("XTASK_TOOLS_DIR", tools::dir());
        let out = assert_success(&mut ci);
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let summary = said.lines().rev().find(|l| l.starts_with("ci: ")).expect("a summary line");
        let passed = summary.ends_with(" passed, 0 failed, 0 skipped") && !summary.starts_with("ci: 0 ");
        assert!(passed, "the new repository's ci: {summary}\n{said}");
        eprintln!("new project: its own {summary}");
        let sqlite = said.lines().find(|l| l.starts_with("django-sqlite: ")).expect("the Django tests' summary");
        assert!(!sqlite.starts_with("django-sqlite: 0 "), "{sqlite}");
        assert!(said.contains("(shop.tests.test_settings."), "the tests did not run from the renamed package:\n{said}");
    }

    /// Fills an empty `target` with this run's compiled crates.io dependencies, their mtimes
    /// kept: the new repository has the same Cargo.lock, so Cargo finds them fresh instead of
    /// building them again. The workspace's own crate is left out, so that it is built from
    /// the new repository's sources.
    fn seed_dependencies(target: &Path) {
        let profile = target.join("debug");
        if profile.exists() {
            return;
        }
        let binary = std::env::current_exe().expect("the test binary's path");
        let built = binary.parent().and_then(Path::parent).expect("the binary lies in <target>/<profile>/deps");
        fs::create_dir_all(&profile).expect("the new repository's profile directory");
        for dir in ["deps", "build", ".fingerprint"] {
            assert_success(Command::new("cp").arg("-a").arg(built.join(dir)).arg(&profile));
            for entry in fs::read_dir(profile.join(dir)).expect("the copied directory").flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if ["xtask-", "libxtask-", "integration-"].iter().any(|own| name.starts_with(own)) {
                    let path = entry.path();
                    let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                    removed.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
                }
            }
        }
    }

    #[test]
    fn django_postgres() {
        django("postgres", &[&system::PYTHON_VENV, &system::POSTGRES]);
    }

    /// A project root for the xtask binary: a link to docker/, which holds the committed
    /// example env files.
    fn xtask_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        symlink(root().join("docker"), dir.path().join("docker")).expect("a symlink");
        dir
    }

    fn xtask(project: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command.args(args).env("XTASK_ROOT", project).env("XTASK_PROJECT_NAME", "stack-check");
        command
    }

    fn env_prod(project: &Path) -> PathBuf {
        project.join(".env.prod")
    }

    #[test]
    fn preflight_accepts_a_generated_env_prod() {
        let project = xtask_root();
        assert_success(&mut xtask(project.path(), &["init", "--prod", "--host", "preflight.invalid"]));
        assert!(env_prod(project.path()).is_file(), "init --prod writes .env.prod");
        assert_success(&mut xtask(project.path(), &["--dry-run", "check", "--prod"]));
    }

    #[test]
    fn preflight_refuses_the_example_env_prod() {
        let project = xtask_root();
        fs::copy(project.path().join("docker/prod.env.example"), env_prod(project.path())).expect("copy");
        let out = output(&mut xtask(project.path(), &["--dry-run", "check", "--prod"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check --prod accepted the example .env.prod:\n{stderr}");
        assert!(stderr.contains("SECRET_KEY"), "the refusal names the example SECRET_KEY:\n{stderr}");
    }
}
