//! `cargo xtask release` and `verify` through the real binary, on temporary git repos
//! (`XTASK_ROOT`), with GNU tar, gzip and sha256sum as independent readers of the output.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::sandbox::Sandbox;
use crate::support::skip::skip;

const EPOCH: &str = "1700000000";
/// `EPOCH` as `tar -tv` shows it in UTC.
const EPOCH_SHOWN: &str = "2023-11-14 22:13";

/// A committed git repository named `site` to release from, with room for trees and outputs
/// beside it; the xtask runs there with a fixed SOURCE_DATE_EPOCH, bin/ first on PATH.
fn site_repo() -> Sandbox {
    let repo = Sandbox::named("site").with_file(".gitignore", "/dist/\n/target/\n/.stack/\n/.env.prod\n");
    let repo = repo.with_file("README", "site\n").with_context_sources().committed();
    repo.with_host_path().with_env("XTASK_PROJECT_NAME", "site").with_env("SOURCE_DATE_EPOCH", EPOCH)
}

fn release(repo: &Sandbox, tree: &Path, out: &Path, version: &str, extra: &[&str]) -> Output {
    let mut args = vec!["release", "--static-dir", tree.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(["--version", version]);
    args.extend(extra);
    repo.output(&args, &[])
}

fn release_ok(repo: &Sandbox, tree: &Path, out: &Path, version: &str, extra: &[&str]) -> Vec<u8> {
    ok(&release(repo, tree, out, version, extra));
    fs::read(out.join(format!("site-{version}-static.tar.gz"))).unwrap()
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// A repo with a tree of static files beside it, made by [`make_tree`].
fn repo_with_tree() -> (Sandbox, PathBuf) {
    let repo = site_repo();
    let tree = repo.path("tree");
    make_tree(&tree, 0);
    (repo, tree)
}

/// As [`repo_with_tree`], with `version` already released into `dist` beside the repo.
fn released(version: &str) -> (Sandbox, PathBuf, PathBuf) {
    let (repo, tree) = repo_with_tree();
    let out = repo.path("dist");
    release_ok(&repo, &tree, &out, version, &[]);
    (repo, tree, out)
}

/// The same files either way; `variant` changes creation order, modes and mtimes only.
fn make_tree(dir: &Path, variant: u32) {
    let long_dir = format!("vendor/{}", "long-directory-name/".repeat(6));
    let files: Vec<(String, Vec<u8>, bool)> = vec![
        ("admin/css/base.css".into(), b"body { margin: 0 }\n".to_vec(), false),
        ("admin/js/app.js".into(), b"console.log('hi');\n".repeat(50), false),
        ("admin/js/build.sh".into(), b"#!/bin/sh\necho built\n".to_vec(), true),
        ("a-b.txt".into(), b"sorts before a/\n".to_vec(), false),
        ("space name/\u{e9}t\u{e9}.txt".into(), b"utf-8\n".to_vec(), false),
        (format!("{long_dir}file-with-a-long-name.css"), b"long\n".to_vec(), false),
        ("empty.txt".into(), Vec::new(), false),
    ];
    let mut order: Vec<usize> = (0..files.len()).collect();
    if variant == 1 {
        order.reverse();
    }
    fs::create_dir_all(dir.join("img/empty-dir")).unwrap();
    for i in order {
        let (name, content, executable) = &files[i];
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        let mode = match (variant, executable) {
            (0, true) => 0o700,
            (_, true) => 0o775,
            (0, false) => 0o600,
            (_, false) => 0o664,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    symlink("../css/base.css", dir.join("admin/js/linked.css")).unwrap();
    symlink(format!("../{long_dir}file-with-a-long-name.css"), dir.join("img/long-link.css")).unwrap();
    let mtime = UNIX_EPOCH + Duration::from_secs(1_000_000 + u64::from(variant) * 999_999);
    for entry in walk(dir) {
        if !entry.is_symlink() {
            File::open(&entry).unwrap().set_modified(mtime).unwrap();
        }
        if entry.is_dir() {
            fs::set_permissions(&entry, fs::Permissions::from_mode(if variant == 0 { 0o700 } else { 0o775 })).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}

/// Every file under `dir` with its bytes, mode and mtime, to show a failure changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, SystemTime)> {
    if !dir.exists() {
        return BTreeMap::new();
    }
    walk(dir)
        .into_iter()
        .map(|p| {
            let meta = fs::symlink_metadata(&p).unwrap();
            let bytes = if meta.is_file() { fs::read(&p).unwrap() } else { Vec::new() };
            (p, (bytes, meta.permissions().mode(), meta.modified().unwrap()))
        })
        .collect()
}

fn tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program).args(args).current_dir(dir).env("TZ", "UTC").output().unwrap()
}

#[test]
fn the_same_content_gives_the_same_bytes_whatever_the_metadata_and_threads() {
    let repo = site_repo();
    make_tree(&repo.path("a"), 0);
    make_tree(&repo.path("b"), 1);
    let a1 = release_ok(&repo, &repo.path("a"), &repo.path("out-a1"), "1.0.0", &["--jobs", "1"]);
    let a4 = release_ok(&repo, &repo.path("a"), &repo.path("out-a4"), "1.0.0", &["--jobs", "4"]);
    let b4 = release_ok(&repo, &repo.path("b"), &repo.path("out-b4"), "1.0.0", &["--jobs", "4"]);
    assert!(a1 == a4, "--jobs changed the archive");
    assert!(a1 == b4, "mtimes, modes or creation order changed the archive");
    let sums = |out: &str| fs::read_to_string(repo.path(out).join("SHA256SUMS")).unwrap();
    assert_eq!(sums("out-a1"), sums("out-b4"));
}

#[test]
fn a_large_archive_is_the_same_for_every_thread_count() {
    let (repo, tree) = repo_with_tree();
    // Megabytes of machine code: many blocks, varied enough that a compressor carrying state
    // from one block to the next would show it.
    fs::copy(env!("CARGO_BIN_EXE_xtask"), tree.join("admin/js/big.bin")).unwrap();
    let one = release_ok(&repo, &tree, &repo.path("o1"), "1", &["--jobs", "1"]);
    for jobs in ["2", "3", "2", "3"] {
        let out = repo.path(&format!("o{jobs}"));
        let _ = fs::remove_dir_all(&out);
        assert!(release_ok(&repo, &tree, &out, "1", &["--jobs", jobs]) == one, "--jobs {jobs} changed the archive");
    }
    assert!(tool("gzip", &["-t", "site-1-static.tar.gz"], &repo.path("o3")).status.success());
}

#[test]
fn gnu_tar_gzip_and_sha256sum_read_the_release_as_specified() {
    let (repo, tree) = repo_with_tree();
    let out = repo.path("dist");
    let bytes = release_ok(&repo, &tree, &out, "1.0.0", &[]);
    let archive = "site-1.0.0-static.tar.gz";

    // gzip header: deflate, no flags (so no name), mtime 0.
    assert_eq!(bytes[..8], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    assert!(tool("gzip", &["-t", archive], &out).status.success());
    let check = tool("sha256sum", &["-c", "SHA256SUMS"], &out);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let listing = tool("tar", &["--numeric-owner", "-tvzf", archive], &out);
    assert!(listing.status.success());
    assert!(listing.stderr.is_empty(), "tar warned: {}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8(listing.stdout).unwrap();
    let mut names = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, date) = (fields[0], fields[1], format!("{} {}", fields[3], fields[4]));
        let name = fields[5..].join(" ");
        assert_eq!(owner, "0/0", "{line}");
        assert_eq!(date, EPOCH_SHOWN, "{line}");
        let expected = if name.ends_with('/') {
            "drwxr-xr-x"
        } else if name.contains(" -> ") {
            "lrwxrwxrwx"
        } else if name.ends_with("build.sh") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, expected, "{line}");
        names.push(name.split(" -> ").next().unwrap().to_owned());
    }
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(names, sorted, "entries are not sorted by path bytes");
    assert!(names.contains(&"img/empty-dir/".to_owned()) && names.contains(&"admin/".to_owned()));
    assert!(names.iter().any(|n| n.len() > 100), "the long path is listed whole");

    let extracted = repo.path("extracted");
    fs::create_dir(&extracted).unwrap();
    let untar = tool("tar", &["-xzf", out.join(archive).to_str().unwrap()], &extracted);
    assert!(untar.status.success() && untar.stderr.is_empty(), "{}", String::from_utf8_lossy(&untar.stderr));
    let diff = tool("diff", &["-r", "--no-dereference", tree.to_str().unwrap(), "."], &extracted);
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    let script = fs::metadata(extracted.join("admin/js/build.sh")).unwrap();
    assert_eq!(script.permissions().mode() & 0o777, 0o755);

    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["name"], "site");
    assert_eq!(manifest["version"], "1.0.0");
    assert_eq!(manifest["git_commit"], repo.git(&["rev-parse", "HEAD"]).trim());
    assert_eq!(manifest["source_date_epoch"], 1_700_000_000);
    let artifact = &manifest["artifacts"][0];
    assert_eq!(artifact["file"], archive);
    assert_eq!(artifact["size"], bytes.len() as u64);
    assert_eq!(artifact["files"], 9, "7 files and 2 symlinks");
    let unpacked = tool("sh", &["-c", &format!("gzip -dc {archive} | wc -c")], &out);
    assert_eq!(artifact["uncompressed_bytes"].to_string(), String::from_utf8(unpacked.stdout).unwrap().trim());
}

#[test]
fn verify_names_each_changed_missing_and_unlisted_file() {
    let (repo, tree, out) = released("1.0.0");
    fs::write(tree.join("admin/css/base.css"), "body { margin: 1px }\n").unwrap();
    release_ok(&repo, &tree, &out, "1.1.0", &[]);
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let files: Vec<&str> = sums.lines().map(|l| l.split("  ").nth(1).unwrap()).collect();
    assert_eq!(files, ["site-1.0.0-static.tar.gz", "site-1.1.0-static.tar.gz"], "earlier releases are kept");
    let verify = || repo.output(&["verify", out.to_str().unwrap()], &[]);
    assert!(ok(&verify()).contains("ok: 2 artifacts"));

    let changed = out.join("site-1.0.0-static.tar.gz");
    let mut bytes = fs::read(&changed).unwrap();
    bytes[100] ^= 1;
    fs::write(&changed, &bytes).unwrap();
    fs::remove_file(out.join("site-1.1.0-static.tar.gz")).unwrap();
    fs::write(out.join("extra.tar.gz"), "who put this here").unwrap();
    let output = verify();
    assert!(!output.status.success());
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(report.contains("mismatch: site-1.0.0-static.tar.gz"), "{report}");
    assert!(report.contains("missing: site-1.1.0-static.tar.gz"), "{report}");
    assert!(report.contains("unlisted: extra.tar.gz"), "{report}");
    assert!(String::from_utf8(output.stderr).unwrap().contains("3 problem(s)"));

    // Each alone, too: one problem is enough to fail.
    bytes[100] ^= 1;
    fs::write(&changed, &bytes).unwrap();
    fs::remove_file(out.join("extra.tar.gz")).unwrap();
    let only_missing = verify();
    assert!(!only_missing.status.success());
    assert_eq!(String::from_utf8(only_missing.stdout).unwrap(), "missing: site-1.1.0-static.tar.gz\n");
}

#[test]
fn verify_reports_lists_that_disagree() {
    let (repo, _, out) = released("1.0.0");
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    fs::write(out.join("SHA256SUMS"), format!("{}{}", "0".repeat(64), &sums[64..])).unwrap();
    let output = repo.output(&["verify", out.to_str().unwrap()], &[]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success());
    assert!(report.contains("disagree: site-1.0.0-static.tar.gz"), "{report}");
    assert!(report.contains("mismatch: site-1.0.0-static.tar.gz"), "{report}");
}

#[test]
fn verify_without_both_lists_names_the_missing_one() {
    let (repo, _, out) = released("1.0.0");
    let missing = |expected: &str| {
        let output = repo.output(&["verify", out.to_str().unwrap()], &[]);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(!output.status.success(), "{expected}: succeeded");
        let line = format!("error: {} not found: pass the directory", out.join(expected).display());
        assert!(stderr.starts_with(&line) && stderr.lines().count() == 1, "{stderr}");
    };
    fs::remove_file(out.join("manifest.json")).unwrap();
    missing("manifest.json");
    fs::remove_file(out.join("SHA256SUMS")).unwrap();
    missing("SHA256SUMS");
}

/// Each case must fail with one `error:` line containing `expected`, leaving `out` as it was.
fn assert_refused(
    repo: &Sandbox,
    output: Output,
    expected: &str,
    out: &Path,
    before: &BTreeMap<PathBuf, (Vec<u8>, u32, SystemTime)>,
) {
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success(), "{expected}: succeeded");
    assert_eq!(stderr.lines().count(), 1, "{expected}: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{expected}: {stderr}");
    assert!(snapshot(out) == *before, "{expected}: {} changed", out.display());
    assert!(!repo.root().join("target").exists() || fs::read_dir(repo.root().join("target")).unwrap().count() == 0);
}

#[test]
fn bad_input_is_refused_in_one_line_and_leaves_the_output_as_it_was() {
    let (repo, good, out) = released("0.9.0");
    let before = snapshot(&out);
    let refused = |tree: &Path, expected: &str| {
        assert_refused(&repo, release(&repo, tree, &out, "1.0.0", &[]), expected, &out, &before);
    };

    refused(&repo.path("nowhere"), "static dir");
    let empty = repo.path("empty");
    fs::create_dir_all(empty.join("only-dirs")).unwrap();
    refused(&empty, "has no files");

    let escaping = repo.path("escaping");
    make_tree(&escaping, 0);
    symlink("../../etc/passwd", escaping.join("admin/passwd")).unwrap();
    refused(&escaping, "admin/passwd points outside");
    let absolute = repo.path("absolute");
    make_tree(&absolute, 0);
    symlink(good.join("a-b.txt"), absolute.join("abs.txt")).unwrap();
    refused(&absolute, "abs.txt points outside");

    let fifo = repo.path("fifo");
    make_tree(&fifo, 0);
    assert!(Command::new("mkfifo").arg(fifo.join("admin/pipe")).status().unwrap().success());
    refused(&fifo, "admin/pipe is a fifo");

    let non_utf8 = repo.path("non-utf8");
    make_tree(&non_utf8, 0);
    use std::os::unix::ffi::OsStrExt;
    fs::write(non_utf8.join(std::ffi::OsStr::from_bytes(b"bad-\xff.css")), "x").unwrap();
    refused(&non_utf8, "not UTF-8");

    let args = ["release", "--static-dir", good.to_str().unwrap(), "--out", out.to_str().unwrap(), "--version", "1"];
    let output = repo.output(&args, &[("SOURCE_DATE_EPOCH", "yesterday")]);
    assert_refused(&repo, output, "SOURCE_DATE_EPOCH=\"yesterday\"", &out, &before);

    // The same version with other contents: a published artifact is never replaced.
    fs::write(good.join("a-b.txt"), "changed\n").unwrap();
    assert_refused(
        &repo,
        release(&repo, &good, &out, "0.9.0", &[]),
        "already exists with other contents",
        &out,
        &before,
    );
}

#[test]
fn an_unreadable_file_is_refused() {
    let (repo, tree, out) = released("0.9.0");
    let before = snapshot(&out);
    let secret = tree.join("admin/secret.css");
    fs::write(&secret, "x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let args =
        ["release", "--static-dir", tree.to_str().unwrap(), "--out", out.to_str().unwrap(), "--version", "1.0.0"];
    let mut release = repo.xtask_command(&args);
    // Root reads any file: drop the capabilities that let it, where setpriv can.
    if fs::read(&secret).is_ok() {
        let dropped = "-dac_override,-dac_read_search";
        let probe = Command::new("setpriv")
            .args(["--inh-caps", dropped, "--bounding-set", dropped, "cat"])
            .arg(&secret)
            .output();
        if !probe.is_ok_and(|p| !p.status.success()) {
            return skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here");
        }
        release = repo.command("setpriv");
        release.args(["--inh-caps", dropped, "--bounding-set", dropped, env!("CARGO_BIN_EXE_xtask")]).args(args);
    }
    assert_refused(&repo, release.output().unwrap(), "admin/secret.css: Permission denied", &out, &before);
}

#[test]
fn an_unwritable_output_and_a_dirty_tree_are_refused() {
    let (repo, tree) = repo_with_tree();
    let parent = repo.path("box");
    fs::create_dir(&parent).unwrap();
    fs::write(parent.join("file"), "a regular file").unwrap();
    let before = snapshot(&parent);
    let output = release(&repo, &tree, &parent.join("file/dist"), "1.0.0", &[]);
    assert_refused(&repo, output, "cannot create the output directory", &parent, &before);

    fs::write(repo.root().join("README"), "edited\n").unwrap();
    fs::write(repo.root().join("new.py"), "").unwrap();
    let out = repo.path("dist");
    let output = release(&repo, &tree, &out, "1.0.0", &[]);
    assert_refused(&repo, output, "uncommitted changes (README, new.py)", &out, &BTreeMap::new());
    assert!(!out.exists());
    release_ok(&repo, &tree, &out, "1.0.0", &["--allow-dirty"]);
}

#[test]
fn releasing_the_same_version_again_is_accepted_when_identical() {
    let (repo, tree, out) = released("1.0.0");
    let before = snapshot(&out);
    release_ok(&repo, &tree, &out, "1.0.0", &["--jobs", "3"]);
    assert!(snapshot(&out)
        .into_iter()
        .map(|(p, (b, m, _))| (p, b, m))
        .eq(before.into_iter().map(|(p, (b, m, _))| (p, b, m))));
}

#[test]
fn the_version_comes_from_the_tag_on_head_else_git_describe() {
    let (repo, _) = repo_with_tree();
    let release = |out: &str| ok(&repo.output(&["release", "--static-dir", "tree", "--out", out], &[]));
    repo.git(&["tag", "v1.2.3"]);
    assert!(release("tagged").contains("released site 1.2.3 into "));
    assert!(repo.path("tagged/site-1.2.3-static.tar.gz").is_file(), "--out is relative to the current directory");
    fs::write(repo.root().join("README"), "two\n").unwrap();
    repo.git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "second"]);
    let described = repo.git(&["describe", "--tags", "--always", "--abbrev=12"]);
    assert!(release("described").contains(&format!("released site {} into", described.trim())));
}

#[test]
fn without_a_static_dir_the_plan_runs_collectstatic_in_the_production_image() {
    let repo = site_repo();
    let output = repo.output(&["--dry-run", "release", "--version", "1.0.0"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8(output.stderr).unwrap().contains(".env.prod not found"));

    fs::write(repo.root().join(".env.prod"), "DEBUG=0\n").unwrap();
    let plan = ok(&repo.output(&["--dry-run", "release", "--version", "1.0.0", "--image"], &[]));
    let notes: Vec<&str> = plan.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        notes[0].starts_with("# write ")
            && notes[0].ends_with("/.stack/processes/prod.yml: the services beat, worker of the project's processes"),
        "{plan}"
    );
    assert!(notes[1].starts_with("# fill the build context "), "{plan}");
    let lines: Vec<&str> = plan.lines().skip(notes.len()).collect();
    assert!(lines[0].ends_with(" build web"), "{plan}");
    let scratch = repo.root().join("target/release-static-");
    let run = format!("--no-deps --user {} -v {}", id(), scratch.display());
    assert!(lines[1].contains("run --name site-prod-oneoff-"), "{plan}");
    assert!(lines[1].contains(&run) && lines[1].ends_with("web python manage.py collectstatic --noinput"), "{plan}");
    assert!(lines[1].contains("WEB_IMAGE=site-web DJANGO_DIR=project-template "), "{plan}");
    assert!(lines[1].contains(" DJANGO_WORKER_CLASS=sync BUILD_PACKAGES='' RUN_PACKAGES='' TLS_CERT_FILE="), "{plan}");
    assert!(
        lines[1].contains("/certs/site-key.pem TLS_CERT_SHA256='' NGINX_CONF_SHA256='' DJANGO_BUILD_CONTEXT=")
            && lines[1].contains("/.stack/build/prod docker compose --project-name site-prod"),
        "{plan}"
    );
    assert!(lines[2].contains("docker inspect") && lines[3].contains("docker rm --force site-prod-oneoff-"), "{plan}");
    assert!(plan.contains("# then: docker save site-web, compressed into "), "{plan}");
    assert!(!repo.root().join("target").exists() && !repo.root().join("dist").exists(), "a dry run writes nothing");
}

#[test]
fn without_a_static_dir_what_collectstatic_writes_is_released_and_the_scratch_dir_removed() {
    let repo = site_repo();
    fs::write(repo.root().join(".env.prod"), "DEBUG=0\n").unwrap();
    let log = repo.path("scratch.log");
    fake_collectstatic(&repo, &log, "${FAIL:-0}", r#"exit "${FAIL:-0}""#);
    let out = repo.path("dist");
    ok(&repo.output(&["release", "--version", "1.0.0", "--out", "dist"], &[]));
    let listing = tool("tar", &["-tzf", "site-1.0.0-static.tar.gz"], &out);
    assert_eq!(String::from_utf8(listing.stdout).unwrap(), "admin/\nadmin/css/\nadmin/css/base.css\n");
    let scratch = PathBuf::from(fs::read_to_string(&log).unwrap().trim());
    assert!(scratch.starts_with(repo.root().join("target")) && !scratch.exists(), "{}", scratch.display());

    let before = snapshot(&out);
    let args = ["release", "--version", "2.0.0", "--out", "dist"];
    let output = repo.output(&args, &[("FAIL", "3")]);
    assert_eq!(output.status.code(), Some(3), "the failed step's exit code passes through");
    assert!(snapshot(&out) == before);
    assert!(!PathBuf::from(fs::read_to_string(&log).unwrap().trim()).exists());
}

fn id() -> String {
    let id = |flag: &str| {
        String::from_utf8(Command::new("id").arg(flag).output().unwrap().stdout).unwrap().trim().to_owned()
    };
    format!("{}:{}", id("-u"), id("-g"))
}

/// A fake `docker` playing Compose as far as the xtask sees it: collectstatic writes
/// `admin/css/base.css` into the directory mounted on STATIC_ROOT, records that directory in
/// `log`, then runs `then` (a shell line); its container reads back as `exited <exited>`.
fn fake_collectstatic(repo: &Sandbox, log: &Path, exited: &str, then: &str) {
    let script = format!(
        r#"case "$*" in
  info*|"compose version"|"rm --force "*) exit 0 ;;
  *" build web") exit 0 ;;
  inspect*) echo "exited {exited}"; exit 0 ;;
  *collectstatic*)
    while [ $# -gt 0 ]; do [ "$1" = -v ] && dir=${{2%%:*}}; shift; done
    mkdir -p "$dir/admin/css" && echo 'body {{}}' >"$dir/admin/css/base.css" && echo "$dir" >{log}
    {then} ;;
esac
exit 9"#,
        log = log.display()
    );
    repo.docker_script(&script);
}

#[test]
fn the_image_is_saved_compressed_and_recorded_beside_the_static_files() {
    let (repo, _) = repo_with_tree();
    let out = repo.path("dist");
    repo.docker_script(r#"[ "$1 $2" = "save site-web" ] || exit 3; printf 'image layers'"#);
    let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", "2.0.0", "--image"];
    ok(&repo.output(&args, &[]));
    let image = tool("gzip", &["-dc", "site-2.0.0-image.tar.gz"], &out);
    assert_eq!(image.stdout, b"image layers");
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 2);
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["artifacts"][1]["kind"], "image");
    assert!(manifest["artifacts"][1].get("files").is_none());
    ok(&repo.output(&["verify", "dist"], &[]));

    let before = snapshot(&out);
    repo.docker_script("echo 'Error response from daemon: reference does not exist' >&2; exit 1");
    let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", "3.0.0", "--image"];
    let output = repo.output(&args, &[]);
    assert_refused(&repo, output, "reference does not exist", &out, &before);
}

#[test]
fn releasing_a_version_again_without_the_image_keeps_its_image_record() {
    let (repo, _) = repo_with_tree();
    repo.docker_script(r#"[ "$1 $2" = "save site-web" ] || exit 3; printf 'image layers'"#);
    let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", "2.0.0"];
    ok(&repo.output(&[&args[..], &["--image"]].concat(), &[]));
    // The same version again, static files only: identical, so accepted, and the image
    // published the first time stays listed in both SHA256SUMS and the manifest.
    ok(&repo.output(&args, &[]));
    let out = repo.path("dist");
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let files: Vec<&str> =
        manifest["artifacts"].as_array().unwrap().iter().map(|a| a["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["site-2.0.0-static.tar.gz", "site-2.0.0-image.tar.gz"]);
    ok(&repo.output(&["verify", "dist"], &[]));
    tool("sha256sum", &["-c", "SHA256SUMS"], &out);
}

#[test]
fn a_killed_release_leaves_nothing_behind() {
    let (repo, _, out) = released("1.0.0");
    let before = snapshot(&out);
    // The static archive is complete by the time `docker save` hangs.
    repo.docker_script("printf 'partial'; exec sleep 10");
    let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", "2.0.0", "--image"];
    let mut child = repo.xtask_command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(snapshot(&out) == before, "a killed release left files in {}", out.display());
}

#[test]
fn releases_into_one_output_wait_for_each_other_and_no_wait_fails_at_once() {
    let (repo, tree, out) = released("1.0.0");
    let held = File::open(&out).unwrap();
    held.lock().unwrap();
    let output = release(&repo, &tree, &out, "2.0.0", &["--no-wait"]);
    assert_eq!(output.status.code(), Some(1));
    let line = format!(
        "error: another release is writing into {}: wait until it is done, or run again without --no-wait to wait for it\n",
        out.display()
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), line);

    let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", "2.0.0"];
    let waiting = repo.xtask_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!out.join("site-2.0.0-static.tar.gz").exists(), "the second release did not wait for the lock");
    drop(held);
    let done = waiting.wait_with_output().unwrap();
    ok(&done);
    assert!(String::from_utf8_lossy(&done.stderr).contains("waiting for another release into "));

    // Started together, each release reads SHA256SUMS only once the other has written it.
    let start = |version: &str| {
        let args = ["release", "--static-dir", "tree", "--out", "dist", "--version", version];
        repo.xtask_command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let racing = [start("3.0.0"), start("4.0.0"), start("5.0.0")];
    for child in racing {
        ok(&child.wait_with_output().unwrap());
    }
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for version in ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"] {
        assert!(sums.contains(&format!("  site-{version}-static.tar.gz\n")), "{version} lost from SHA256SUMS:\n{sums}");
    }
    ok(&tool("sha256sum", &["-c", "SHA256SUMS"], &out));
}

#[test]
fn ctrl_c_during_collectstatic_removes_its_scratch_directory() {
    use std::os::unix::process::CommandExt;
    let repo = site_repo();
    fs::write(repo.root().join(".env.prod"), "DEBUG=0\n").unwrap();
    let log = repo.path("scratch.log");
    // collectstatic writes a file, then runs until the terminal's Ctrl-C reaches it.
    fake_collectstatic(&repo, &log, "130", "exec sleep 30");
    let args = ["release", "--version", "1.0.0", "--out", "dist"];
    let mut command = repo.xtask_command(&args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while !log.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "collectstatic never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scratch = PathBuf::from(fs::read_to_string(&log).unwrap().trim());
    assert!(scratch.join("admin/css/base.css").is_file());
    let group = format!("-{}", child.id());
    assert!(Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!scratch.exists(), "Ctrl-C left the scratch directory {}", scratch.display());
    assert!(!repo.path("dist").exists(), "Ctrl-C left the output directory it created");
}

#[test]
fn bad_release_flags_are_refused_in_one_line_before_anything_is_written() {
    let (repo, tree, out) = released("0.9.0");
    let before = snapshot(&out);
    let cases: [(&[&str], &str, &str); 4] = [
        (&["--level", "0"], "1.0.0", "--level 0: use 1 (fastest) to 9 (smallest)"),
        (&["--jobs", "0"], "1.0.0", "--jobs 0: use at least 1 thread"),
        (&[], "../1.0", "version \"../1.0\" cannot name a file: use letters, digits, `.`, `_`, `+` and `-`"),
        (&[], ".hidden", "version \".hidden\" cannot name a file"),
    ];
    for (flags, version, expected) in cases {
        assert_refused(&repo, release(&repo, &tree, &out, version, flags), expected, &out, &before);
    }
}
