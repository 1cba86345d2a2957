//! The restic repository the site's snapshots go to, as `.env.prod` configures it, and the
//! restic command lines that reach it. restic is the host's own program (Debian's `restic`):
//! it encrypts, deduplicates and checks the repository; nothing here re-does any of that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::backup_settings::{Settings, Sftp};
use crate::plan::Step;
use crate::process;
use crate::tools::system::{self, RESTIC};

/// The tag of every snapshot this command family takes (a repository may hold others).
pub const TAG: &str = "site";
/// How long a restic command waits for another one's lock on the repository (the backup
/// service's snapshot or pruning).
const LOCK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub url: String,
    password: String,
    /// `restic forget`'s options for the retention policy.
    keep: Vec<String>,
    /// The `ssh` command restic runs for an SFTP repository, when a key is configured.
    sftp_command: Option<String>,
    /// Where restic runs (the project root).
    dir: PathBuf,
}

impl Repository {
    /// The repository `vars` (of the env file at `file`) configure; one line naming the
    /// variable and the fix when they do not.
    pub fn from_vars(vars: &BTreeMap<String, String>, file: &Path, root: &Path) -> Result<Repository> {
        let settings = Settings::from_vars(vars, file, root)?;
        let keep = settings.keep_options();
        let sftp_command = settings.sftp.as_ref().map(sftp_command);
        Ok(Repository { url: settings.url, password: settings.password, keep, sftp_command, dir: root.to_path_buf() })
    }

    /// Fails with the line that installs restic unless it is installed: every action that
    /// reaches the repository checks first, so that a dry run needs none.
    pub fn require_restic() -> Result<()> {
        system::require(&[&RESTIC])
    }

    /// Opens the repository, creating it when there is none yet; an unreachable host or a
    /// wrong password is one line naming it, and nothing is created then.
    pub fn open_or_create(&self) -> Result<()> {
        let opened = self.output(&self.restic(&["cat", "config"]))?;
        if opened.ok {
            return Ok(());
        }
        if opened.stderr.contains("wrong password") {
            bail!(
                "BACKUP_PASSWORD does not open the repository {}: set the password it was created with",
                self.shown()
            );
        }
        // restic's own hint when the place answers but holds no repository.
        if !opened.stderr.contains("Is there a repository at the following location?") {
            bail!(
                "cannot open the backup repository {}: {}: check that BACKUP_REPOSITORY is right and its host answers",
                self.shown(),
                opened.why()
            );
        }
        process::run(&self.restic(&["init"]))
    }

    /// The URL as messages show it: a password in it (`user:password@`) as `***`.
    pub fn shown(&self) -> String {
        crate::backup_settings::redacted(&self.url)
    }

    /// Runs `step`, restic on this repository, captured. While another restic holds the
    /// repository's lock (the backup service's snapshot or pruning) it waits and tries again,
    /// up to [`LOCK_WAIT`]: restic itself gives up at once.
    pub fn output(&self, step: &Step) -> Result<process::Output> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut said = false;
        loop {
            let out = process::output(step)?;
            if out.ok || !out.stderr.contains("repository is already locked") || Instant::now() >= deadline {
                return Ok(out);
            }
            if !said {
                eprintln!(
                    "waiting for another restic (a scheduled snapshot?) to release the repository {}",
                    self.shown()
                );
                said = true;
            }
            process::stop_if_interrupted()?;
            sleep(Duration::from_secs(2));
        }
    }

    /// Like [`Repository::output`], which must succeed: restic's standard output, or an error
    /// that says `what` it was for, after restic's own lines.
    pub fn captured(&self, step: &Step, what: &str) -> Result<String> {
        let out = self.output(step)?;
        if !out.ok {
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
            bail!("cannot {what}: `{step}` failed: {}", out.why());
        }
        Ok(out.stdout)
    }

    /// `restic -r URL ARGS`, the password in restic's environment only, as is a URL that
    /// holds a password of its own (`rest:https://user:password@host/`), which `ps` would show.
    pub fn restic(&self, args: &[&str]) -> Step {
        let step = Step::new("restic", &self.dir).secret_env("RESTIC_PASSWORD", &self.password);
        let mut step = match self.shown() == self.url {
            true => step.args(["-r", &self.url]),
            false => step.secret_env("RESTIC_REPOSITORY", &self.url),
        };
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
        let args = ["forget", "--prune", "--host", host, "--tag", TAG].into_iter();
        let args: Vec<&str> = args.chain(self.keep.iter().map(String::as_str)).collect();
        self.restic(&args)
    }
}

/// The `ssh` command restic runs for an SFTP repository with a key: that key only, no
/// prompt, and the host's key checked against BACKUP_KNOWN_HOSTS when given.
fn sftp_command(sftp: &Sftp) -> String {
    let mut command =
        format!("ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20", quoted(&sftp.key));
    if let Some(known) = &sftp.known_hosts {
        command += &format!(" -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}", quoted(known));
    }
    format!("{command} {} -s sftp", sftp.destination)
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
