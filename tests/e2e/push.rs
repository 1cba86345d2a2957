//! Scenario push: `release --push` into a real registry (Debian's docker-registry, the
//! distribution project's, on 127.0.0.1 with its own storage), from a tagged scratch
//! repository. The registry answers for what was pushed through its HTTP API and `docker
//! pull`; the static image's files are the tarball's; a second push of the same version
//! is a no-op; a changed web image under the same version is refused with nothing pushed.
//!
//! It continues from the release scenario, in its project (tests/e2e/chain.rs): the web image
//! that scenario built is the one pushed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{docker_ok, free_port, run_ok, text, timing, wait_for, Project};
use super::http::{self, Site};

const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry of this test alone, stopped (killed) and its storage removed when dropped,
/// also when the test fails.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let program = xtask::tools::system::find_program("docker-registry", &[])
            .expect("docker-registry is installed (apt-get install docker-registry)");
        let dir = tempfile::Builder::new().prefix("xtask-e2e-registry-").tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry { port, child, _dir: dir };
        let up = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            http::get(Site::plain(port), "/v2/").ok().filter(|r| r.status == 200)
        });
        assert!(up.is_some(), "the registry does not answer on 127.0.0.1:{port}");
        registry
    }

    /// What the registry's HTTP API answers for `path` (under /v2/).
    fn get(&self, path: &str) -> http::Response {
        let answer =
            http::request(Site::plain(self.port), "GET", &format!("/v2/{path}"), &[("Accept", MANIFEST_V2)], &[]);
        answer.unwrap_or_else(|e| panic!("GET /v2/{path}: {e}"))
    }

    /// The registry's digest of `repository:tag` (`Docker-Content-Digest`), or None.
    fn digest(&self, repository: &str, tag: &str) -> Option<String> {
        let answer = self.get(&format!("{repository}/manifests/{tag}"));
        (answer.status == 200)
            .then(|| answer.header("docker-content-digest").expect("the registry names the digest").to_owned())
    }

    fn tags(&self, repository: &str) -> String {
        self.get(&format!("{repository}/tags/list")).text()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn release_push_pins_both_images_by_digest_and_never_replaces_a_pushed_version() {
    super::chain::pushed();
}

/// `release --push` of `version`, the version the project's HEAD is tagged with, whose
/// production env file exists. Returns the registry, which holds the release.
pub fn release_push(project: &Project, version: &str) -> Registry {
    let registry = Registry::start();
    let prefix = format!("127.0.0.1:{}/{}", registry.port, project.name);
    let tagged = |kind: &str| format!("{prefix}/{kind}:{version}");
    let repository = |kind: &str| format!("{prefix}/{kind}");
    for kind in KINDS {
        project.remove_later(&tagged(kind));
    }
    let env = [("REGISTRY", prefix.as_str())];

    let started = Instant::now();
    let out = project.xtask_env(&["release", "--push"], &env);
    assert!(out.status.success(), "release --push failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    timing("push: release --push", started.elapsed());
    let manifest_path = project.path("dist/manifest.json");
    let manifest_bytes = fs::read(&manifest_path).unwrap();
    let images = recorded_images(&manifest_path);
    assert_eq!(images.keys().collect::<Vec<_>>(), KINDS, "{images:?}");
    let mut pinned = BTreeMap::new();
    for (kind, reference) in &images {
        let repo_path = format!("{}/{kind}", project.name);
        let digest =
            registry.digest(&repo_path, version).unwrap_or_else(|| panic!("the registry has no {kind}:{version}"));
        assert!(is_digest(&digest), "{digest}");
        assert_eq!(reference, &format!("{}@{digest}", repository(kind)), "manifest.json is not the registry's digest");
        pinned.insert(kind.clone(), reference.clone());
    }
    project.ok(&["verify"]);
    let local_ids: BTreeMap<String, String> = KINDS
        .iter()
        .map(|k| (k.to_string(), docker_ok(&["image", "inspect", "--format", "{{.Id}}", &tagged(k)])))
        .collect();

    // The static image holds the tarball's bytes and its nginx configuration.
    let tarball = project.path(&format!("dist/{}-{version}-static.tar.gz", project.name));
    assert_static_image_is_the_tarball(project, &tagged("static"), &tarball);

    // The same release again: nothing pushed, nothing rewritten.
    let started = Instant::now();
    let again = project.xtask_env(&["release", "--push"], &env);
    assert!(again.status.success(), "the second release --push failed:\n{}", text(&again.stderr));
    timing("push: release --push of the same version again", started.elapsed());
    assert_eq!(text(&again.stdout).matches("is in the registry already with this image: not pushed again").count(), 2);
    assert_eq!(fs::read(&manifest_path).unwrap(), manifest_bytes, "manifest.json changed");

    // Another web image under the same version (a label added on top of the one pushed),
    // released from the same static files: refused, nothing pushed or written.
    let tree = tempfile::tempdir().unwrap();
    run_ok(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(tree.path()));
    let changed = format!("FROM {}\nLABEL e2e.changed=yes\n", project.web_image());
    build_from_stdin(&project.web_image(), &changed);
    let dist_before = listing(&project.path("dist"));
    let sums_before = fs::read(project.path("dist/SHA256SUMS")).unwrap();
    let epoch = source_date_epoch(&manifest_path);
    let static_dir = tree.path().to_string_lossy().into_owned();
    let args = ["release", "--push", "--static-dir", &static_dir];
    let started = Instant::now();
    let refused = project.xtask_env(&args, &[env[0], ("SOURCE_DATE_EPOCH", &epoch)]);
    timing("push: a changed image refused", started.elapsed());
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "a changed image was not refused:\n{stderr}");
    let expected = format!("error: {} is already in the registry with another image (", tagged("web"));
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    assert_eq!(fs::read(&manifest_path).unwrap(), manifest_bytes, "manifest.json changed");
    assert_eq!(listing(&project.path("dist")), dist_before, "dist/ changed");
    assert_eq!(fs::read(project.path("dist/SHA256SUMS")).unwrap(), sums_before, "SHA256SUMS changed");
    for kind in KINDS {
        let repo_path = format!("{}/{kind}", project.name);
        assert_eq!(
            registry.digest(&repo_path, version).map(|d| format!("{}@{d}", repository(kind))).as_ref(),
            pinned.get(kind)
        );
        let tags = registry.tags(&repo_path);
        assert!(tags.contains(&format!(r#""tags":["{version}"]"#)), "{tags}");
    }
    let catalog = registry.get("_catalog").text();
    let repositories = format!(r#""repositories":["{0}/static","{0}/web"]"#, project.name);
    assert!(catalog.contains(&repositories), "{catalog}");

    // What a node gets: the local tags gone, each image pulled by the digest recorded.
    for kind in KINDS {
        docker_ok(&["rmi", &tagged(kind)]);
    }
    let started = Instant::now();
    for (kind, reference) in &pinned {
        project.remove_later(reference);
        docker_ok(&["pull", "--quiet", reference]);
        let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", reference]);
        assert_eq!(&id, &local_ids[kind], "the pulled {kind} image is not the one pushed");
    }
    timing("push: pull the images by digest", started.elapsed());
    registry
}

/// The images a release pushes, as manifest.json names them.
pub const KINDS: [&str; 2] = ["static", "web"];

/// `docker build -t TAG -` of `dockerfile`, with no context.
fn build_from_stdin(tag: &str, dockerfile: &str) {
    let mut child =
        Command::new("docker").args(["build", "--quiet", "-t", tag, "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "docker build -t {tag} failed");
}

fn source_date_epoch(manifest: &Path) -> String {
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(manifest).unwrap()).unwrap();
    json["source_date_epoch"].as_u64().expect("manifest.json has source_date_epoch").to_string()
}

fn recorded_images(manifest: &Path) -> BTreeMap<String, String> {
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(manifest).unwrap()).unwrap();
    let images = json["images"].as_object().unwrap_or_else(|| panic!("no images in {json}"));
    images.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()
}

fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The files under /srv/static of `image` (copied out of a created, never started,
/// container) are the tarball's, byte for byte, and its template is docker/nginx/static.conf.
fn assert_static_image_is_the_tarball(project: &Project, image: &str, tarball: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let (unpacked, copied) = (scratch.path().join("tarball"), scratch.path().join("image"));
    fs::create_dir_all(&unpacked).unwrap();
    fs::create_dir_all(&copied).unwrap();
    run_ok(Command::new("tar").arg("-xzf").arg(tarball).arg("-C").arg(&unpacked));
    let conf = scratch.path().join("default.conf.template");
    copy_out_of(image, &[("/srv/static/.", &copied), (TEMPLATE, &conf)]);
    let (expected, actual) = (tree(&unpacked), tree(&copied));
    assert!(expected.len() > 2, "the tarball holds only {expected:?}");
    assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the image has other files");
    for (path, content) in &expected {
        assert!(&actual[path] == content, "{path} in the image differs from the tarball's");
    }
    assert_eq!(fs::read(&conf).unwrap(), fs::read(project.path("docker/nginx/static.conf")).unwrap());
    eprintln!("e2e: push: the static image holds the tarball's {} files byte for byte", expected.len());
}

/// Where the nginx images keep their configuration template.
const TEMPLATE: &str = "/etc/nginx/templates/default.conf.template";

/// Copies each (path in the image, host path) out of a created, never started, container of `image`.
fn copy_out_of(image: &str, copies: &[(&str, &Path)]) {
    let container = docker_ok(&["create", image]);
    for (from, to) in copies {
        let out = Command::new("docker").args(["cp", &format!("{container}:{from}")]).arg(to).output().unwrap();
        assert!(out.status.success(), "docker cp {from}: {}", text(&out.stderr));
    }
    docker_ok(&["rm", &container]);
}

/// Every file and symlink under `root`: its path, and its bytes or `-> target`.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                found.insert(relative, format!("-> {}", fs::read_link(&path).unwrap().display()).into_bytes());
            } else if meta.is_dir() {
                pending.push(path);
            } else {
                found.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// File names and sizes in `dir`, to tell that nothing was added, removed or rewritten.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut names: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    names.sort();
    names
}
