//! `cargo xtask new`, run as the real binary: what it refuses (changing nothing), and the
//! repository it makes: one commit, a clean tree, the package renamed, its description
//! accepted by the xtask, `cargo fmt --check` clean. Its Django tests run in the
//! `new project` ci step (tests/stack.rs, `stack_check::new_project`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn xtask(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).env_remove("XTASK_ROOT").env_remove("XTASK_PROJECT_NAME");
    for (key, value) in envs {
        command.env(key, value);
    }
    for (key, value) in [("GIT_AUTHOR_NAME", "new"), ("GIT_COMMITTER_NAME", "new")] {
        command.env(key, value);
    }
    for key in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
        command.env(key, "new@example.invalid");
    }
    command.output().expect("the xtask runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// One line on stderr naming the problem, exit 1, and `path` as it was.
fn assert_refused(args: &[&str], path: &Path, expected: &str) {
    let before: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).collect();
    let out = xtask(args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} was not refused: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    let after: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(before, after, "a refused `new` changed the directory");
}

#[test]
fn new_refuses_an_occupied_path_and_names_that_are_not_python_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken");
    fs::create_dir(&taken).unwrap();
    fs::write(taken.join("notes.txt"), "mine\n").unwrap();
    let path = |p: &Path| p.to_string_lossy().into_owned();
    assert_refused(&["new", &path(&taken), "--name", "shop"], &taken, "exists and is not empty");
    let fresh = dir.path().join("fresh");
    assert_refused(&["new", &path(&fresh), "--name", "2shop"], &fresh, "not a Python identifier");
    assert_refused(&["new", &path(&fresh), "--name", "class"], &fresh, "a Python keyword");
    let dashed = dir.path().join("my-shop");
    assert_refused(
        &["new", &path(&dashed)],
        &dashed,
        "pass --name NAME, or name the directory so, e.g. --name my_shop",
    );
    assert_eq!(fs::read_to_string(taken.join("notes.txt")).unwrap(), "mine\n");
}

#[test]
fn new_makes_a_committed_repository_whose_description_and_formatting_hold() {
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("shop");
    let out = xtask(&["new", &made.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let next = format!("next: cd {} && cargo xtask init && cargo xtask dev", made.display());
    assert!(stdout.lines().any(|l| l == next), "{stdout}");

    assert_eq!(git(&made, &["rev-list", "--count", "HEAD"]).trim(), "1");
    assert_eq!(git(&made, &["status", "--porcelain"]), "", "the new repository has uncommitted files");
    let files = git(&made, &["ls-files"]);
    assert!(files.lines().any(|f| f == "project-template/shop/settings/prod.py"), "{files}");
    assert!(!files.lines().any(|f| f.starts_with("project-template/config/")), "the config package is still there");
    for file in ["xtask/src/main.rs", "docker/Dockerfile", "docker/stack_settings/prod.py", ".ci/run"] {
        assert!(files.lines().any(|f| f == file), "{file} is missing");
    }
    let executable = fs::metadata(made.join(".ci/run")).unwrap();
    assert!(std::os::unix::fs::PermissionsExt::mode(&executable.permissions()) & 0o111 != 0, ".ci/run lost its mode");
    let grep = Command::new("grep")
        .args(["-rlwE", "--include=*.py", "(from|import) config"])
        .arg(made.join("project-template"))
        .output()
        .unwrap();
    assert_eq!(text(&grep.stdout), "", "files still import config");
    let env = fs::read_to_string(made.join("docker/dev.env.example")).unwrap();
    assert!(env.contains("\nPOSTGRES_DB=shop\n") && env.contains("\nPOSTGRES_USER=shop\n"), "{env}");
    let manifest = fs::read_to_string(made.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("celery -A shop worker") && !manifest.contains("-A config"), "{manifest}");

    // The xtask reads the new description through cargo metadata and finds every module.
    fs::write(made.join(".env"), &env).unwrap();
    let plan = xtask(&["--dry-run", "dev"], &[("XTASK_ROOT", &made)]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains(" DJANGO_SETTINGS=shop.settings.dev ") && plan.contains(" DJANGO_APP=shop.wsgi "), "{plan}");

    let fmt = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["fmt", "--all", "--check"])
        .current_dir(&made)
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "cargo fmt --check in the new repository: {}{}",
        text(&fmt.stdout),
        text(&fmt.stderr)
    );
}
