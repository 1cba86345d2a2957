//! A bounded loop of concurrent clients over HTTPS, for the scenarios that change what
//! serves while it runs (redeploys, Swarm updates): every answer is kept, and a phase of
//! the scenario asserts that none of those sent since it began failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::http::{self, Site};

/// Clients of the request loop, each sending one request at a time.
pub const CLIENTS: usize = 4;
/// Bounds of the loop: requests per client, and time.
const MAX_REQUESTS: usize = 10_000;
const MAX_LOOP: Duration = Duration::from_secs(900);
/// How long a phase's check waits for the requests in flight (the client's timeout is 15 s).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// One answer of the loop.
pub struct Outcome {
    client: usize,
    at: Instant,
    latency: Duration,
    /// None when it was a 200, else what went wrong.
    failure: Option<String>,
}

pub fn failures(outcomes: &[Outcome]) -> Vec<&String> {
    outcomes.iter().filter_map(|o| o.failure.as_ref()).collect()
}

/// CLIENTS threads requesting `paths` in turn until stopped (or the bounds are reached).
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Outcome>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(site: Site, paths: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let clients = (0..CLIENTS)
            .map(|client| {
                let (stop, seen, paths) = (stop.clone(), seen.clone(), paths.clone());
                thread::spawn(move || {
                    for n in 0..MAX_REQUESTS {
                        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_LOOP {
                            break;
                        }
                        let path = &paths[(client + n) % paths.len()];
                        let at = Instant::now();
                        let failure = match http::get(site, path) {
                            Ok(r) if r.status == 200 => None,
                            Ok(r) => Some(format!("GET {path}: {}", r.status)),
                            Err(e) => Some(format!("GET {path}: {e}")),
                        };
                        seen.lock().unwrap().push(Outcome { client, at, latency: at.elapsed(), failure });
                    }
                })
            })
            .collect();
        Load { stop, seen, clients }
    }

    pub fn mark(&self) -> Instant {
        Instant::now()
    }

    /// Every request sent since `phase` succeeded, and some were sent. First every client
    /// answers once more, so the requests in flight now are counted too.
    pub fn assert_no_failure_since(&self, phase: Instant, what: &str) {
        let now = Instant::now();
        let answered = |seen: &[Outcome]| (0..CLIENTS).all(|c| seen.iter().any(|o| o.client == c && o.at >= now));
        let limit = now + MAX_WAIT;
        while !answered(&self.seen.lock().unwrap()) && Instant::now() < limit {
            thread::sleep(Duration::from_millis(50));
        }
        let seen = self.seen.lock().unwrap();
        let since: Vec<&Outcome> = seen.iter().filter(|o| o.at >= phase).collect();
        let failed: Vec<String> = since
            .iter()
            .filter_map(|o| {
                let into = o.at.duration_since(phase);
                o.failure.as_ref().map(|f| format!("{f} (sent {into:.1?} into it, answered in {:.1?})", o.latency))
            })
            .collect();
        let longest = since.iter().map(|o| o.latency).max().unwrap_or_default();
        eprintln!("e2e: load: {what}: {} requests, {} failed, slowest {longest:.1?}", since.len(), failed.len());
        assert!(since.len() >= CLIENTS, "the loop sent almost nothing during {what}");
        assert!(failed.is_empty(), "{} request(s) failed during {what}: {failed:#?}", failed.len());
    }

    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        Arc::try_unwrap(self.seen).ok().unwrap().into_inner().unwrap()
    }
}
