//! `cargo xtask release --push` through the real binary against the recording fake `docker`
//! (tests/fixtures/fake-docker), whose FAKE_REGISTRY keeps what was pushed: the order of the
//! calls, the digests recorded in manifest.json, the no-op re-push, the refused one, and the
//! refused flags. The same on the real engine and a real registry: tests/e2e/push.rs.

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::fake_docker::Compose;
use crate::support::sandbox::Sandbox;
use crate::support::text;

const REGISTRY: &str = "127.0.0.1:5000/shop";
const OTHER_ID: &str = "sha256:9999999999999999999999999999999999999999999999999999999999999999";

/// A committed project named `shop` with the files the static image is built from, a static
/// tree beside it, and the fake `docker` first on PATH, keeping a registry beside the root.
fn shop() -> Sandbox {
    let files = ["docker/nginx/static.conf", "docker/static.Dockerfile"];
    let sandbox = Sandbox::named("shop").with_repo_files(&files).with_file(".gitignore", "/dist/\n/target/\n");
    let sandbox = sandbox.committed().with_host_path().with_fake_docker(Compose::V2);
    fs::create_dir_all(sandbox.path("tree/css")).unwrap();
    fs::write(sandbox.path("tree/css/site.css"), "body { color: red }\n").unwrap();
    let registry = sandbox.path("registry");
    let sandbox = sandbox.with_env("FAKE_REGISTRY", &registry.to_string_lossy());
    sandbox.with_env("XTASK_PROJECT_NAME", "shop").with_env("SOURCE_DATE_EPOCH", "1700000000")
}

/// `release --push` of version 1.0.0 from the tree into dist/, with `extra` flags.
fn push(sandbox: &Sandbox, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["release", "--static-dir", "tree", "--out", "dist", "--version", "1.0.0", "--push"];
    args.extend(extra);
    sandbox.output(&args, env)
}

/// The docker commands recorded since the last look, without the fields before them, and
/// with the random build context shown as CONTEXT.
fn take_commands(sandbox: &Sandbox) -> Vec<String> {
    let calls = sandbox.take_calls();
    calls
        .iter()
        .map(|line| {
            let line = line.split('|').next_back().unwrap();
            match line.find("ROOT/target/release-image-") {
                Some(at) => line[..at].to_owned() + "CONTEXT" + &line[at + 42..],
                None => line.to_owned(),
            }
        })
        .collect()
}

fn manifest(sandbox: &Sandbox) -> Value {
    serde_json::from_str(&fs::read_to_string(sandbox.path("dist/manifest.json")).unwrap()).unwrap()
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
    let out = Command::new(sandbox.bin().join("docker"))
        .args(["manifest", "inspect", "--insecure", "--verbose", reference])
        .env("FAKE_DOCKER_LOG", sandbox.path("probe.log"))
        .env("FAKE_REGISTRY", sandbox.path("registry"))
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

#[test]
fn a_push_records_the_registrys_digests_and_pushing_the_same_images_again_is_a_no_op() {
    let sandbox = shop();
    let stdout = ok(&push(&sandbox, &["--registry", REGISTRY], &[("NGINX_IMAGE", "nginx:test")]));
    let web = format!("{REGISTRY}/web:1.0.0");
    let stat = format!("{REGISTRY}/static:1.0.0");
    let inspect = |r: &str| format!("docker manifest inspect --insecure --verbose {r}");
    assert_eq!(
        take_commands(&sandbox),
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
    let images = &manifest(&sandbox)["images"];
    for (kind, reference) in [("web", &web), ("static", &stat)] {
        let digest = registry_answer(&sandbox, reference)["Descriptor"]["digest"].as_str().unwrap().to_owned();
        assert_eq!(images[kind], format!("{REGISTRY}/{kind}@{digest}"), "{images}");
        assert!(stdout.contains(&format!("pushed {reference}: {REGISTRY}/{kind}@{digest}")), "{stdout}");
    }
    assert_eq!(fs::read_dir(sandbox.root().join("target")).unwrap().count(), 0, "the build context is left");
    ok(&sandbox.output(&["verify", "dist"], &[]));

    // The same images again: asked about, tagged locally, not pushed; manifest.json the same.
    let before = fs::read(sandbox.path("dist/manifest.json")).unwrap();
    let stdout = ok(&push(&sandbox, &[], &[("REGISTRY", REGISTRY)]));
    let calls = take_commands(&sandbox);
    assert!(!calls.iter().any(|c| c.starts_with("docker push")), "{calls:?}");
    assert!(
        stdout.contains(&format!("{web} is in the registry already with this image: not pushed again")),
        "{stdout}"
    );
    assert_eq!(fs::read(sandbox.path("dist/manifest.json")).unwrap(), before);
}

#[test]
fn a_changed_image_under_a_pushed_version_is_refused_with_nothing_pushed_or_written() {
    let sandbox = shop();
    ok(&push(&sandbox, &["--registry", REGISTRY], &[]));
    take_commands(&sandbox);
    let before = fs::read(sandbox.path("dist/manifest.json")).unwrap();
    let changed = [("FAKE_STATIC_ID", OTHER_ID), ("FAKE_REPO_TAGS", "0")];
    let error = refused(&push(&sandbox, &["--registry", REGISTRY], &changed));
    assert!(
        error.starts_with(&format!("error: {REGISTRY}/static:1.0.0 is already in the registry with another image (")),
        "{error}"
    );
    assert!(error.ends_with("a pushed version is never replaced; pass another --version"), "{error}");
    let calls = take_commands(&sandbox);
    assert!(!calls.iter().any(|c| c.starts_with("docker push") || c.starts_with("docker tag")), "{calls:?}");
    // The refused static image, which no tag names, is removed again.
    assert_eq!(calls.last().unwrap(), &format!("docker rmi {OTHER_ID}"), "{calls:?}");
    assert_eq!(fs::read(sandbox.path("dist/manifest.json")).unwrap(), before);
    assert_eq!(fs::read_dir(sandbox.root().join("target")).unwrap().count(), 0, "the build context is left");
}

#[test]
fn bad_push_flags_are_refused_in_one_line_before_any_docker_call() {
    let sandbox = shop();
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
        let error = refused(&sandbox.output(&args, env));
        assert!(error.contains(message), "{flags:?}: {error}");
        assert!(take_commands(&sandbox).is_empty(), "{flags:?} called docker");
        assert!(!sandbox.path("dist").exists(), "{flags:?} wrote dist/");
    }
}

#[test]
fn an_unreachable_registry_or_a_missing_web_image_is_one_line_and_nothing_is_written() {
    let sandbox = shop();
    let error = refused(&push(&sandbox, &["--registry", REGISTRY], &[("FAKE_REGISTRY_DOWN", "1")]));
    assert!(error.starts_with(&format!("error: cannot read {REGISTRY}/web:1.0.0 from the registry (")), "{error}");
    assert!(error.ends_with("check that it answers and that `docker login 127.0.0.1:5000` has been run"), "{error}");
    assert!(!sandbox.path("dist").exists());
    take_commands(&sandbox);

    sandbox.docker_script("printf 'Error response from daemon: no such image: shop-web\\n' >&2; exit 1");
    let error = refused(&push(&sandbox, &["--registry", REGISTRY], &[]));
    assert!(error.starts_with("error: there is no local image shop-web to push ("), "{error}");
    assert!(!sandbox.path("dist").exists());
}

#[test]
fn a_dry_run_prints_every_docker_command_and_runs_none() {
    let sandbox = shop();
    let stdout = ok(&sandbox.output(
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
        "# then: refuse if the registry holds any of the tags with another image",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("backup"), "a release without BACKUP_SCHEDULE pushes a backup image:\n{stdout}");
    assert!(take_commands(&sandbox).is_empty());
    assert!(!sandbox.root().join("dist").exists() && !sandbox.root().join("target").exists());

    // With the backup service scheduled, its image (for the database's Postgres) is pushed too.
    sandbox.write(".env.prod", "BACKUP_SCHEDULE=daily\nPOSTGRES_IMAGE=postgres:16\n");
    let args = ["--dry-run", "release", "--static-dir", "tree", "--version", "1.0.0", "--push", "--allow-dirty"];
    let stdout = ok(&sandbox.output(&[&args[..], &["--registry", REGISTRY]].concat(), &[]));
    for expected in [
        "docker build --quiet --build-arg 'POSTGRES_IMAGE=postgres:16' ",
        "/docker/backup > ",
        "docker manifest inspect --insecure --verbose 127.0.0.1:5000/shop/backup:1.0.0",
        "docker tag BACKUP_IMAGE_ID 127.0.0.1:5000/shop/backup:1.0.0",
        "docker push --quiet 127.0.0.1:5000/shop/backup:1.0.0",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert!(take_commands(&sandbox).is_empty());
}

#[test]
fn verify_names_a_pushed_image_that_is_not_pinned_by_digest() {
    let sandbox = shop();
    ok(&push(&sandbox, &["--registry", REGISTRY], &[]));
    let path = sandbox.path("dist/manifest.json");
    let mut manifest = manifest(&sandbox);
    manifest["images"]["web"] = Value::String(format!("{REGISTRY}/web:1.0.0"));
    manifest["images"]["db"] = Value::String(format!("{REGISTRY}/db@sha256:{}", "0".repeat(64)));
    fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let out = sandbox.output(&["verify", "dist"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("bad image: db of 1.0.0 (not one of backup, static, web)"), "{stdout}");
    assert!(
        stdout.contains("bad image: web of 1.0.0 (\"127.0.0.1:5000/shop/web:1.0.0\": no @sha256: digest)"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("error: 2 problem(s) in"), "{}", text(&out.stderr));
}
