//! The production stack's backup service, which BACKUP_SCHEDULE in `.env.prod` adds on the
//! next `prod`, against the SFTP host of tests/e2e/sftp.rs: the schedule fires (a short
//! interval), the retention policy prunes the older snapshots, the second one sends only what
//! changed, and `backup verify` drills what the service stored. A snapshot killed half-way
//! leaves the repository consistent and the next one completes; a backup host cut off turns
//! the service unhealthy after two intervals, the site's data untouched, and healthy again
//! once it answers; a restore stops the service until the data is replaced; without the
//! schedule, the next `prod` removes the service.

use std::process::Command;
use std::time::{Duration, Instant};

use super::backup::{list, Data, LARGE};
use super::harness::{docker, docker_ok, text, timing, wait_for, Project};
use super::sftp::SftpHost;

/// BACKUP_SCHEDULE's interval, in seconds: the shortest it takes.
const EVERY: u64 = 10;

pub fn takes_snapshots_on_schedule(project: &Project, host: &SftpHost, data: &Data) {
    let image = project.web_image().strip_suffix("-web").expect("<name>-web").to_owned() + "-backup";
    project.remove_later(&image);
    project.set_env(".env.prod", "BACKUP_SCHEDULE", &format!("{EVERY}s"));
    project.timed("prod adding the backup service", &["prod", "--with-db"]);
    let service = project.container("prod", "backup");
    // Root only while the agent reads its secrets, at its start.
    let uid = || {
        let status = docker_ok(&["exec", &service, "cat", "/proc/1/status"]);
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let dropped = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        (uid() == "10001 10001 10001 10001").then_some(())
    });
    assert!(dropped.is_some(), "the backup agent still runs as uid {}", uid());

    // Two scheduled snapshots, and BACKUP_KEEP=last=2 leaves only them.
    let started = Instant::now();
    let listed = wait_for(Duration::from_secs(EVERY * 8), Duration::from_secs(1), || {
        let listed = list(project);
        let rows: Vec<&str> = listed.lines().collect();
        (rows.len() == 2 && rows.iter().all(|r| r.ends_with("scheduled"))).then_some(listed)
    });
    let listed = listed.unwrap_or_else(|| panic!("no two scheduled snapshots:\n{}\n{}", list(project), logs(&service)));
    timing("backup service: two scheduled snapshots", started.elapsed());
    eprintln!("e2e: backup service: after retention:\n{listed}");
    assert!(!listed.contains("release unknown"), "the service did not read the release:\n{listed}");
    let added = added_bytes(&logs(&service));
    eprintln!("e2e: backup service: bytes added by each scheduled snapshot: {added:?}");
    assert!(
        added.len() >= 2 && added[1] < LARGE as u64 / 4,
        "a scheduled snapshot sent unchanged data again: {added:?}"
    );
    // Docker's status lags a health interval behind, and a snapshot slowed down by the
    // scenarios alongside may have let the last one age past two intervals for a while.
    let healthy = wait_for(Duration::from_secs(EVERY * 6), Duration::from_secs(1), || {
        (health(&service) == "healthy").then_some(())
    });
    assert!(healthy.is_some(), "not healthy after two snapshots:\n{}\nsshd: {}", logs(&service), host.log_tail());
    let verified = text(&project.ok(&["backup", "verify"]).stdout);
    assert!(verified.contains("verified") && verified.contains(", release sha256:"), "{verified}");

    killed_mid_snapshot(project, &service);
    unreachable_host(project, host, data);
    restore_pauses_the_service(project, data);

    project.set_env(".env.prod", "BACKUP_SCHEDULE", "");
    project.ok(&["prod", "--with-db"]);
    assert!(project.containers("prod", Some("backup")).is_empty(), "the backup service outlived its schedule");
}

/// SIGKILL to restic while it stores a snapshot: the service says so, the next scheduled
/// snapshot completes, and `restic check --read-data` (in `backup verify`) passes.
fn killed_mid_snapshot(project: &Project, service: &str) {
    let mut before = 0;
    let killed = wait_for(Duration::from_secs(EVERY * 6), Duration::from_millis(20), || {
        let top = text(&docker(&["top", service, "-eo", "pid,args"]).stdout);
        let line = top.lines().find(|l| l.contains("restic") && l.contains(" backup --json"))?;
        let pid = line.split_whitespace().next()?.to_owned();
        before = logs(service).lines().count();
        Command::new("kill").args(["-KILL", &pid]).status().ok()?.success().then_some(pid)
    });
    assert!(killed.is_some(), "never saw restic storing a snapshot:\n{}", logs(service));
    let failed = wait_for(Duration::from_secs(30), Duration::from_millis(500), || {
        let found = logs(service).lines().skip(before).position(|l| l.contains("error: cannot store the snapshot"));
        found.map(|at| before + at)
    });
    let failed = failed.unwrap_or_else(|| panic!("the killed snapshot was not reported:\n{}", logs(service)));
    let completed = wait_for(Duration::from_secs(EVERY * 6), Duration::from_secs(1), || {
        logs(service).lines().skip(failed + 1).any(|l| l.contains(" bytes added ")).then_some(())
    });
    assert!(completed.is_some(), "no snapshot completed after the killed one:\n{}", logs(service));
    let verified = project.xtask(&["backup", "verify"]);
    let said = format!("{}{}", text(&verified.stdout), text(&verified.stderr));
    assert!(verified.status.success(), "the repository is damaged after a killed snapshot:\n{said}");
}

/// The backup host cut off: two intervals later the service is unhealthy and `ps` shows it,
/// the data as it was; once the host answers again, the next snapshot makes it healthy.
fn unreachable_host(project: &Project, host: &SftpHost, data: &Data) {
    let service = project.container("prod", "backup");
    host.set_reachable(false);
    let started = Instant::now();
    let unhealthy = wait_for(Duration::from_secs(EVERY * 2 + 40), Duration::from_secs(1), || {
        (health(&service) == "unhealthy").then_some(())
    });
    let state = || docker_ok(&["inspect", "--format", "{{range .State.Health.Log}}{{.Output}}{{end}}", &service]);
    if unhealthy.is_none() {
        host.set_reachable(true);
        panic!("a backup service that stores nothing stays healthy:\n{}\n{}", state(), logs(&service));
    }
    timing("backup service: backup host cut off to unhealthy", started.elapsed());
    let said = state();
    let ps = text(&project.ok(&["ps", "--prod"]).stdout);
    let data_now = Data::read(project);
    host.set_reachable(true);
    assert!(said.contains("stale:") && said.contains("more than two intervals"), "{said}");
    assert!(ps.lines().any(|l| l.contains("backup") && l.contains("unhealthy")), "{ps}");
    assert_eq!(data_now, *data, "an unreachable backup host changed the data");
    let started = Instant::now();
    let healthy = wait_for(Duration::from_secs(EVERY * 3 + 60), Duration::from_secs(1), || {
        (health(&service) == "healthy").then_some(())
    });
    assert!(healthy.is_some(), "the service stayed unhealthy with the host back:\n{}\n{}", state(), logs(&service));
    timing("backup service: host back to healthy", started.elapsed());
}

/// `backup restore` with the service running: it is stopped while the data is replaced and
/// runs again after, and the data is the snapshot's.
fn restore_pauses_the_service(project: &Project, data: &Data) {
    let service = project.container("prod", "backup");
    let started_at = || docker_ok(&["inspect", "--format", "{{.State.StartedAt}}", &service]).trim().to_owned();
    let before = started_at();
    let restored = text(&project.ok(&["backup", "restore", "latest", "--yes"]).stdout);
    assert!(restored.contains("stopping the backup service until the data is replaced"), "{restored}");
    let running = docker_ok(&["inspect", "--format", "{{.State.Running}}", &service]);
    assert_eq!(running.trim(), "true", "the backup service was not started again:\n{restored}");
    assert_ne!(started_at(), before, "the backup service ran on while the data was replaced");
    assert_eq!(Data::read(project), *data, "the restore with the service running changed the data");
}

/// Docker's health status of `container`.
fn health(container: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", container]).trim().to_owned()
}

fn logs(container: &str) -> String {
    let out = docker(&["logs", container]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The bytes each stored snapshot added, from the service's `...: N bytes added in T` lines.
fn added_bytes(logs: &str) -> Vec<u64> {
    logs.lines().filter_map(|l| l.split_once(" bytes added in ")?.0.split_whitespace().last()?.parse().ok()).collect()
}
