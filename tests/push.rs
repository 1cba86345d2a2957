//! `cargo xtask release --push` through the real binary against the recording fake `docker`
//! (tests/fixtures/fake-docker), whose FAKE_REGISTRY keeps what was pushed: the order of the
//! calls, the digests recorded in manifest.json, the no-op re-push, the refused one, and the
//! refused flags. The same on the real engine and a real registry: tests/e2e/push.rs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const REGISTRY: &str = "127.0.0.1:5000/shop";
const OTHER_ID: &str = "sha256:9999999999999999999999999999999999999999999999999999999999999999";

/// A committed project with the files the static image is built from, a static tree
/// beside it, and a fake `docker` first on PATH.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox { dir: tempfile::tempdir().unwrap() };
        let root = sandbox.root();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["docker/nginx/static.conf", "docker/static.Dockerfile"] {
            fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            fs::copy(repo.join(file), root.join(file)).unwrap();
        }
        fs::write(root.join(".gitignore"), "/dist/\n/target/\n").unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["add", "."]);
        git(&root, &["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first"]);
        fs::create_dir_all(sandbox.path("tree/css")).unwrap();
        fs::write(sandbox.path("tree/css/site.css"), "body { color: red }\n").unwrap();
        fs::create_dir(sandbox.path("bin")).unwrap();
        let fake = repo.join("tests/fixtures/fake-docker/docker");
        symlink(fake, sandbox.path("bin/docker")).unwrap();
        sandbox
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("shop")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn xtask(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!("{}:{}", self.path("bin").display(), std::env::var("PATH").unwrap());
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("XTASK_ROOT", self.root())
            .env("XTASK_PROJECT_NAME", "shop")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("FAKE_DOCKER_LOG", self.path("calls.log"))
            .env("FAKE_REGISTRY", self.path("registry"))
            .env_remove("REGISTRY")
            .env_remove("NGINX_IMAGE")
            .stdin(Stdio::null());
        command.envs(env.iter().copied());
        command.output().unwrap()
    }

    /// `release --push` of version 1.0.0 from the tree into dist/, with `extra` flags.
    fn push(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = vec!["release", "--static-dir", "tree", "--out", "dist", "--version", "1.0.0", "--push"];
        args.extend(extra);
        self.xtask(&args, env)
    }

    /// The docker calls recorded since the last look, with the root shown as ROOT and the
    /// random build context as CONTEXT.
    fn take_calls(&self) -> Vec<String> {
        let log = fs::read_to_string(self.path("calls.log")).unwrap_or_default();
        let _ = fs::remove_file(self.path("calls.log"));
        let root = self.root().to_string_lossy().into_owned();
        log.lines()
            .map(|line| {
                let line = line.split('|').next_back().unwrap().replace(&root, "ROOT");
                match line.find("ROOT/target/release-image-") {
                    Some(at) => line[..at].to_owned() + "CONTEXT" + &line[at + 42..],
                    None => line,
                }
            })
            .collect()
    }

    fn manifest(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.path("dist/manifest.json")).unwrap()).unwrap()
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The one `error:` line of a refused command.
fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "not refused:\n{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_owned()
}

/// What the fake registry answers for `reference`.
fn registry_answer(sandbox: &Sandbox, reference: &str) -> Value {
    let out = Command::new(sandbox.path("bin/docker"))
        .args(["manifest", "inspect", "--insecure", "--verbose", reference])
        .env("FAKE_DOCKER_LOG", sandbox.path("probe.log"))
        .env("FAKE_REGISTRY", sandbox.path("registry"))
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

#[test]
fn a_push_records_the_registrys_digests_and_pushing_the_same_images_again_is_a_no_op() {
    let sandbox = Sandbox::new();
    let stdout = ok(&sandbox.push(&["--registry", REGISTRY], &[("NGINX_IMAGE", "nginx:test")]));
    let web = format!("{REGISTRY}/web:1.0.0");
    let stat = format!("{REGISTRY}/static:1.0.0");
    let inspect = |r: &str| format!("docker manifest inspect --insecure --verbose {r}");
    assert_eq!(
        sandbox.take_calls(),
        [
            "docker image inspect --format {{.Id}} shop-web".to_owned(),
            "docker build --quiet --file ROOT/docker/static.Dockerfile --build-arg NGINX_IMAGE=nginx:test CONTEXT"
                .into(),
            inspect(&web),
            inspect(&stat),
            format!("docker tag shop-web {web}"),
            format!("docker tag sha256:{} {stat}", "5".repeat(64)),
            format!("docker push --quiet {web}"),
            format!("docker push --quiet {stat}"),
            inspect(&web),
            inspect(&stat),
        ]
    );
    let images = &sandbox.manifest()["images"];
    for (kind, reference) in [("web", &web), ("static", &stat)] {
        let digest = registry_answer(&sandbox, reference)["Descriptor"]["digest"].as_str().unwrap().to_owned();
        assert_eq!(images[kind], format!("{REGISTRY}/{kind}@{digest}"), "{images}");
        assert!(stdout.contains(&format!("pushed {reference}: {REGISTRY}/{kind}@{digest}")), "{stdout}");
    }
    assert_eq!(fs::read_dir(sandbox.root().join("target")).unwrap().count(), 0, "the build context is left");
    ok(&sandbox.xtask(&["verify", "dist"], &[]));

    // The same images again: asked about, tagged locally, not pushed; manifest.json the same.
    let before = fs::read(sandbox.path("dist/manifest.json")).unwrap();
    let stdout = ok(&sandbox.push(&[], &[("REGISTRY", REGISTRY)]));
    let calls = sandbox.take_calls();
    assert!(!calls.iter().any(|c| c.starts_with("docker push")), "{calls:?}");
    assert!(
        stdout.contains(&format!("{web} is in the registry already with this image: not pushed again")),
        "{stdout}"
    );
    assert_eq!(fs::read(sandbox.path("dist/manifest.json")).unwrap(), before);
}

#[test]
fn a_changed_image_under_a_pushed_version_is_refused_with_nothing_pushed_or_written() {
    let sandbox = Sandbox::new();
    ok(&sandbox.push(&["--registry", REGISTRY], &[]));
    sandbox.take_calls();
    let before = fs::read(sandbox.path("dist/manifest.json")).unwrap();
    let changed = [("FAKE_STATIC_ID", OTHER_ID), ("FAKE_REPO_TAGS", "0")];
    let error = refused(&sandbox.push(&["--registry", REGISTRY], &changed));
    assert!(
        error.starts_with(&format!("error: {REGISTRY}/static:1.0.0 is already in the registry with another image (")),
        "{error}"
    );
    assert!(error.ends_with("a pushed version is never replaced; pass another --version"), "{error}");
    let calls = sandbox.take_calls();
    assert!(!calls.iter().any(|c| c.starts_with("docker push") || c.starts_with("docker tag")), "{calls:?}");
    // The refused static image, which no tag names, is removed again.
    assert_eq!(calls.last().unwrap(), &format!("docker rmi {OTHER_ID}"), "{calls:?}");
    assert_eq!(fs::read(sandbox.path("dist/manifest.json")).unwrap(), before);
    assert_eq!(fs::read_dir(sandbox.root().join("target")).unwrap().count(), 0, "the build context is left");
}

#[test]
fn bad_push_flags_are_refused_in_one_line_before_any_docker_call() {
    let sandbox = Sandbox::new();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--registry", REGISTRY], &[], "--registry 127.0.0.1:5000/shop only applies with --push: add --push"),
        (&["--push"], &[], "release --push needs a registry: pass --registry HOST[:PORT]/PATH or set REGISTRY"),
        (&["--push"], &[("REGISTRY", "Shop")], "REGISTRY=\"Shop\" is not an image repository"),
        (&["--push", "--registry", "127.0.0.1:5000/shop:1.0"], &[], "is not an image repository (\"shop:1.0\""),
    ];
    for (flags, env, message) in cases {
        let mut args = vec!["release", "--static-dir", "tree", "--out", "dist", "--version", "1.0.0"];
        args.extend(flags);
        let error = refused(&sandbox.xtask(&args, env));
        assert!(error.contains(message), "{flags:?}: {error}");
        assert!(sandbox.take_calls().is_empty(), "{flags:?} called docker");
        assert!(!sandbox.path("dist").exists(), "{flags:?} wrote dist/");
    }
}

#[test]
fn an_unreachable_registry_or_a_missing_web_image_is_one_line_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    let error = refused(&sandbox.push(&["--registry", REGISTRY], &[("FAKE_REGISTRY_DOWN", "1")]));
    assert!(error.starts_with(&format!("error: cannot read {REGISTRY}/web:1.0.0 from the registry (")), "{error}");
    assert!(error.ends_with("check that it answers and that `docker login 127.0.0.1:5000` has been run"), "{error}");
    assert!(!sandbox.path("dist").exists());
    sandbox.take_calls();

    let missing = "printf 'Error response from daemon: no such image: shop-web\\n' >&2; exit 1";
    let bin = sandbox.path("bin/docker");
    fs::remove_file(&bin).unwrap();
    fs::write(&bin, format!("#!/bin/sh\n{missing}\n")).unwrap();
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let error = refused(&sandbox.push(&["--registry", REGISTRY], &[]));
    assert!(error.starts_with("error: there is no local image shop-web to push ("), "{error}");
    assert!(!sandbox.path("dist").exists());
}

#[test]
fn a_dry_run_prints_every_docker_command_and_runs_none() {
    let sandbox = Sandbox::new();
    let stdout = ok(&sandbox.xtask(
        &["--dry-run", "release", "--static-dir", "tree", "--version", "1.0.0", "--push", "--registry", REGISTRY],
        &[],
    ));
    for expected in [
        "docker build --quiet --file",
        "docker image inspect --format '{{.Id}}' shop-web",
        "docker manifest inspect --insecure --verbose 127.0.0.1:5000/shop/web:1.0.0",
        "docker manifest inspect --insecure --verbose 127.0.0.1:5000/shop/static:1.0.0",
        "docker tag shop-web 127.0.0.1:5000/shop/web:1.0.0",
        "docker push --quiet 127.0.0.1:5000/shop/web:1.0.0",
        "docker push --quiet 127.0.0.1:5000/shop/static:1.0.0",
        "# then: refuse if the registry holds either tag with another image",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(sandbox.take_calls().is_empty());
    assert!(!sandbox.root().join("dist").exists() && !sandbox.root().join("target").exists());
}

#[test]
fn verify_names_a_pushed_image_that_is_not_pinned_by_digest() {
    let sandbox = Sandbox::new();
    ok(&sandbox.push(&["--registry", REGISTRY], &[]));
    let path = sandbox.path("dist/manifest.json");
    let mut manifest = sandbox.manifest();
    manifest["images"]["web"] = Value::String(format!("{REGISTRY}/web:1.0.0"));
    manifest["images"]["db"] = Value::String(format!("{REGISTRY}/db@sha256:{}", "0".repeat(64)));
    fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let out = sandbox.xtask(&["verify", "dist"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("bad image: db of 1.0.0 (not one of static, web)"), "{stdout}");
    assert!(
        stdout.contains("bad image: web of 1.0.0 (\"127.0.0.1:5000/shop/web:1.0.0\": no @sha256: digest)"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("error: 2 problem(s) in"), "{}", text(&out.stderr));
}
