//! `cargo xtask backup` against the recording fake docker: settings that cannot work are
//! refused in one line naming the variable, before Docker or restic is called, and the dry
//! run prints the snapshot's plan without its password.

use crate::support::fake_docker::Compose;
use crate::support::sandbox::Sandbox;

const PROD_ENV: &str = "DEBUG=0
POSTGRES_HOST=db
POSTGRES_USER=shop
POSTGRES_PASSWORD=vN4rT8yU2iO6pA1s
POSTGRES_DB=shop_live
";
const PASSWORD: &str = "BACKUP_PASSWORD=k3Jf8sLq0PzX7wVb2Nm5\n";
/// The production stack's backup overlay, as a command line names it.
const OVERLAY: &str = "/docker/compose.backup.yml";
/// SFTP settings the service can keep, less the schedule.
const SFTP_SETTINGS: &str = "BACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\nBACKUP_PASSWORD=k3Jf8sLq0PzX7wVb2Nm5\nBACKUP_SSH_KEY=certs/backup_ed25519\nBACKUP_KNOWN_HOSTS=certs/backup_known_hosts\n";

/// A project root named `shop` whose `.env.prod` ends with `backup` (its BACKUP_* lines).
fn shop(backup: &str) -> Sandbox {
    let sandbox = Sandbox::named("shop").with_clean_env().with_file(".env.prod", &format!("{PROD_ENV}{backup}"));
    sandbox.with_fake_docker(Compose::V2).with_file("certs/backup_ed25519", "key")
}

#[test]
fn settings_that_cannot_work_are_refused_in_one_line_before_any_call() {
    let repository = "BACKUP_REPOSITORY=sftp:b@host:/srv\n";
    let cases = [
        (String::new(), "BACKUP_REPOSITORY is not set in ", "name a restic repository off this host"),
        (
            format!("BACKUP_REPOSITORY=/srv/backups\n{PASSWORD}"),
            "BACKUP_REPOSITORY=/srv/backups in ",
            "is not off this host",
        ),
        (repository.to_owned(), "BACKUP_PASSWORD is not set in ", "keep a copy off this host"),
        (format!("{repository}BACKUP_PASSWORD=short\n"), "BACKUP_PASSWORD in ", "is shorter than 16 characters"),
        (
            format!("{repository}{PASSWORD}BACKUP_KEEP=daily=x\n"),
            "BACKUP_KEEP=daily=x in ",
            "\"daily=x\" is not UNIT=N",
        ),
        (
            format!("{repository}{PASSWORD}BACKUP_SSH_KEY=certs/missing\n"),
            "BACKUP_SSH_KEY=certs/missing in ",
            "no such file",
        ),
        (
            format!("BACKUP_REPOSITORY=s3:host/bucket\n{PASSWORD}BACKUP_SSH_KEY=certs/backup_ed25519\n"),
            "BACKUP_SSH_KEY in ",
            "is for an SFTP repository",
        ),
        (
            format!("{repository}{PASSWORD}BACKUP_SCHEDULE=every night\n"),
            "BACKUP_SCHEDULE=every night in ",
            "is not an interval: write an interval such as daily, hourly, 6h or 30min",
        ),
    ];
    for (lines, start, why) in cases {
        let project = shop(&lines);
        for args in [&["backup"][..], &["backup", "list"], &["backup", "restore", "latest", "--yes"]] {
            let run = project.xtask(args);
            assert_eq!(run.code, 1, "{args:?} with {lines:?}: {}", run.stderr);
            assert_eq!(run.stderr_lines().len(), 1, "{args:?} with {lines:?}: {}", run.stderr);
            assert!(run.stderr.starts_with(&format!("error: {start}")), "{args:?} with {lines:?}: {}", run.stderr);
            assert!(run.stderr.contains(".env.prod") && run.stderr.contains(why), "{}", run.stderr);
        }
        assert!(project.calls().is_empty(), "{lines:?}: {:#?}", project.calls());
    }
}

/// The plan `--dry-run COMMAND` prints, which must succeed, with the root as `ROOT`.
fn dry_run(project: &Sandbox, command: &str) -> String {
    let run = project.xtask(&["--dry-run", command]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.replace(&project.root().display().to_string(), "ROOT")
}

#[test]
fn the_dry_run_prints_the_snapshot_with_restic_over_ssh_by_key_and_no_password() {
    let settings = format!(
        "BACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\n{PASSWORD}BACKUP_KEEP=daily=7,weekly=4\nBACKUP_SSH_KEY=certs/backup_ed25519\n"
    );
    let project = shop(&settings);
    let plan = dry_run(&project, "backup");
    let ssh = "'sftp.command=ssh -i ROOT/certs/backup_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20 backup@10.0.0.2 -s sftp'";
    let restic = format!("RESTIC_PASSWORD=*** restic -r sftp:backup@10.0.0.2:/srv/site -o {ssh}");
    for line in [
        "cd ROOT && docker volume inspect --format '{{.Name}}' shop-prod_media",
        "cd ROOT && docker run --rm --network none -v shop-prod_media:/srv/media:ro --entrypoint '' shop-web tar -C /srv/media -cf - . | unpack into ROOT/.stack/backup/staging/media",
        &format!("cd ROOT/.stack/backup/staging && {restic} backup --json --host shop-prod --tag site --tag 'release=RELEASE' --tag 'bytes=0' ."),
        &format!("# then remove ROOT/.stack/backup/staging; once stored: cd ROOT && {restic} forget --prune --host shop-prod --tag site --group-by host --keep-daily 7 --keep-weekly 4"),
    ] {
        assert!(plan.lines().any(|l| l == line), "no line\n{line}\nin\n{plan}");
    }
    assert!(plan.contains("pg_dump --format=custom"), "{plan}");
    assert!(!plan.contains("k3Jf8sLq0PzX7wVb2Nm5"), "the password is printed:\n{plan}");
    assert!(!project.root().join(".stack/backup").exists(), "the dry run staged files");
}

/// The production stack with `.env.prod` ending in `backup`.
fn prod_with(backup: &str) -> Sandbox {
    crate::cli::shop(Compose::V2)
        .with_file(".env.prod", &format!("{}{backup}", crate::cli::PROD_ENV))
        .with_file("certs/backup_ed25519", "key")
        .with_file("certs/backup_known_hosts", "10.0.0.2 ssh-ed25519 AAAA")
}

#[test]
fn a_schedule_adds_the_backup_service_with_its_settings_parsed() {
    let settings = format!(
        "BACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\n{PASSWORD}BACKUP_KEEP=daily=7,weekly=4\nBACKUP_SSH_KEY=certs/backup_ed25519\nBACKUP_KNOWN_HOSTS=certs/backup_known_hosts\nBACKUP_SCHEDULE=daily@03:30\n"
    );
    let project = prod_with(&settings);
    let plan = dry_run(&project, "prod");
    let build = plan.lines().find(|l| l.ends_with(" build")).unwrap_or_else(|| panic!("no build in\n{plan}"));
    for part in [
        "BACKUP_IMAGE=shop-backup BACKUP_HOST=shop-prod BACKUP_EVERY=86400 BACKUP_AT=12600 BACKUP_FORGET='--group-by host --keep-daily 7 --keep-weekly 4' BACKUP_HEALTH_INTERVAL=60s",
        "BACKUP_SSH_KEY_FILE=ROOT/certs/backup_ed25519 BACKUP_KNOWN_HOSTS_FILE=ROOT/certs/backup_known_hosts",
        OVERLAY,
    ] {
        assert!(build.contains(part), "no {part}\nin\n{build}");
    }
    assert!(!plan.contains("k3Jf8sLq0PzX7wVb2Nm5"), "the password is printed:\n{plan}");
    assert!(
        plan.lines().any(|l| l == "# create ROOT/.stack/prod (the backup service reads the release record there)"),
        "{plan}"
    );
    assert!(!project.root().join(".stack/prod").exists(), "the dry run made the record's directory");
    let ps = project.xtask(&["ps", "--prod"]);
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    assert!(
        project.root().join(".stack/prod").is_dir(),
        "the record's directory was left for the engine to make (as root)"
    );
}

#[test]
fn a_schedule_the_service_cannot_keep_is_refused_in_one_line() {
    let sftp =
        format!("BACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\n{PASSWORD}BACKUP_SSH_KEY=certs/backup_ed25519\n");
    let cases = [
        (format!("{sftp}BACKUP_SCHEDULE=0 3 * * *\n"), "BACKUP_SCHEDULE=0 3 * * * in ", "e.g. daily@03:30"),
        (format!("{sftp}BACKUP_SCHEDULE=5s\n"), "BACKUP_SCHEDULE=5s in ", "is shorter than 10s"),
        (
            format!("{sftp}BACKUP_SCHEDULE=daily\n"),
            "BACKUP_SCHEDULE in ",
            "needs BACKUP_SSH_KEY and BACKUP_KNOWN_HOSTS",
        ),
        (
            format!("BACKUP_REPOSITORY=local:/srv/backups\n{PASSWORD}BACKUP_SCHEDULE=daily\n"),
            "BACKUP_SCHEDULE in ",
            "without this host's disk",
        ),
        (format!("BACKUP_SCHEDULE=daily\n{PASSWORD}"), "BACKUP_REPOSITORY is not set in ", "off this host"),
    ];
    for (lines, start, why) in cases {
        let project = prod_with(&lines);
        for args in [&["prod"][..], &["ps", "--prod"]] {
            let run = project.xtask(args);
            assert_eq!(run.code, 1, "{args:?} with {lines:?}: {}", run.stderr);
            assert_eq!(run.stderr_lines().len(), 1, "{args:?} with {lines:?}: {}", run.stderr);
            assert!(run.stderr.starts_with(&format!("error: {start}")), "{args:?} with {lines:?}: {}", run.stderr);
            assert!(run.stderr.contains(".env.prod") && run.stderr.contains(why), "{}", run.stderr);
        }
        // Taking the stack down does not depend on them: the service goes as an orphan.
        let down = project.xtask(&["--dry-run", "down", "--prod"]);
        assert_eq!(down.code, 0, "down with {lines:?}: {}", down.stderr);
        assert!(down.stderr.starts_with(&format!("warning: {start}")), "down with {lines:?}: {}", down.stderr);
        let call = down.stdout.lines().find(|l| l.contains(" down")).unwrap_or_else(|| panic!("{}", down.stdout));
        assert!(call.ends_with(" down --remove-orphans") && !call.contains(OVERLAY), "{call}");
    }
    let project = prod_with(&format!("{}BACKUP_SCHEDULE=daily\n", SFTP_SETTINGS));
    let down = project.xtask(&["--dry-run", "down", "--prod"]);
    let call = down.stdout.lines().find(|l| l.contains(" down")).unwrap_or_else(|| panic!("{}", down.stdout));
    assert!(call.ends_with(" down") && call.contains(OVERLAY) && down.stderr.is_empty(), "{call}\n{}", down.stderr);
}

/// The drill's scratch Postgres goes with its anonymous data volume, which holds the
/// restored database, whatever happened.
#[test]
fn the_dry_run_of_a_drill_removes_the_scratch_database_with_its_volume() {
    let project = shop(&format!("BACKUP_REPOSITORY=s3:host/bucket\n{PASSWORD}"));
    let run = project.xtask(&["--dry-run", "backup", "verify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line =
        run.stdout.lines().find(|l| l.starts_with("# whatever happened: ")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains("docker rm --force --volumes "), "{line}");
}

/// A restore stops the production stack's backup service while it replaces the data, after
/// the safety snapshot, and starts it again after.
#[test]
fn the_dry_run_of_a_restore_stops_the_backup_service_while_the_data_is_replaced() {
    let project = shop(&format!("BACKUP_REPOSITORY=s3:host/bucket\n{PASSWORD}"));
    let run = project.xtask(&["--dry-run", "backup", "restore", "latest", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.stdout;
    let lines: Vec<&str> = plan.lines().collect();
    let position =
        |part: &str| lines.iter().position(|l| l.contains(part)).unwrap_or_else(|| panic!("no {part} in\n{plan}"));
    let stop = position("# stop the backup service's containers, if any run (`cd ");
    assert!(lines[stop].contains("docker ps --quiet --filter 'label=com.docker.compose.project=shop-prod' --filter 'label=com.docker.compose.service=backup'"), "{}", lines[stop]);
    assert!(position("--tag before-restore") < stop, "{plan}");
    assert!(
        stop < position("pg_restore --clean")
            && position("pg_restore --clean") < position("# start the backup service's containers again"),
        "{plan}"
    );
    assert!(
        position("find /srv/media -mindepth 1 -delete") < position("# start the backup service's containers again"),
        "{plan}"
    );
}
