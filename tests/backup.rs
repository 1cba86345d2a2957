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

#[test]
fn the_dry_run_prints_the_snapshot_with_restic_over_ssh_by_key_and_no_password() {
    let settings = format!(
        "BACKUP_REPOSITORY=sftp:backup@10.0.0.2:/srv/site\n{PASSWORD}BACKUP_KEEP=daily=7,weekly=4\nBACKUP_SSH_KEY=certs/backup_ed25519\n"
    );
    let project = shop(&settings);
    let run = project.xtask(&["--dry-run", "backup"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let root = project.root().display().to_string();
    let plan = run.stdout.replace(&root, "ROOT");
    let ssh = "'sftp.command=ssh -i ROOT/certs/backup_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20 backup@10.0.0.2 -s sftp'";
    let restic = format!("RESTIC_PASSWORD=*** restic -r sftp:backup@10.0.0.2:/srv/site -o {ssh}");
    for line in [
        "cd ROOT && docker volume inspect --format '{{.Name}}' shop-prod_media",
        "cd ROOT && docker run --rm --network none -v shop-prod_media:/srv/media:ro --entrypoint '' shop-web tar -C /srv/media -cf - . | unpack into ROOT/.stack/backup/staging/media",
        &format!("cd ROOT/.stack/backup/staging && {restic} backup --json --host shop-prod --tag site --tag 'release=RELEASE' --tag 'bytes=0' ."),
        &format!("# then remove ROOT/.stack/backup/staging; once stored: cd ROOT && {restic} forget --prune --host shop-prod --tag site --keep-daily 7 --keep-weekly 4"),
    ] {
        assert!(plan.lines().any(|l| l == line), "no line\n{line}\nin\n{plan}");
    }
    assert!(plan.contains("pg_dump --format=custom"), "{plan}");
    assert!(!plan.contains("k3Jf8sLq0PzX7wVb2Nm5"), "the password is printed:\n{plan}");
    assert!(!project.path(".stack/backup").exists(), "the dry run staged files");
}
