//! A real browser for the end-to-end suite: Debian's headless Chromium driven by
//! chromedriver over WebDriver (JSON over HTTP on 127.0.0.1), trusting the project's CA
//! through an NSS database made with `certutil` in a scratch HOME, as a user importing
//! the CA would; no certificate error is ignored. Running as root needs `--no-sandbox`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::harness::{free_port, text, wait_for};
use super::http::{self, Site};

/// chromedriver and its session; both end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _home: tempfile::TempDir,
}

/// The WebDriver id of an element in JSON answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium that trusts `ca` for TLS.
    pub fn start(ca: &Path) -> Browser {
        let home = tempfile::tempdir().unwrap();
        trust(home.path(), ca);
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium-driver)");
        let mut browser = Browser { driver, port, session: String::new(), _home: home };
        let up =
            wait_for(Duration::from_secs(20), Duration::from_millis(200), || browser.call("GET", "/status", None).ok());
        assert!(up.is_some_and(|s| s["value"]["ready"] == true), "chromedriver did not get ready");
        let args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": false,
            "goog:chromeOptions": {"binary": chromium(), "args": args},
        }}});
        let created = browser.call("POST", "/session", Some(capabilities)).expect("a WebDriver session");
        browser.session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<Value> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let headers: &[(&str, &str)] = if method == "POST" { &[("Content-Type", "application/json")] } else { &[] };
        let answer = http::request(Site::plain(self.port), method, path, headers, &body)?;
        serde_json::from_slice(&answer.body).map_err(std::io::Error::other)
    }

    /// A command of the session; a WebDriver error fails the test.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(body);
        let answer = self.call(method, &format!("/session/{}{path}", self.session), body).unwrap();
        assert!(answer["value"].get("error").is_none(), "WebDriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    /// Loads `url`, again when the host's network changed meanwhile (see [`Browser::until`]).
    pub fn goto(&self, url: &str) {
        for attempt in 1..=3 {
            let path = format!("/session/{}/url", self.session);
            let answer = self.call("POST", &path, Some(json!({ "url": url }))).unwrap();
            let Some(error) = answer["value"].get("error") else { return };
            let message = answer["value"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("ERR_NETWORK_CHANGED"), "WebDriver POST /url {url}: {error} {message}");
            eprintln!("e2e: browser: the host's network changed while loading {url} (try {attempt}): again");
        }
        panic!("{url} did not load in 3 tries: the host's network kept changing");
    }

    pub fn url(&self) -> String {
        self.command("GET", "/url", Value::Null).as_str().unwrap_or_default().to_owned()
    }

    pub fn title(&self) -> String {
        self.command("GET", "/title", Value::Null).as_str().unwrap_or_default().to_owned()
    }

    /// The element a CSS selector finds.
    pub fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_owned()
    }

    pub fn type_into(&self, css: &str, keys: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/value"), json!({ "text": keys }));
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// The value a script returns (`arguments` are `args`).
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", json!({"script": script, "args": args}))
    }

    /// The value an asynchronous script passes to its callback, the last argument.
    pub fn async_script(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/async", json!({"script": script, "args": args}))
    }

    /// Runs `act`, which loads a page, until `done` finds what it should show, within 15 s a
    /// try. Chromium abandons a load when the host's network changes (ERR_NETWORK_CHANGED),
    /// as it does when a scenario running beside this one adds or removes a Docker network:
    /// such a try is made again, three at most. None when `done` never found it.
    pub fn until<T>(&self, mut act: impl FnMut(), mut done: impl FnMut() -> Option<T>) -> Option<T> {
        for attempt in 1..=3 {
            act();
            let outcome = wait_for(Duration::from_secs(15), Duration::from_millis(250), || match done() {
                Some(found) => Some(Some(found)),
                None => self.network_changed().then_some(None),
            });
            match outcome {
                Some(Some(found)) => return Some(found),
                Some(None) => eprintln!("e2e: browser: the host's network changed during try {attempt}: again"),
                None => return None,
            }
        }
        None
    }

    /// Chromium shows its network-change error page.
    pub fn network_changed(&self) -> bool {
        let text = self.script("return document.body ? document.body.innerText : '';", json!([]));
        text.as_str().is_some_and(|t| t.contains("ERR_NETWORK_CHANGED"))
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or_default()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An NSS database in `home` (where Chromium on Linux looks, `~/.pki/nssdb`) trusting `ca`
/// to identify web sites.
fn trust(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec!["-A", "-d", &db, "-t", "C,,", "-n", "xtask-local-ca", "-i", ca.to_str().unwrap()],
    ] {
        let out = Command::new("certutil").args(&args).output().expect("certutil runs (apt-get install libnss3-tools)");
        assert!(out.status.success(), "certutil {args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    }
}

/// Debian's Chromium binary.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chromium is installed (apt-get install chromium)")
}
