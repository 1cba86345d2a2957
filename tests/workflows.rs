//! The GitHub workflows and Dependabot settings: actionlint passes on every workflow, and
//! each workflow goes through the xtask (CI runs `cargo xtask ci`; a tag runs
//! `cargo xtask release --image`, `cargo xtask verify dist`, then publishes), so editing
//! a workflow to bypass the xtask fails here; and `cargo xtask ci --dry-run` lists every
//! check. `cargo xtask ci` runs these as its `workflows` step (the `workflow_check::` names).

mod workflow_check {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_yaml::Value;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace holds the xtask crate")
    }

    fn workflows() -> Vec<PathBuf> {
        let dir = root().join(".github/workflows");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml"))
            .collect();
        files.sort();
        files
    }

    fn load(relative: &str) -> Value {
        let path = root().join(relative);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
    }

    fn jobs(workflow: &Value) -> Vec<(String, &Value)> {
        let jobs = workflow["jobs"].as_mapping().expect("a workflow has jobs");
        jobs.iter().map(|(name, job)| (name.as_str().unwrap_or_default().to_owned(), job)).collect()
    }

    /// Every line of every `run:` script of a job.
    fn run_lines(job: &Value) -> Vec<String> {
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        let scripts = steps.iter().filter_map(|step| step["run"].as_str().map(str::to_owned)).collect::<Vec<_>>();
        scripts.iter().flat_map(|s| s.lines().map(|l| l.trim().to_owned()).collect::<Vec<_>>()).collect()
    }

    fn uses(job: &Value) -> Vec<String> {
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        steps.iter().filter_map(|step| step["uses"].as_str().map(str::to_owned)).collect()
    }

    fn all_run_lines(workflow: &Value) -> Vec<String> {
        jobs(workflow).into_iter().flat_map(|(_, job)| run_lines(job)).collect()
    }

    fn runs(lines: &[String], command: &str) -> bool {
        lines.iter().any(|line| line.starts_with(command))
    }

    #[test]
    fn actionlint_passes_on_every_workflow() {
        let actionlint = xtask::tools::actionlint().unwrap_or_else(|e| panic!("{e:#}"));
        let files = workflows();
        assert!(!files.is_empty(), "no workflow in .github/workflows");
        let output = Command::new(&actionlint)
            .arg("-no-color")
            .args(&files)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", actionlint.display()));
        assert!(
            output.status.success(),
            "actionlint found problems:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn ci_runs_every_check_through_the_xtask() {
        let ci = load(".github/workflows/ci.yml");
        assert!(ci["on"]["push"].is_mapping() || ci["on"]["push"].is_null(), "ci.yml runs on push");
        assert!(ci["on"].get("pull_request").is_some(), "ci.yml runs on pull_request");
        let lines = all_run_lines(&ci);
        assert!(runs(&lines, "cargo xtask ci"), "ci.yml must run `cargo xtask ci`, found: {lines:#?}");
        let bypass: Vec<&String> =
            lines.iter().filter(|l| l.contains("cargo ") && !l.starts_with("cargo xtask ")).collect();
        assert!(bypass.is_empty(), "ci.yml runs cargo other than through the xtask: {bypass:?}");
    }

    #[test]
    fn a_version_tag_releases_through_the_xtask() {
        let release = load(".github/workflows/release.yml");
        let tags = release["on"]["push"]["tags"].as_sequence().cloned().unwrap_or_default();
        assert!(tags.iter().any(|t| t.as_str() == Some("v*.*.*")), "release.yml must run on tags v*.*.*");
        let lines = all_run_lines(&release);
        for command in
            ["cargo xtask init --prod --host", "cargo xtask release", "cargo xtask verify dist", "gh release create"]
        {
            assert!(runs(&lines, command), "release.yml must run `{command}`, found: {lines:#?}");
        }
        let image = lines.iter().any(|l| l.starts_with("cargo xtask release") && l.contains("--image"));
        assert!(image, "release.yml must run `cargo xtask release --image`");
        let create = lines.iter().find(|l| l.starts_with("gh release create")).expect("checked above");
        assert!(
            create.contains("dist/*") && create.contains("--verify-tag"),
            "publish every file of dist/ for the tag: {create}"
        );
        let position = |found: &dyn Fn(&String) -> bool| lines.iter().position(found);
        let verify = position(&|l| l.starts_with("cargo xtask verify dist"));
        let compare = position(&|l| l.contains("dist/manifest.json") && l.contains(".version"));
        let publish = position(&|l| l.starts_with("gh release create"));
        assert!(compare.is_some(), "release.yml must compare the manifest's version with the tag");
        assert!(verify < publish && compare < publish, "verify and check the version before publishing");
    }

    fn load_file(file: &Path) -> Value {
        load(&file.strip_prefix(root()).expect("under the root").to_string_lossy())
    }

    #[test]
    fn workflows_read_only_unless_publishing() {
        let read_only: serde_yaml::Mapping = serde_yaml::from_str("contents: read").expect("yaml");
        for file in workflows() {
            let workflow = load_file(&file);
            let top = workflow["permissions"].as_mapping().cloned().unwrap_or_default();
            assert_eq!(top, read_only, "{}: top-level permissions must be `contents: read`", file.display());
            for (name, job) in jobs(&workflow) {
                let writes =
                    job["permissions"].as_mapping().is_some_and(|p| p.values().any(|v| v.as_str() == Some("write")));
                let publishes = run_lines(job).iter().any(|l| l.starts_with("gh release create"));
                assert!(!writes || publishes, "{} job `{name}`: only the job that publishes may write", file.display());
            }
        }
    }

    #[test]
    fn the_release_job_may_publish_and_attest() {
        let release = load(".github/workflows/release.yml");
        let (_, job) = jobs(&release)
            .into_iter()
            .find(|(_, job)| run_lines(job).iter().any(|l| l.starts_with("gh release create")))
            .expect("a job publishes the release");
        for (permission, why) in [("contents", "create the release"), ("id-token", "sign"), ("attestations", "attest")]
        {
            assert_eq!(
                job["permissions"][permission].as_str(),
                Some("write"),
                "{permission}: write is needed to {why}"
            );
        }
        let attests = uses(job).iter().any(|u| u.starts_with("actions/attest-build-provenance@"));
        assert!(attests, "the release job attests its artifacts with actions/attest-build-provenance");
    }

    /// Actions are pinned one way throughout: a major version tag (`@v4`) or a full commit SHA.
    #[test]
    fn actions_are_pinned_by_major_version() {
        for file in workflows() {
            let workflow = load_file(&file);
            for (name, job) in jobs(&workflow) {
                for action in uses(job) {
                    let (_, pin) = action.split_once('@').unwrap_or((&action, ""));
                    let major =
                        pin.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                    let sha = pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit());
                    assert!(
                        major || sha,
                        "{} job `{name}`: pin `{action}` to a major version tag or a commit SHA",
                        file.display()
                    );
                }
            }
        }
    }

    #[test]
    fn dependabot_updates_every_ecosystem() {
        let dependabot = load(".github/dependabot.yml");
        let updates = dependabot["updates"].as_sequence().cloned().unwrap_or_default();
        let covered: Vec<(String, String)> = updates
            .iter()
            .map(|u| {
                let field = |key: &str| u[key].as_str().unwrap_or_default().to_owned();
                (field("package-ecosystem"), field("directory"))
            })
            .collect();
        for wanted in [("cargo", "/"), ("pip", "/project-template"), ("docker", "/docker"), ("github-actions", "/")] {
            let found = covered.iter().any(|(e, d)| e == wanted.0 && d == wanted.1);
            assert!(found, "dependabot.yml must update {} in {}, found {covered:?}", wanted.0, wanted.1);
        }
    }

    #[test]
    fn ci_dry_run_lists_every_step_in_order() {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["ci", "--dry-run"])
            .env_remove("XTASK_ROOT")
            .output()
            .expect("the xtask runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "ci --dry-run failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
        let cd = format!("cd {} && ", root().canonicalize().expect("the root exists").display());
        let tests = |filters: &str| format!("cargo test -p xtask --test integration -- {filters}");
        let expected = [
            ("# fmt", "cargo fmt --all --check".to_owned()),
            ("# clippy", "cargo clippy --workspace --all-targets -- -D warnings".to_owned()),
            (
                "# cargo test",
                "cargo test --workspace -- --skip stack_check:: --skip workflow_check:: --skip envfile_check:: --skip book_check::"
                    .to_owned(),
            ),
            (
                "# e2e, when a Docker engine answers, in the background",
                tests("--ignored --nocapture '--test-threads=2' e2e:: db_engine::"),
            ),
            ("# compose config", tests("stack_check::compose_config")),
            ("# env fuzz", tests("envfile_check:: --nocapture")),
            ("# hadolint", tests("stack_check::hadolint")),
            ("# nginx -t", tests("stack_check::nginx_conf")),
            ("# nginx smoke", tests("stack_check::nginx_smoke")),
            ("# django sqlite", tests("stack_check::django_sqlite")),
            ("# django layer", tests("stack_check::django_layer")),
            ("# new project", tests("stack_check::new_project")),
            ("# django postgres", tests("stack_check::django_postgres")),
            ("# preflight", tests("stack_check::preflight")),
            ("# workflows", tests("workflow_check::")),
            ("# book", tests("book_check::")),
        ];
        let lines: Vec<&str> = stdout.lines().collect();
        let pairs: Vec<(&str, String)> = lines.chunks(2).map(|pair| (pair[0], pair[1].replacen(&cd, "", 1))).collect();
        let expected: Vec<(&str, String)> = expected.into_iter().collect();
        assert_eq!(pairs, expected, "ci --dry-run printed:\n{stdout}");
    }
}
