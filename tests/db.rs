//! `cargo xtask db` against the recording fake docker: the exact command lines, the
//! dump bytes landing in the backup file with its checksum, and every refusal happening
//! before Docker is called.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::support::fake_docker::Compose;
use crate::support::sandbox::Sandbox;
use crate::support::text;

const DEV_ENV: &str =
    "DEBUG=1\nSECRET_KEY=dev\nPOSTGRES_HOST=db\nPOSTGRES_USER=app\nPOSTGRES_PASSWORD=dev\nPOSTGRES_DB=app\n";
const PROD_ENV: &str = "DEBUG=0
POSTGRES_HOST=db.example.net
POSTGRES_PORT=6543
POSTGRES_USER=shop
POSTGRES_PASSWORD=vN4rT8yU2iO6pA1s
POSTGRES_DB=shop_live
";
const PASSWORD: &str = "vN4rT8yU2iO6pA1s";

/// What the fake prints as the dump: binary, with a NUL and a 0xff byte.
const FAKE_DUMP: &str = r"PGDMP\0001\0016\0000\0377rows";
const DUMP_BYTES: &[u8] = b"PGDMP\x01\x0e\x00\xffrows";

/// The variables of a dev Compose command: the project's description (a root without one
/// runs project-template/).
const DEV_VARS: &str =
    "DJANGO_DIR=project-template DJANGO_DEPENDENCIES=project-template/requirements.txt PYTHON_VERSION=3.13 \
    DJANGO_SETTINGS=config.settings.dev DJANGO_PROJECT_SETTINGS=config.settings.dev DJANGO_APP=config.wsgi \
    DJANGO_WORKER_CLASS=sync BUILD_PACKAGES='' RUN_PACKAGES='' DEV_WEB_IMAGE=shop-dev-web";
const DEV: &str =
    "docker compose --project-name shop-dev --project-directory ROOT --env-file ROOT/.env -f ROOT/docker/compose.yml -f ROOT/.stack/processes/dev.yml";
const PROD_WITH_DB: &str = "docker compose --project-name shop-prod --project-directory ROOT --env-file ROOT/.env.prod -f ROOT/docker/compose.prod.yml -f ROOT/docker/compose.db.yml -f ROOT/.stack/processes/prod.yml";
const DUMP_IN_DB: &str =
    r#"exec -T db sh -c exec pg_dump --format=custom --username="$POSTGRES_USER" --dbname="$POSTGRES_DB""#;
const RESTORE_IN_DB: &str = r#"exec -T db sh -c exec pg_restore --clean --if-exists --single-transaction --exit-on-error --no-owner --username="$POSTGRES_USER" --dbname="$POSTGRES_DB""#;
const MANAGED: &str = "--host=db.example.net --port=6543 --username=shop --dbname=shop_live";

/// A project root named `shop` with both env files, run in an empty environment whose PATH
/// holds the fake `docker`, recording PGPASSWORD, and `cat` for it (FAKE_STDIN).
fn shop() -> Sandbox {
    let sandbox = Sandbox::named("shop").with_clean_env().with_file(".env", DEV_ENV).with_file(".env.prod", PROD_ENV);
    sandbox.with_fake_docker(Compose::V2).with_program("cat").with_env("FAKE_ENV", "PGPASSWORD")
}

fn backups(project: &Sandbox) -> PathBuf {
    project.root().join("backups")
}

/// Runs and expects success.
fn run_ok(project: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = project.output(args, env);
    assert!(output.status.success(), "{args:?} failed: {}", text(&output.stderr));
    output
}

/// The recorded calls as the sandbox shows them, less the empty WEB_IMAGE field.
fn calls(project: &Sandbox) -> Vec<String> {
    project.calls().iter().map(|l| l.replacen("|WEB_IMAGE=|", "|", 1)).collect()
}

fn files_in_backups(project: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(backups(project))
        .map(|dir| dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A backup as `db backup` writes it.
fn backup_file(project: &Sandbox, name: &str, bytes: &[u8]) -> PathBuf {
    fs::create_dir_all(backups(project)).unwrap();
    let path = backups(project).join(name);
    fs::write(&path, bytes).unwrap();
    fs::write(path.with_file_name(format!("{name}.sha256")), format!("{}  {name}\n", sha256(bytes))).unwrap();
    path
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The probes before any bundled-database command: which Compose, and is the engine up.
fn compose_probes() -> Vec<String> {
    vec![
        "ROOT|PGPASSWORD=<unset>|docker compose version".to_owned(),
        "ROOT|PGPASSWORD=<unset>|docker info --format {{.ServerVersion}}".to_owned(),
    ]
}

#[test]
fn backup_streams_the_dump_into_a_stamped_file_with_its_checksum() {
    let project = shop();
    let output = run_ok(&project, &["db", "backup"], &[("FAKE_STDOUT", FAKE_DUMP)]);
    let mut want = compose_probes();
    want.push(format!("ROOT|PGPASSWORD=<unset>|{DEV} {DUMP_IN_DB}"));
    assert_eq!(calls(&project), want);

    let files = files_in_backups(&project);
    assert_eq!(files.len(), 2, "{files:?}");
    let (dump, sums) = (&files[0], &files[1]);
    assert!(dump.starts_with("app-") && dump.ends_with("Z.dump") && dump.len() == "app-20250131T235959Z.dump".len());
    assert_eq!(sums, &format!("{dump}.sha256"));
    assert_eq!(fs::read(backups(&project).join(dump)).unwrap(), DUMP_BYTES);
    let recorded = fs::read_to_string(backups(&project).join(sums)).unwrap();
    assert_eq!(recorded, format!("{}  {dump}\n", sha256(DUMP_BYTES)));
    let check = Command::new("sha256sum").args(["-c", sums]).current_dir(backups(&project)).output().unwrap();
    assert!(check.status.success(), "sha256sum -c: {}", text(&check.stdout));

    let stdout = text(&output.stdout);
    let path = backups(&project).join(dump);
    assert!(stdout.contains(&format!("{} (13 B)", path.display())), "{stdout}");
}

#[test]
fn backup_of_a_managed_database_runs_pg_dump_in_a_one_off_container() {
    let project = shop();
    let out = project.path("elsewhere");
    run_ok(&project, &["db", "backup", "--prod", "--out", "elsewhere"], &[("FAKE_STDOUT", FAKE_DUMP)]);
    let run = format!(
        "ROOT|PGPASSWORD={PASSWORD}|docker run --rm --network host -e PGPASSWORD postgres:17-alpine pg_dump --format=custom {MANAGED}"
    );
    assert_eq!(calls(&project), ["ROOT|PGPASSWORD=<unset>|docker info --format {{.ServerVersion}}".to_owned(), run]);
    let names: Vec<String> =
        fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("shop_live-") && n.ends_with(".dump")), "{names:?}");
}

#[test]
fn the_image_comes_from_the_env_file_and_the_bundled_prod_database_is_exec_ed() {
    let project = shop();
    fs::write(project.root().join(".env.prod"), format!("{PROD_ENV}POSTGRES_IMAGE=registry.local/pg:16\n")).unwrap();
    run_ok(&project, &["db", "psql", "--prod"], &[]);
    let psql = format!("ROOT|PGPASSWORD={PASSWORD}|docker run --rm -i --network host -e PGPASSWORD registry.local/pg:16 psql {MANAGED}");
    assert_eq!(calls(&project).last(), Some(&psql));

    let project = shop();
    fs::write(project.root().join(".env.prod"), PROD_ENV.replace("POSTGRES_HOST=db.example.net", "POSTGRES_HOST=db"))
        .unwrap();
    run_ok(&project, &["db", "backup", "--prod"], &[("FAKE_STDOUT", FAKE_DUMP)]);
    let dump = format!("ROOT|WEB_IMAGE=shop-web|PGPASSWORD=<unset>|{PROD_WITH_DB} {DUMP_IN_DB}");
    assert_eq!(calls(&project).last(), Some(&dump));
}

#[test]
fn a_failed_dump_leaves_no_file() {
    let project = shop();
    let output = project.output(&["db", "backup"], &[("FAKE_STDOUT", FAKE_DUMP), ("FAKE_EXIT", "2")]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(files_in_backups(&project), Vec::<String>::new());
}

#[test]
fn a_dump_that_exits_0_without_an_archive_is_refused_and_removed() {
    let project = shop();
    let output = project.output(&["db", "backup"], &[("FAKE_STDOUT", "not a dump")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("error: the dump exited 0 but wrote no pg_dump archive (no PGDMP header)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(files_in_backups(&project), Vec::<String>::new());
}

#[test]
fn dry_run_shows_the_redirections_masks_the_password_and_calls_nothing() {
    let project = shop();
    let output = run_ok(&project, &["--dry-run", "db", "backup", "--prod"], &[]);
    let stdout = text(&output.stdout).replace(&project.root().to_string_lossy().into_owned(), "ROOT");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let start = "cd ROOT && PGPASSWORD=*** docker run --rm --network host -e PGPASSWORD postgres:17-alpine pg_dump";
    assert!(lines[0].starts_with(start) && lines[0].contains(" > ROOT/backups/shop_live-"), "{}", lines[0]);
    assert!(lines[1].starts_with("# then: write its SHA-256 to ROOT/backups/shop_live-"), "{}", lines[1]);
    assert!(lines[2].starts_with("# then: check that ROOT/backups/shop_live-") && lines[2].contains("pg_dump archive"));
    assert!(!stdout.contains(PASSWORD), "{stdout}");
    let backup = backup_file(&project, "app-20250131T235959Z.dump", DUMP_BYTES);
    // Without --yes a real run stops before anything: so does the dry run.
    let refused = run_ok(&project, &["--dry-run", "db", "restore", &backup.to_string_lossy()], &[]);
    assert!(text(&refused.stdout).starts_with("# stop here, showing what would be replaced: refusing to replace"));
    let output = run_ok(&project, &["--dry-run", "db", "restore", "--yes", &backup.to_string_lossy()], &[]);
    let stdout = text(&output.stdout).replace(&project.root().to_string_lossy().into_owned(), "ROOT");
    let script = RESTORE_IN_DB.replace("sh -c exec", "sh -c 'exec") + "'";
    let restore = format!("cd ROOT && {DEV_VARS} {DEV} {script} < ROOT/backups/app-20250131T235959Z.dump");
    assert!(stdout.lines().any(|l| l == restore), "{stdout}");
    assert!(calls(&project).is_empty(), "{:#?}", calls(&project));
    assert!(!backups(&project).join(".partial").exists());
}

#[test]
fn restore_feeds_the_backup_to_pg_restore_once_confirmed() {
    let project = shop();
    let backup = backup_file(&project, "app-20250131T235959Z.dump", DUMP_BYTES);
    let received = project.path("stdin");
    let output = run_ok(
        &project,
        &["db", "restore", &backup.to_string_lossy(), "--yes"],
        &[("FAKE_STDIN", &received.to_string_lossy())],
    );
    let mut want = compose_probes();
    want.push(format!("ROOT|PGPASSWORD=<unset>|{DEV} {RESTORE_IN_DB}"));
    assert_eq!(calls(&project), want);
    assert_eq!(fs::read(&received).unwrap(), DUMP_BYTES);
    assert!(text(&output.stdout).contains("restored database app"), "{}", text(&output.stdout));
}

#[test]
fn restore_into_a_managed_database_passes_the_password_in_the_environment() {
    let project = shop();
    let backup = backup_file(&project, "shop_live-20250131T235959Z.dump", DUMP_BYTES);
    // The record of the release steps the restored data may lack goes with it.
    let record = project.root().join(".stack/prod/released");
    fs::create_dir_all(record.parent().unwrap()).unwrap();
    fs::write(&record, "image sha256:1\n").unwrap();
    run_ok(&project, &["db", "restore", "--prod", "--yes", &backup.to_string_lossy()], &[]);
    let run = format!("ROOT|PGPASSWORD={PASSWORD}|docker run --rm -i --network host -e PGPASSWORD postgres:17-alpine pg_restore --clean --if-exists --single-transaction --exit-on-error --no-owner {MANAGED}");
    assert_eq!(calls(&project).last(), Some(&run));
    assert!(!record.exists(), "the next prod would skip the migrations of the restored database");
}

#[test]
fn restore_without_yes_says_what_it_would_replace_and_calls_nothing() {
    let project = shop();
    let backup = backup_file(&project, "shop_live-20250131T235959Z.dump", DUMP_BYTES);
    let output = project.output(&["db", "restore", "--prod", &backup.to_string_lossy()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("refusing to replace database shop_live without --yes") && stderr.contains("--prod --yes`")
    );
    let stdout = text(&output.stdout);
    for part in ["prod (project shop-prod)", "shop_live", "db.example.net:6543", "2025-01-31 23:59:59 UTC", "13 B"] {
        assert!(stdout.contains(part), "{part} missing from:\n{stdout}");
    }
    assert!(calls(&project).is_empty(), "{:#?}", calls(&project));
}

#[test]
fn a_damaged_or_unchecked_backup_is_refused_before_any_docker_call() {
    let project = shop();
    let backup = backup_file(&project, "app-20250131T235959Z.dump", DUMP_BYTES);
    let mut damaged = DUMP_BYTES.to_vec();
    damaged[7] ^= 1;
    fs::write(&backup, damaged).unwrap();
    let output = project.output(&["db", "restore", "--yes", &backup.to_string_lossy()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("does not match its checksum"), "{}", text(&output.stderr));

    fs::remove_file(backup.with_file_name("app-20250131T235959Z.dump.sha256")).unwrap();
    let output = project.output(&["db", "restore", "--yes", &backup.to_string_lossy()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains(".sha256 not found"), "{}", text(&output.stderr));
    assert!(calls(&project).is_empty(), "{:#?}", calls(&project));
}

#[test]
fn list_shows_size_time_and_checksum_status() {
    let project = shop();
    let output = run_ok(&project, &["db", "list"], &[]);
    assert!(text(&output.stdout).starts_with("no backups in "), "{}", text(&output.stdout));

    backup_file(&project, "app-20250131T235959Z.dump", DUMP_BYTES);
    let bad = backup_file(&project, "app-20250201T000000Z.dump", DUMP_BYTES);
    fs::write(bad, b"changed").unwrap();
    let plain = backup_file(&project, "app-20250202T000000Z.dump", &[0; 2048]);
    fs::remove_file(plain.with_file_name("app-20250202T000000Z.dump.sha256")).unwrap();
    fs::write(backups(&project).join(".app-20250203T000000Z.dump.partial"), b"unfinished").unwrap();

    let output = run_ok(&project, &["db"], &[]);
    let stdout = text(&output.stdout);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split("  ").filter(|c| !c.is_empty()).collect()).collect();
    let rows: Vec<Vec<&str>> = rows.into_iter().map(|r| r.into_iter().map(str::trim).collect()).collect();
    assert_eq!(
        rows,
        [
            ["app-20250131T235959Z.dump", "13 B", "2025-01-31 23:59:59 UTC", "ok"],
            ["app-20250201T000000Z.dump", "7 B", "2025-02-01 00:00:00 UTC", "MISMATCH"],
            ["app-20250202T000000Z.dump", "2.0 KiB", "2025-02-02 00:00:00 UTC", "no checksum"],
        ],
        "{stdout}"
    );
    assert!(calls(&project).is_empty());
}

#[test]
fn psql_opens_on_the_bundled_database_without_a_terminal_flag_when_piped() {
    let project = shop();
    run_ok(&project, &["db", "psql"], &[]);
    let mut want = compose_probes();
    want.push(format!(
        r#"ROOT|PGPASSWORD=<unset>|{DEV} exec -T db sh -c exec psql --username="$POSTGRES_USER" --dbname="$POSTGRES_DB""#
    ));
    assert_eq!(calls(&project), want);
}

#[test]
fn a_missing_database_setting_is_one_line_naming_the_file() {
    let project = shop();
    fs::write(project.root().join(".env.prod"), PROD_ENV.replace("POSTGRES_USER=shop\n", "")).unwrap();
    let output = project.output(&["db", "backup", "--prod"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.trim_end().ends_with(
            "POSTGRES_USER is not set in ROOT/.env.prod: add it there"
                .replace("ROOT", &project.root().to_string_lossy())
                .as_str()
        ),
        "{stderr}"
    );
    assert!(calls(&project).is_empty());
}
