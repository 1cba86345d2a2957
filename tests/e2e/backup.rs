//! `backup` against a real off-host repository: restic over SFTP to the OpenSSH host of
//! tests/e2e/sftp.rs, reached by key only. The persist scenario's stack, with its rows and
//! uploads, is snapshotted, its volumes wiped (`down --volumes`), a fresh stack started and the
//! snapshot restored: every row and every media byte must come back, and the site serve them.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::harness::{docker, docker_ok, text, timing, Project};
use super::http::Site;
use super::scheduled_backup;
use super::sftp::SftpHost;
use super::{assert_listed, get_ok, media_url, upload, Csrf};

const PASSWORD: &str = "e2e-backup-password-0123456789";

/// The large upload: big enough that a second snapshot sending it again would show.
pub const LARGE: usize = 6 * 1024 * 1024;

/// The engine's anonymous volumes (named by 64 hex digits) that hold a Postgres data directory.
fn scratch_databases() -> BTreeSet<String> {
    let names = docker_ok(&["volume", "ls", "--quiet"]);
    let anonymous = names.split_whitespace().filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()));
    // A volume another scenario removes meanwhile holds nothing.
    let holds_a_database = |name: &&str| {
        let mountpoint = text(&docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", name]).stdout);
        !mountpoint.trim().is_empty() && Path::new(mountpoint.trim()).join("PG_VERSION").exists()
    };
    anonymous.filter(holds_a_database).map(str::to_owned).collect()
}

pub fn survives_the_host(project: &Project, site: Site, committed: &[String]) {
    let host = SftpHost::start().unwrap_or_else(|e| panic!("the SFTP backup host did not start: {e}"));
    configure(project, &host);
    let csrf = Csrf::fetch(site);
    let large = large_bytes();
    let stored = upload(site, &csrf, "large upload.bin", &large);
    assert_eq!(stored.status, 302, "the large upload was refused:\n{stored}");
    let web = project.container("prod", "web");
    // A name no upload form gives: spaces, non-ASCII, a directory of its own.
    docker_ok(&[
        "exec",
        &web,
        "sh",
        "-c",
        "mkdir -p '/app/media/odd dir' && printf 'bytes ü\\n' > '/app/media/odd dir/ünï cödé ✓.txt'",
    ]);

    let started = Instant::now();
    let first = snapshot(project);
    timing("backup: first snapshot", started.elapsed());
    let after_first = host.stored_bytes();
    assert!(after_first > LARGE as u64 / 2, "the repository holds {after_first} bytes after the first snapshot");
    let later = upload(site, &csrf, "after-first.txt", b"later");
    assert_eq!(later.status, 302, "upload refused:\n{later}");
    let started = Instant::now();
    let second = snapshot(project);
    timing("backup: second snapshot", started.elapsed());
    let sent = host.stored_bytes() - after_first;
    eprintln!("e2e: backup: the second snapshot stored {sent} bytes on the SFTP host (the first {after_first})");
    assert!(sent < LARGE as u64 / 4, "the second snapshot sent {sent} bytes: it uploaded unchanged data again");

    let listed = list(project);
    assert!(listed.contains(&first) && listed.contains(&second), "backup list:\n{listed}");
    let (started, databases) = (Instant::now(), scratch_databases());
    let verified = text(&project.ok(&["backup", "verify"]).stdout);
    timing("backup: verify (restore drill)", started.elapsed());
    assert!(verified.contains("snapshot latest") && verified.contains("verified"), "{verified}");
    let left: Vec<String> = scratch_databases().difference(&databases).cloned().collect();
    assert!(left.is_empty(), "the drill left its restored database behind in volume(s) {left:?}");

    let before = Data::read(project);
    let refused = project.xtask(&["backup", "restore", "latest"]);
    assert!(!refused.status.success(), "restore without --yes went ahead");
    assert!(text(&refused.stderr).contains("without --yes"), "{}", text(&refused.stderr));
    assert_eq!(Data::read(project), before, "a refused restore changed the data");

    project.ok(&["down", "--prod", "--volumes"]);
    project.ok(&["prod", "--with-db"]);
    assert!(media_url(site, "after-first.txt").is_none(), "the fresh stack still has the uploads");
    let started = Instant::now();
    let restored = text(&project.ok(&["backup", "restore", "latest", "--yes"]).stdout);
    timing("backup: restore into the fresh stack", started.elapsed());
    assert!(restored.contains("restored snapshot latest") && restored.contains(", release sha256:"), "{restored}");
    assert_eq!(Data::read(project), before, "the restore did not bring every row and media byte back");

    let mut names = committed.to_vec();
    names.push("after-first.txt".into());
    assert_listed(site, &names);
    let url = media_url(site, "large_upload.bin").expect("the large upload is listed");
    assert!(get_ok(site, &url).body == large, "the restored large upload is served with other bytes");

    // BACKUP_KEEP=last=2: the safety snapshot the restore took pushed the first one out.
    let listed = list(project);
    assert!(!listed.contains(&first) && listed.contains(&second), "retention kept:\n{listed}");
    assert!(listed.contains("before-restore"), "no safety snapshot:\n{listed}");
    faults(project, &host, &before);
    scheduled_backup::takes_snapshots_on_schedule(project, &host, &before);
}

/// A wrong password and an unreachable host are one line each and change neither the data nor
/// the repository; a damaged pack in the repository fails the drill, named.
fn faults(project: &Project, host: &SftpHost, data: &Data) {
    let snapshots = list(project);
    project.set_env(".env.prod", "BACKUP_PASSWORD", "not-the-repository-password-0123");
    let wrong = project.xtask(&["backup"]);
    let said = text(&wrong.stderr);
    assert!(!wrong.status.success() && said.contains("BACKUP_PASSWORD does not open the repository"), "{said}");
    project.set_env(".env.prod", "BACKUP_PASSWORD", PASSWORD);
    // An address on the SFTP host's link where nothing answers.
    let elsewhere = host.repository().replace(&host.server_address(), &host.unused_address());
    project.set_env(".env.prod", "BACKUP_REPOSITORY", &elsewhere);
    let unreachable = project.xtask(&["backup"]);
    let said = text(&unreachable.stderr);
    assert!(!unreachable.status.success(), "a backup to an unreachable host succeeded");
    let unreachable = format!("cannot open the backup repository sftp:root@{}:", host.unused_address());
    assert!(said.contains(&unreachable), "{said}");
    project.set_env(".env.prod", "BACKUP_REPOSITORY", &host.repository());
    assert_eq!(list(project), snapshots, "a failed snapshot changed the repository");
    assert!(!project.path(".stack/backup/staging").exists(), "a failed snapshot left its staging directory");
    assert_eq!(Data::read(project), *data, "a failed snapshot changed the data");

    let pack = largest_pack(&host.repository_dir());
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    let drill = project.xtask(&["backup", "verify"]);
    let said = format!("{}{}", text(&drill.stdout), text(&drill.stderr));
    assert!(!drill.status.success(), "the drill passed on a damaged repository:\n{said}");
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(said.contains(&name) && said.contains("restic found errors in the repository"), "{said}");
    // Mended, for the backup service's snapshots that follow.
    bytes[middle] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
}

/// The largest pack file of a restic repository (one holding the large upload's data).
fn largest_pack(repository: &std::path::Path) -> std::path::PathBuf {
    let packs = walkdir::WalkDir::new(repository.join("data")).into_iter().filter_map(|e| e.ok());
    let largest = packs.filter(|e| e.file_type().is_file()).max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0));
    largest.expect("a pack in the repository").into_path()
}

/// Points .env.prod's BACKUP_* at `host`, keeping the last two snapshots.
pub fn configure(project: &Project, host: &SftpHost) {
    project.set_env(".env.prod", "BACKUP_REPOSITORY", &host.repository());
    project.set_env(".env.prod", "BACKUP_PASSWORD", PASSWORD);
    project.set_env(".env.prod", "BACKUP_SSH_KEY", &host.key().display().to_string());
    project.set_env(".env.prod", "BACKUP_KNOWN_HOSTS", &host.known_hosts().display().to_string());
    project.set_env(".env.prod", "BACKUP_KEEP", "last=2");
}

/// `backup`, which must succeed: the snapshot's short id.
fn snapshot(project: &Project) -> String {
    let out = text(&project.ok(&["backup"]).stdout);
    let line = out.lines().find(|l| l.starts_with("snapshot ")).unwrap_or_else(|| panic!("backup said:\n{out}"));
    eprintln!("e2e: backup: {line}");
    line.split_whitespace().nth(1).expect("an id").to_owned()
}

pub fn list(project: &Project) -> String {
    text(&project.ok(&["backup", "list"]).stdout)
}

/// Bytes that do not compress or repeat.
fn large_bytes() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..LARGE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The site's data as independent readers see it: row counts from psql, every media file's
/// SHA-256 from `sha256sum` in the nginx container.
#[derive(Debug, PartialEq)]
pub struct Data {
    rows: String,
    media: String,
}

impl Data {
    pub fn read(project: &Project) -> Data {
        let db = project.container("prod", "db");
        let rows = project.psql(&db, ".env.prod", "SELECT (SELECT count(*) FROM core_upload) || ' uploads, ' || (SELECT count(*) FROM core_taskrun) || ' task runs'");
        let nginx = project.container("prod", "nginx");
        let media = docker_ok(&[
            "exec",
            &nginx,
            "sh",
            "-c",
            "cd /srv/media && find . -type f -exec sha256sum {} + | sort -k 2",
        ]);
        assert!(media.contains("large_upload.bin") && media.contains("ünï cödé ✓.txt"), "media:\n{media}");
        Data { rows, media }
    }
}
