//! `cargo xtask db` against a real Docker engine and PostgreSQL, the `db` service of
//! docker/compose.yml: a backup restores the rows as they were, a backup damaged by one
//! byte is refused before anything is dropped, a restore failing half-way leaves the old
//! rows, and a managed database is reached from a one-off container. Ignored by plain
//! `cargo test`; run with `cargo test -p xtask --test integration -- --ignored db_engine::`.
//!
//! The Postgres image is `POSTGRES_IMAGE` when set, else what
//! tests/e2e/support/base-images.sh provides (a local stand-in when no registry answers).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xtask::project::{Description, Flavour};

const PASSWORD: &str = "Engine7TestPassword";

/// A scratch project whose dev stack runs only the `db` service, removed with its
/// volume when dropped, also when a test fails.
struct Project {
    name: String,
    compose: Vec<String>,
    dir: tempfile::TempDir,
}

impl Project {
    /// Starts the dev stack's database and waits until it is healthy.
    fn start(test: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        fs::create_dir_all(root.join("docker")).unwrap();
        fs::copy(repo().join("docker/compose.yml"), root.join("docker/compose.yml")).unwrap();
        let env = format!(
            "POSTGRES_HOST=db\nPOSTGRES_USER=app\nPOSTGRES_PASSWORD={PASSWORD}\nPOSTGRES_DB=app\nPOSTGRES_IMAGE={}\n",
            postgres_image()
        );
        fs::write(root.join(".env"), env).unwrap();
        let name = format!("xtdb-{}-{test}", std::process::id());
        let project = Project { name, compose: compose_program(), dir };
        let up = project.compose_cmd(&["up", "--detach", "db"]).output().unwrap();
        assert!(up.status.success(), "cannot start the database: {}", text(&up.stderr));
        project.wait_healthy();
        project
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("shop")
    }

    fn compose_cmd(&self, args: &[&str]) -> Command {
        let root = self.root();
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .args(["--project-name", &format!("{}-dev", self.name), "--project-directory"])
            .arg(&root)
            .arg("--env-file")
            .arg(root.join(".env"))
            .arg("-f")
            .arg(root.join("docker/compose.yml"))
            .args(args);
        // The variables the xtask sets from the project's description, which the compose
        // file requires even when only `db` runs.
        cmd.envs(Description::default().compose_vars(Flavour::Dev));
        // The dev web image's name, which `dev` derives from the project's name.
        cmd.env("DEV_WEB_IMAGE", format!("{}-dev-web", self.name));
        cmd
    }

    fn container(&self) -> String {
        let ps = self.compose_cmd(&["ps", "-q", "db"]).output().unwrap();
        text(&ps.stdout).trim().to_owned()
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let id = self.container();
        loop {
            let out = docker(&["inspect", "--format", "{{.State.Health.Status}}", &id]);
            if text(&out.stdout).trim() == "healthy" {
                return;
            }
            assert!(Instant::now() < deadline, "the database never became healthy");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Points `.env.prod` at the same server as a managed database, by its address on
    /// the Docker network (the one-off container runs on the host's network).
    fn as_managed(&self) {
        let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
        let ip = text(&docker(&["inspect", "--format", format, &self.container()]).stdout).trim().to_owned();
        let env = format!(
            "DEBUG=0\nPOSTGRES_HOST={ip}\nPOSTGRES_PORT=5432\nPOSTGRES_USER=app\nPOSTGRES_PASSWORD={PASSWORD}\nPOSTGRES_DB=app\nPOSTGRES_IMAGE={}\n",
            postgres_image()
        );
        fs::write(self.root().join(".env.prod"), env).unwrap();
    }

    fn xtask(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("XTASK_ROOT", self.root())
            .env("XTASK_PROJECT_NAME", &self.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let input = stdin.unwrap_or_default().to_owned();
        let mut pipe = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut pipe, input.as_bytes()));
        let output = child.wait_with_output().unwrap();
        // A command that does not read its input closes the pipe early: not an error.
        let _ = writer.join();
        output
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let output = self.xtask(args, stdin);
        assert!(output.status.success(), "{args:?} failed: {}\n{}", text(&output.stderr), text(&output.stdout));
        output
    }

    /// Runs SQL through `db psql` (piped, as a script would) and returns what it printed.
    fn sql(&self, prod: bool, script: &str) -> String {
        let args: &[&str] = if prod { &["db", "psql", "--prod"] } else { &["db", "psql"] };
        text(&self.ok(args, Some(&format!("\\set ON_ERROR_STOP on\n{script}\n"))).stdout)
    }

    /// The values of table `t`, sorted and joined with commas.
    fn rows(&self, prod: bool) -> String {
        let out = self.sql(prod, "SELECT 'rows=' || coalesce(string_agg(v, ',' ORDER BY v), '') FROM t;");
        let line = out.lines().map(str::trim).find(|l| l.starts_with("rows=")).unwrap_or_else(|| panic!("{out}"));
        line["rows=".len()..].to_owned()
    }

    /// Backs up and returns the new backup's path.
    fn backup(&self, prod: bool) -> PathBuf {
        let args: &[&str] = if prod { &["db", "backup", "--prod"] } else { &["db", "backup"] };
        self.ok(args, None);
        let mut dumps: Vec<PathBuf> = fs::read_dir(self.root().join("backups"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dump"))
            .collect();
        dumps.sort();
        dumps.pop().expect("no backup written")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let down = self.compose_cmd(&["down", "--volumes", "--remove-orphans", "--timeout", "1"]).output();
        match down {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("cleanup of {} failed: {}", self.name, text(&out.stderr)),
            Err(error) => eprintln!("cleanup of {} failed: {error}", self.name),
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// The Compose the xtask itself would pick: `XTASK_COMPOSE`, else v2, else v1.
fn compose_program() -> Vec<String> {
    if let Ok(chosen) = std::env::var("XTASK_COMPOSE") {
        return chosen.split_whitespace().map(str::to_owned).collect();
    }
    let v2 = Command::new("docker").args(["compose", "version"]).output();
    if v2.is_ok_and(|out| out.status.success()) {
        return vec!["docker".into(), "compose".into()];
    }
    vec!["docker-compose".into()]
}

fn postgres_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(image) = std::env::var("POSTGRES_IMAGE") {
            return image;
        }
        let out = Command::new(repo().join("tests/e2e/support/base-images.sh")).output().unwrap();
        assert!(out.status.success(), "base-images.sh failed: {}", text(&out.stderr));
        let listed = text(&out.stdout);
        let line = listed.lines().find_map(|l| l.strip_prefix("POSTGRES_IMAGE="));
        line.unwrap_or_else(|| panic!("no POSTGRES_IMAGE in: {listed}")).to_owned()
    })
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_restore_brings_back_the_rows_as_they_were_at_backup_time() {
    let project = Project::start("roundtrip");
    project.sql(false, "CREATE TABLE t (v text); INSERT INTO t VALUES ('a'), ('b');");
    let backup = project.backup(false);
    project.sql(false, "DELETE FROM t WHERE v = 'a'; INSERT INTO t VALUES ('c');");
    assert_eq!(project.rows(false), "b,c");

    let refused = project.xtask(&["db", "restore", &backup.to_string_lossy()], None);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(project.rows(false), "b,c", "restored without --yes");

    project.ok(&["db", "restore", &backup.to_string_lossy(), "--yes"], None);
    assert_eq!(project.rows(false), "a,b");
    let list = text(&project.ok(&["db", "list"], None).stdout);
    assert!(list.trim_end().ends_with("ok"), "{list}");
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_managed_database_is_backed_up_and_restored_from_a_one_off_container() {
    let project = Project::start("managed");
    project.as_managed();
    project.sql(true, "CREATE TABLE t (v text); INSERT INTO t VALUES ('x'), ('y');");
    let backup = project.backup(true);
    project.sql(true, "UPDATE t SET v = 'z';");
    project.ok(&["db", "restore", "--prod", "--yes", &backup.to_string_lossy()], None);
    assert_eq!(project.rows(true), "x,y");
    // The same server seen as the bundled database of the dev stack.
    assert_eq!(project.rows(false), "x,y");
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_backup_damaged_by_one_byte_is_refused_before_anything_is_dropped() {
    let project = Project::start("damaged");
    project.sql(false, "CREATE TABLE t (v text); INSERT INTO t VALUES ('a');");
    let backup = project.backup(false);
    project.sql(false, "INSERT INTO t VALUES ('new');");
    let mut bytes = fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&backup, bytes).unwrap();

    let output = project.xtask(&["db", "restore", "--yes", &backup.to_string_lossy()], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("does not match its checksum"), "{}", text(&output.stderr));
    assert_eq!(project.rows(false), "a,new");
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_restore_failing_half_way_leaves_the_old_rows() {
    let project = Project::start("halfway");
    // `t` is restored before `u`, whose data fills the end of the dump.
    project.sql(
        false,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('a');
         CREATE TABLE u (n int, h text); INSERT INTO u SELECT n, md5(n::text) FROM generate_series(1, 50000) n;",
    );
    let backup = project.backup(false);
    project.sql(false, "UPDATE t SET v = 'changed';");
    truncate_keeping_checksum(&backup);

    let output = project.xtask(&["db", "restore", "--yes", &backup.to_string_lossy()], None);
    assert!(!output.status.success(), "a truncated dump restored: {}", text(&output.stdout));
    assert_eq!(project.rows(false), "changed", "the restore was not rolled back");
    let count = project.sql(false, "SELECT 'count=' || count(*) FROM u;");
    assert!(count.contains("count=50000"), "{count}");
}

/// Cuts the last tenth of a dump (inside the data of its last table) and records the
/// checksum of what is left, so only pg_restore can notice.
fn truncate_keeping_checksum(backup: &Path) {
    let bytes = fs::read(backup).unwrap();
    let kept = &bytes[..bytes.len() - bytes.len() / 10];
    fs::write(backup, kept).unwrap();
    let name = backup.file_name().unwrap().to_string_lossy();
    let sum = Command::new("sha256sum").arg(backup).output().unwrap();
    let hex = text(&sum.stdout).split_whitespace().next().unwrap().to_owned();
    fs::write(backup.with_file_name(format!("{name}.sha256")), format!("{hex}  {name}\n")).unwrap();
}
