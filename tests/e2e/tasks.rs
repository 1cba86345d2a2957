//! Background tasks as a user makes them: the template's home page enqueues record tasks
//! (a batch of keys, each task a pause then a row), and the scheduler's heartbeat writes a
//! row stamped with when and by which scheduler it was sent. What ran is read back from
//! the stack's database, so "exactly once" is counted, not assumed.

use std::time::{Duration, Instant};

use super::harness::{docker_ok, timing, wait_for, Project};
use super::http::{self, Site};

pub use super::harness::{HEARTBEAT_SECONDS, VISIBILITY_TIMEOUT};

/// One row of a record task: its key, the code version and the worker host that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub key: String,
    pub version: String,
    pub worker: String,
}

/// One tick of the scheduler: when and by which scheduler host it was sent, and the code
/// version of the worker that ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub sent_at: f64,
    pub sent_by: String,
    pub version: String,
}

/// Where a stack keeps its rows: the database container and the env file naming its user.
pub struct Db<'p> {
    pub project: &'p Project,
    pub container: String,
    pub env_file: &'static str,
}

impl Db<'_> {
    pub fn runs(&self, batch: &str) -> Vec<Run> {
        let query = format!("SELECT key, version, worker FROM core_taskrun WHERE key LIKE '{batch}-%' ORDER BY id");
        let rows = self.project.psql(&self.container, self.env_file, &query);
        rows.lines()
            .filter_map(|line| {
                let mut cells = line.split('|');
                Some(Run {
                    key: cells.next()?.to_owned(),
                    version: cells.next()?.to_owned(),
                    worker: cells.next()?.to_owned(),
                })
            })
            .collect()
    }

    /// When the first task run by code `version` finished, in seconds since the epoch.
    pub fn first_run_of(&self, version: &str) -> Option<f64> {
        let query =
            format!("SELECT EXTRACT(EPOCH FROM min(finished_at)) FROM core_taskrun WHERE version = '{version}'");
        self.project.psql(&self.container, self.env_file, &query).trim().parse().ok()
    }

    pub fn beats(&self) -> Vec<Beat> {
        let query = "SELECT sent_at, sent_by, version FROM core_heartbeat ORDER BY sent_at";
        let rows = self.project.psql(&self.container, self.env_file, query);
        rows.lines()
            .filter_map(|line| {
                let mut cells = line.split('|');
                Some(Beat {
                    sent_at: cells.next()?.parse().ok()?,
                    sent_by: cells.next()?.to_owned(),
                    version: cells.next()?.to_owned(),
                })
            })
            .collect()
    }

    /// Waits until every key of `batch` (`count` of them) has a row, then a moment more for
    /// a late duplicate; the rows.
    pub fn wait_for_batch(&self, batch: &str, count: usize, limit: Duration) -> Vec<Run> {
        let started = Instant::now();
        let done = wait_for(limit, Duration::from_millis(500), || (distinct(&self.runs(batch)) >= count).then_some(()));
        if done.is_none() {
            panic!("batch {batch}: {} of {count} tasks ran within {limit:?}", distinct(&self.runs(batch)));
        }
        timing(&format!("tasks: batch {batch} of {count} completed"), started.elapsed());
        std::thread::sleep(Duration::from_secs(2));
        self.runs(batch)
    }
}

fn distinct(runs: &[Run]) -> usize {
    let mut keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// Every key of the batch ran exactly once: no task lost, none run twice.
pub fn assert_exactly_once(batch: &str, count: usize, runs: &[Run]) {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for run in runs {
        *seen.entry(run.key.as_str()).or_default() += 1;
    }
    let missing: Vec<String> =
        (0..count).map(|i| format!("{batch}-{i}")).filter(|k| !seen.contains_key(k.as_str())).collect();
    let twice: Vec<(&&str, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "e2e: tasks: batch {batch}: {count} enqueued, {} completed, {} duplicated, {} missing",
        seen.len(),
        twice.len(),
        missing.len()
    );
    assert!(missing.is_empty() && twice.is_empty(), "batch {batch}: missing {missing:?}, run more than once {twice:?}");
}

/// No two schedulers overlapped: consecutive heartbeats were sent at least half an interval
/// apart (two schedulers at once would send two per interval).
pub fn assert_one_scheduler_at_a_time(beats: &[Beat], interval: f64) {
    assert!(beats.len() >= 2, "too few heartbeats to judge: {beats:?}");
    for pair in beats.windows(2) {
        let gap = pair[1].sent_at - pair[0].sent_at;
        assert!(gap >= interval / 2.0, "two heartbeats {gap:.2}s apart (interval {interval}s): {pair:?}");
    }
}

/// How long the form may take to enqueue a batch: within gunicorn's worker timeout (30 s).
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Enqueues `count` record tasks of `seconds` each through the home page's form, as a
/// browser posts it; the batch the page says it enqueued.
pub fn enqueue(site: Site, count: usize, seconds: f64) -> String {
    try_enqueue(site, count, seconds).unwrap_or_else(|error| panic!("{error}"))
}

/// Like [`enqueue`], with Err when the site did not answer at all (a dev server restarting
/// for a code edit drops its connections); any answer but the expected one still fails.
pub fn try_enqueue(site: Site, count: usize, seconds: f64) -> Result<String, String> {
    let form = http::get(site, "/").map_err(|e| format!("GET /: {e}"))?;
    assert_eq!(form.status, 200, "GET /:\n{form}");
    let cookie = form.cookie("csrftoken").unwrap_or_else(|| panic!("no csrftoken cookie:\n{form}"));
    let page = form.text();
    let token = http::between(&page, "name=\"csrfmiddlewaretoken\" value=\"", "\"").expect("a CSRF form field");
    let body = format!("csrfmiddlewaretoken={token}&count={count}&seconds={seconds}");
    let cookie = format!("csrftoken={cookie}");
    let referer = site.url("/");
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &cookie), ("Referer", &referer)];
    // Hundreds of tasks are published one by one while the request waits: on a machine
    // busy building images that takes longer than a page.
    let posted = http::request_within(site, ENQUEUE_TIMEOUT, "POST", "/", &headers, body.as_bytes())
        .map_err(|e| format!("the form posts: {e}"))?;
    assert_eq!(posted.status, 302, "the task form was refused:\n{posted}");
    // The confirmation travels in the messages cookie to the page the form redirects to.
    let messages = posted.cookie("messages").unwrap_or_else(|| panic!("no confirmation:\n{posted}"));
    let cookie = format!("messages={messages}");
    let shown =
        http::request(site, "GET", "/", &[("Cookie", &cookie)], b"").map_err(|e| format!("the page answers: {e}"))?;
    let text = shown.text();
    let batch = http::between(&text, "task(s) of batch ", ".").unwrap_or_else(|| panic!("no batch shown:\n{text}"));
    Ok(batch.to_owned())
}

/// The resident memory of a container, as `docker stats` reports it.
pub fn memory(container: &str) -> String {
    docker_ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", container])
}
