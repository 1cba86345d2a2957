//! The restic repository the site's snapshots go to, as `.env.prod` configures it, and the
//! restic command lines that reach it. restic is the host's own program (Debian's `restic`):
//! it encrypts, deduplicates and checks the repository; nothing here re-does any of that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::plan::Step;
use crate::process;
use crate::tools::system::{self, RESTIC};

/// restic's own repository schemes; a bare path would be a directory on this host.
const SCHEMES: &[&str] = &["sftp:", "rest:", "s3:", "azure:", "gs:", "b2:", "swift:", "rclone:", "local:"];
/// The tag of every snapshot this command family takes (a repository may hold others).
pub const TAG: &str = "site";
/// Retention when BACKUP_KEEP is not set.
const DEFAULT_KEEP: &str = "daily=7,weekly=4,monthly=6";
/// `restic forget --keep-<unit>` as BACKUP_KEEP names them.
const UNITS: &[&str] = &["last", "hourly", "daily", "weekly", "monthly", "yearly"];
/// Shorter passwords are refused: the repository is off the host, in someone else's hands.
const MIN_PASSWORD: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub url: String,
    password: String,
    /// `(unit, count)` pairs of the retention policy.
    pub keep: Vec<(String, u32)>,
    /// The `ssh` command restic runs for an SFTP repository, when a key is configured.
    sftp_command: Option<String>,
    /// Where restic runs (the project root).
    dir: PathBuf,
}

impl Repository {
    /// The repository `vars` (of the env file at `file`) configure; one line naming the
    /// variable and the fix when they do not.
    pub fn from_vars(vars: &BTreeMap<String, String>, file: &Path, root: &Path) -> Result<Repository> {
        let shown = file.display();
        let get = |key: &str| vars.get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let Some(url) = get("BACKUP_REPOSITORY") else {
            bail!("BACKUP_REPOSITORY is not set in {shown}: name a restic repository off this host, e.g. sftp:backup@backup.example.net:/srv/site")
        };
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            bail!("BACKUP_REPOSITORY={url} in {shown} is not off this host: name one as restic does (sftp:user@host:/path, s3:..., rest:...), or write local:{url} to keep the backups on this host's disk anyway");
        }
        let Some(password) = get("BACKUP_PASSWORD") else {
            bail!("BACKUP_PASSWORD is not set in {shown}: set a long random one (e.g. `openssl rand -base64 32`) and keep a copy off this host: without it no snapshot can be read")
        };
        if password.chars().count() < MIN_PASSWORD {
            bail!("BACKUP_PASSWORD in {shown} is shorter than {MIN_PASSWORD} characters: set a long random one (e.g. `openssl rand -base64 32`)");
        }
        let keep = parse_keep(get("BACKUP_KEEP").as_deref().unwrap_or(DEFAULT_KEEP), &shown.to_string())?;
        let sftp_command =
            sftp_command(&url, get("BACKUP_SSH_KEY"), get("BACKUP_KNOWN_HOSTS"), root, &shown.to_string())?;
        Ok(Repository { url, password, keep, sftp_command, dir: root.to_path_buf() })
    }

    /// Fails with the line that installs restic unless it is installed: every action that
    /// reaches the repository checks first, so that a dry run needs none.
    pub fn require_restic() -> Result<()> {
        system::require(&[&RESTIC])
    }

    /// Opens the repository, creating it when there is none yet; an unreachable host or a
    /// wrong password is one line naming it, and nothing is created then.
    pub fn open_or_create(&self) -> Result<()> {
        let opened = process::output(&self.restic(&["cat", "config"]))?;
        if opened.ok {
            return Ok(());
        }
        if opened.stderr.contains("wrong password") {
            bail!("BACKUP_PASSWORD does not open the repository {}: set the password it was created with", self.url);
        }
        // restic's own hint when the place answers but holds no repository.
        if !opened.stderr.contains("Is there a repository at the following location?") {
            bail!(
                "cannot open the backup repository {}: {}: check that BACKUP_REPOSITORY is right and its host answers",
                self.url,
                opened.why()
            );
        }
        process::run(&self.restic(&["init"]))
    }

    /// `restic -r URL ARGS`, the password in restic's environment only.
    pub fn restic(&self, args: &[&str]) -> Step {
        let mut step =
            Step::new("restic", &self.dir).secret_env("RESTIC_PASSWORD", &self.password).args(["-r", &self.url]);
        if let Some(command) = &self.sftp_command {
            step = step.arg("-o").arg(format!("sftp.command={command}"));
        }
        step.args(args.iter().copied())
    }

    /// Like [`Repository::restic`], run in `dir` (what `backup .` takes).
    pub fn restic_in(&self, dir: &Path, args: &[&str]) -> Step {
        let mut step = self.restic(args);
        step.dir = dir.to_path_buf();
        step
    }

    /// `restic forget --prune` with the retention policy, over the site's snapshots of `host`.
    pub fn forget(&self, host: &str) -> Step {
        let mut args =
            vec!["forget".to_owned(), "--prune".into(), "--host".into(), host.into(), "--tag".into(), TAG.into()];
        for (unit, count) in &self.keep {
            args.push(format!("--keep-{unit}"));
            args.push(count.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.restic(&args)
    }
}

/// `daily=7,weekly=4` as `(unit, count)` pairs.
fn parse_keep(text: &str, file: &str) -> Result<Vec<(String, u32)>> {
    let mut keep = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once('=').and_then(|(unit, n)| {
            let n = n.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
            UNITS.contains(&unit.trim()).then(|| (unit.trim().to_owned(), n))
        });
        match parsed {
            Some(pair) => keep.push(pair),
            None => bail!(
                "BACKUP_KEEP={text} in {file}: {part:?} is not UNIT=N with UNIT one of {} and N a count: e.g. BACKUP_KEEP={DEFAULT_KEEP}",
                UNITS.join(", ")
            ),
        }
    }
    if keep.is_empty() {
        bail!("BACKUP_KEEP in {file} keeps nothing: e.g. BACKUP_KEEP={DEFAULT_KEEP}");
    }
    Ok(keep)
}

/// With BACKUP_SSH_KEY, the `ssh` command restic runs for `sftp:USER@HOST:/PATH`: that key
/// only, no prompt, and the host's key checked against BACKUP_KNOWN_HOSTS when given.
fn sftp_command(
    url: &str,
    key: Option<String>,
    known_hosts: Option<String>,
    root: &Path,
    file: &str,
) -> Result<Option<String>> {
    let Some(key) = key else {
        if known_hosts.is_some() {
            bail!("BACKUP_KNOWN_HOSTS in {file} needs BACKUP_SSH_KEY, the key to log in with: set it too");
        }
        return Ok(None);
    };
    let Some(destination) = url.strip_prefix("sftp:").and_then(|rest| rest.split_once(':')).map(|(d, _)| d) else {
        bail!("BACKUP_SSH_KEY in {file} is for an SFTP repository: BACKUP_REPOSITORY must read sftp:user@host:/path");
    };
    let key = existing(root, &key, "BACKUP_SSH_KEY", file)?;
    let mut command = format!("ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20", quoted(&key));
    if let Some(known) = known_hosts {
        let known = existing(root, &known, "BACKUP_KNOWN_HOSTS", file)?;
        command += &format!(" -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}", quoted(&known));
    }
    Ok(Some(format!("{command} {destination} -s sftp")))
}

/// `path` (relative to the project root) as an absolute path, refused when there is no such file.
fn existing(root: &Path, path: &str, key: &str, file: &str) -> Result<PathBuf> {
    let full = root.join(path);
    if !full.is_file() {
        bail!("{key}={path} in {file}: no such file: give the path of an existing file (relative to the project root)");
    }
    Ok(full)
}

/// restic splits `sftp.command` on blanks, honouring quotes.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    match text.contains([' ', '\t', '"', '\'']) {
        true => format!("\"{}\"", text.replace('"', "\\\"")),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const PASSWORD: (&str, &str) = ("BACKUP_PASSWORD", "0123456789abcdef0123");

    fn error(pairs: &[(&str, &str)]) -> String {
        Repository::from_vars(&vars(pairs), Path::new(".env.prod"), Path::new("/nonexistent")).unwrap_err().to_string()
    }

    #[test]
    fn a_repository_on_this_host_must_be_asked_for() {
        let message = error(&[("BACKUP_REPOSITORY", "/srv/backups"), PASSWORD]);
        assert!(message.starts_with("BACKUP_REPOSITORY=/srv/backups in .env.prod is not off this host"), "{message}");
        assert!(message.contains("local:/srv/backups"), "{message}");
        let local = vars(&[("BACKUP_REPOSITORY", "local:/srv/backups"), PASSWORD]);
        let repository = Repository::from_vars(&local, Path::new(".env.prod"), Path::new("/")).unwrap();
        assert_eq!(repository.url, "local:/srv/backups");
    }

    #[test]
    fn missing_and_weak_settings_are_named() {
        assert!(error(&[PASSWORD]).starts_with("BACKUP_REPOSITORY is not set in .env.prod"));
        assert!(error(&[("BACKUP_REPOSITORY", "s3:s3.amazonaws.com/b")]).starts_with("BACKUP_PASSWORD is not set"));
        let weak = error(&[("BACKUP_REPOSITORY", "s3:s3.amazonaws.com/b"), ("BACKUP_PASSWORD", "short")]);
        assert!(weak.contains("shorter than 16 characters"), "{weak}");
    }

    #[test]
    fn retention_reads_units_and_counts() {
        assert_eq!(parse_keep("daily=7, weekly=4", "f").unwrap(), [("daily".into(), 7), ("weekly".into(), 4)]);
        let message = parse_keep("daily=7,yearly=x", "f").unwrap_err().to_string();
        assert!(message.contains("\"yearly=x\" is not UNIT=N"), "{message}");
        assert!(parse_keep("fortnightly=2", "f").is_err());
        assert!(parse_keep("daily=0", "f").is_err());
    }

    #[test]
    fn an_ssh_key_makes_the_sftp_command() {
        let dir = std::env::temp_dir().join(format!("repository-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), "key").unwrap();
        std::fs::write(dir.join("known hosts"), "host").unwrap();
        let settings = vars(&[
            ("BACKUP_REPOSITORY", "sftp:backup@10.0.0.2:/srv/site"),
            PASSWORD,
            ("BACKUP_SSH_KEY", "id"),
            ("BACKUP_KNOWN_HOSTS", "known hosts"),
        ]);
        let repository = Repository::from_vars(&settings, Path::new(".env.prod"), &dir).unwrap();
        let step = repository.restic(&["snapshots"]).to_string();
        let expected = format!(
            "sftp.command=ssh -i {0}/id -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\"{0}/known hosts\" backup@10.0.0.2 -s sftp",
            dir.display()
        );
        assert!(step.contains(&shlex::try_quote(&expected).unwrap().into_owned()), "{step}");
        assert!(!step.contains(PASSWORD.1), "the password is shown: {step}");
        let s3 = vars(&[("BACKUP_REPOSITORY", "s3:host/bucket"), PASSWORD, ("BACKUP_SSH_KEY", "id")]);
        let message = Repository::from_vars(&s3, Path::new(".env.prod"), &dir).unwrap_err().to_string();
        assert!(message.contains("must read sftp:user@host:/path"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
