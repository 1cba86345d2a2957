//! The env file checks through the real binary: `check --prod` and `prod` refuse every bad
//! production file in tests/fixtures/env/prod with one exact line and start nothing; `check`
//! does the same for `.env`. Then the parser is held against Compose v2 itself.

mod env_sandbox;

use std::fs;

use env_sandbox::{compose_env, repo_file, Run, Sandbox};

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
        "cd {root} && WEB_IMAGE=site-web docker compose --project-name site-prod --project-directory {root} \
         --env-file {root}/.env.prod -f {root}/docker/compose.prod.yml -f {root}/docker/compose.db.yml"
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
    assert!(plan_lines(&prod).iter().any(|line| line.ends_with(" up --detach --no-build")), "{prod:?}");
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
    sandbox.write(".env", &fs::read_to_string(repo_file(".env.example")).unwrap());
    assert_eq!(plan_lines(&sandbox.xtask(&["--dry-run", "check"])).len(), 4);
    let example = fs::read_to_string(repo_file(".env.prod.example")).unwrap();
    sandbox.write(".env.prod", &example);
    let line_of = |key: &str| example.lines().position(|l| l.starts_with(&format!("{key}="))).unwrap() + 1;
    let lines = [
        format!(".env.prod:{}: SECRET_KEY is the example value change-me: {NEW_KEY}", line_of("SECRET_KEY")),
        format!(
            ".env.prod:{}: POSTGRES_PASSWORD is the example value change-me: {NEW_PASSWORD}",
            line_of("POSTGRES_PASSWORD")
        ),
    ];
    assert_refused(&sandbox, &["--dry-run", "prod"], &lines, &prod_summary(2));
}

#[test]
fn the_parser_reads_every_fixture_and_example_as_compose_v2_does() {
    let mut paths =
        vec![repo_file(".env.example"), repo_file(".env.prod.example"), repo_file("tests/fixtures/env/syntax.env")];
    for dir in ["prod", "dev"] {
        let entries = fs::read_dir(repo_file(&format!("tests/fixtures/env/{dir}"))).unwrap();
        paths.extend(entries.map(|entry| entry.unwrap().path()));
    }
    for path in paths {
        let ours = xtask::config::envfile::parse(&fs::read_to_string(&path).unwrap(), &|_| None);
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
