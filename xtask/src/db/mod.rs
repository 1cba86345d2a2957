//! The `db` commands: back up the stack's database to a checksummed file, restore it
//! from one, list the backups, and open psql on it.

pub(crate) mod human;
pub(crate) mod target;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};

use crate::cli::{DbArgs, DbBackupArgs, DbCommand, DbListArgs, DbRestoreArgs, StackArgs};
use crate::clock;
use crate::context::Context;
use crate::plan::runner;
use crate::plan::{Action, Plan, Sink, Task};
use crate::process::sink::{self, Checksum};
use crate::stack::compose::Stack;
use crate::stack::released::Forget;
use target::{Database, Input};

/// Where backups go unless `--out` says otherwise (git-ignored).
const BACKUPS: &str = "backups";

/// Drops what the backup replaces, and rolls everything back if any statement fails.
/// `--no-owner`: objects belong to the user restoring, so a backup of another stack
/// (with another user name) restores too.
pub(crate) const RESTORE: &[&str] =
    &["pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-owner"];

pub fn db(cx: &Context, args: DbArgs) -> Result<()> {
    match args.command.unwrap_or(DbCommand::List(DbListArgs { dir: None })) {
        DbCommand::Backup(args) => backup(cx, args),
        DbCommand::Restore(args) => restore(cx, args),
        DbCommand::List(args) => list(cx, args),
        DbCommand::Psql(args) => psql(cx, args),
    }
}

fn backup(cx: &Context, args: DbBackupArgs) -> Result<()> {
    let db = Database::locate(cx, args.prod)?;
    let dir = backups_dir(cx, args.out.as_deref())?;
    let path = dir.join(format!("{}-{}.dump", file_safe(&db.name), clock::stamp(SystemTime::now())));
    if path.exists() {
        bail!("{} already exists: run the backup again in a second", path.display());
    }
    let dump = db.command(cx, &["pg_dump", "--format=custom"], Input::Nothing)?;
    let sink = Sink { path: path.clone(), checksum: true };
    let plan = Plan::default().run(dump.stdout(sink)).then(Task::act(Archived { path, database: db.name }));
    runner::execute(cx, plan)
}

/// A dump is a backup only once its file is a `pg_dump` archive (see [`require_archive`]).
#[derive(Debug)]
struct Archived {
    path: PathBuf,
    database: String,
}

impl Action for Archived {
    fn render(&self) -> String {
        format!("# then: check that {} is a pg_dump archive (PGDMP), else remove it", self.path.display())
    }

    fn run(&self, _: &Context) -> Result<()> {
        require_archive(&self.path)?;
        let size = fs::metadata(&self.path).with_context(|| format!("cannot read {}", self.path.display()))?.len();
        println!("backed up database {} to {} ({})", self.database, self.path.display(), human::size(size));
        Ok(())
    }
}

fn restore(cx: &Context, args: DbRestoreArgs) -> Result<()> {
    let file = std::path::absolute(&args.file).with_context(|| format!("cannot find {}", args.file.display()))?;
    require_intact(&file)?;
    let db = Database::locate(cx, args.prod)?;
    let prod = if args.prod { " --prod" } else { "" };
    let consent = Consent {
        yes: args.yes,
        summary: summary(cx, &db, &file)?,
        refusal: format!(
            "refusing to replace database {} without --yes: run `cargo xtask db restore {}{prod} --yes`",
            db.name,
            args.file.display()
        ),
    };
    if !args.yes {
        // Nothing past the refusal is planned: not even the engine is asked.
        return runner::execute(cx, Plan::default().then(Task::act(consent)));
    }
    let step = db.command(cx, RESTORE, Input::File(file.clone()))?;
    let into = format!("database {} on {} of the {} stack", db.name, db.host(), db.stack.suffix());
    let plan = Plan::default()
        .then(Task::Say(format!("restoring {} into {into}", file.display())))
        .run(step)
        .then(Task::Say(format!("restored {into} from {}", file.display())));
    // The migrations the restored data lacks run on the next `prod`.
    let plan = match db.stack {
        Stack::Prod { .. } => plan.then(Task::act(Forget { dir: cx.root.clone() })),
        Stack::Dev => plan,
    };
    runner::execute(cx, plan)
}

/// A restore replaces what the database holds: without `--yes` it stops before, showing
/// what would be replaced by what.
#[derive(Debug)]
struct Consent {
    yes: bool,
    summary: String,
    refusal: String,
}

impl Action for Consent {
    fn render(&self) -> String {
        match self.yes {
            true => String::new(),
            false => format!("# stop here, showing what would be replaced: {}", self.refusal),
        }
    }

    fn run(&self, _: &Context) -> Result<()> {
        if !self.yes {
            println!("{}", self.summary);
            bail!("{}", self.refusal);
        }
        Ok(())
    }
}

fn list(cx: &Context, args: DbListArgs) -> Result<()> {
    let dir = backups_dir(cx, args.dir.as_deref())?;
    let backups = backups_in(&dir)?;
    if backups.is_empty() {
        println!("no backups in {}", dir.display());
        return Ok(());
    }
    let rows = backups.iter().map(|path| row(path)).collect::<Result<Vec<_>>>()?;
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    for [name, size, time, status] in rows {
        println!("{name:<width$}  {size:>10}  {time}  {status}");
    }
    Ok(())
}

fn psql(cx: &Context, args: StackArgs) -> Result<()> {
    let db = Database::locate(cx, args.prod)?;
    runner::execute(cx, Plan::default().run(db.command(cx, &["psql"], Input::Terminal)?))
}

/// A custom-format dump starts with `PGDMP`. A file without it is no backup, whatever exit
/// code the tools reported: it is removed with its checksum, so no restore can pick it up.
fn require_archive(path: &Path) -> Result<()> {
    let mut head = [0u8; 5];
    let read = fs::File::open(path).and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head));
    if read.is_ok() && &head == b"PGDMP" {
        return Ok(());
    }
    let _ = fs::remove_file(sink::checksum_path(path));
    let _ = fs::remove_file(path);
    bail!(
        "the dump exited 0 but wrote no pg_dump archive (no PGDMP header), so {} was removed: see pg_dump's output above",
        path.display()
    )
}

/// Refuses a backup whose checksum is missing or does not match, before anything runs.
fn require_intact(file: &Path) -> Result<()> {
    if !file.is_file() {
        bail!("{} not found: give the path of a .dump file (see `cargo xtask db list`)", file.display());
    }
    let sums = sink::checksum_path(file);
    match sink::verify(file)? {
        Checksum::Ok => Ok(()),
        Checksum::Mismatch => bail!(
            "{} does not match its checksum in {}: the file is damaged or was changed; restore another backup",
            file.display(),
            sums.display()
        ),
        Checksum::Missing => bail!(
            "{} not found, so {} cannot be verified: restore a backup made by `cargo xtask db backup`",
            sums.display(),
            file.display()
        ),
    }
}

/// What a restore would replace, with what.
fn summary(cx: &Context, db: &Database, file: &Path) -> Result<String> {
    let meta = fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(format!(
        "restoring would replace the contents of:\n  stack:    {}\n  database: {}\n  host:     {}\nwith the backup:\n  file:     {}\n  taken:    {}\n  size:     {}",
        db.stack_label(cx),
        db.name,
        db.host(),
        file.display(),
        taken(file, &meta),
        human::size(meta.len())
    ))
}

/// When the backup was taken: the stamp in its name, else its modification time.
fn taken(file: &Path, meta: &fs::Metadata) -> String {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    human::time_from_name(&name).unwrap_or_else(|| meta.modified().map_or_else(|_| "unknown".into(), clock::readable))
}

/// One line of `db list`: name, size, time, checksum status.
fn row(path: &Path) -> Result<[String; 4]> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let status = match sink::verify(path)? {
        Checksum::Ok => "ok",
        Checksum::Mismatch => "MISMATCH",
        Checksum::Missing => "no checksum",
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    Ok([name, human::size(meta.len()), taken(path, &meta), status.to_owned()])
}

/// The `.dump` files of `dir`, by name (so by time for stamped names); none if `dir`
/// does not exist yet.
fn backups_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // Hidden files are unfinished backups.
        if name.ends_with(".dump") && !name.starts_with('.') && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `--out`/`--dir` as given (relative to where the user stands), else `backups/` in the project.
fn backups_dir(cx: &Context, given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(dir) => std::path::absolute(dir).with_context(|| format!("cannot find {}", dir.display())),
        None => Ok(cx.path(BACKUPS)),
    }
}

/// The database name as a file name part: anything but letters, digits, `-`, `_` and `.` becomes `_`.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn database_names_become_safe_file_names() {
        assert_eq!(file_safe("shop_db-1.x"), "shop_db-1.x");
        assert_eq!(file_safe("a/b c"), "a_b_c");
    }
}
