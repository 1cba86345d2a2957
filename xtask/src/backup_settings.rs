//! What `.env.prod` says of the site's backups (`BACKUP_*`): the restic repository off this
//! host and its password, the retention policy, the SSH key of an SFTP repository, and the
//! schedule of the production stack's backup service. Read by `backup` (snapshots now) and by
//! the production stack (the scheduled service); every bad value is one line naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

/// restic's own repository schemes; a bare path would be a directory on this host.
const SCHEMES: &[&str] = &["sftp:", "rest:", "s3:", "azure:", "gs:", "b2:", "swift:", "rclone:", "local:"];
/// Retention when BACKUP_KEEP is not set.
const DEFAULT_KEEP: &str = "daily=7,weekly=4,monthly=6";
/// `restic forget --keep-<unit>` as BACKUP_KEEP names them.
const UNITS: &[&str] = &["last", "hourly", "daily", "weekly", "monthly", "yearly"];
/// Shorter passwords are refused: the repository is off the host, in someone else's hands.
const MIN_PASSWORD: usize = 16;
/// A schedule tighter than this would snapshot faster than a snapshot can finish.
const MIN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub password: String,
    /// `(unit, count)` pairs of the retention policy.
    pub keep: Vec<(String, u32)>,
    /// For an SFTP repository: `user@host`, the key to log in with and the host keys to expect.
    pub sftp: Option<Sftp>,
    /// BACKUP_SCHEDULE: when the production stack's backup service takes snapshots.
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sftp {
    pub destination: String,
    pub key: PathBuf,
    pub known_hosts: Option<PathBuf>,
}

/// What the backup service (docker/backup/agent.py, in the production stack or on Swarm) is
/// handed: the schedule and retention already parsed, so that the agent reads numbers only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// BACKUP_EVERY: the interval, in seconds.
    pub every: String,
    /// BACKUP_AT: seconds past midnight UTC, or empty.
    pub at: String,
    /// BACKUP_FORGET: `restic forget`'s retention options.
    pub forget: String,
    /// How often Docker runs the stale-backup check (`60s`).
    pub health_interval: String,
}

/// Every `every`, at the times whose offset from midnight UTC is `at` plus a whole number of
/// `every` (`daily@03:30`), or counted from the last snapshot when `at` is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub every: Duration,
    pub at: Option<Duration>,
}

impl Settings {
    /// The settings `vars` (of the env file at `file`) give; one line naming the variable and
    /// the fix when they do not hold.
    pub fn from_vars(vars: &BTreeMap<String, String>, file: &Path, root: &Path) -> Result<Settings> {
        let shown = file.display().to_string();
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
        let keep = parse_keep(get("BACKUP_KEEP").as_deref().unwrap_or(DEFAULT_KEEP), &shown)?;
        let sftp = sftp(&url, get("BACKUP_SSH_KEY"), get("BACKUP_KNOWN_HOSTS"), root, &shown)?;
        let schedule = get("BACKUP_SCHEDULE").map(|text| Schedule::parse(&text, &shown)).transpose()?;
        Ok(Settings { url, password, keep, sftp, schedule })
    }

    /// Whether `vars` ask for the scheduled backup service.
    pub fn scheduled(vars: &BTreeMap<String, String>) -> bool {
        vars.get("BACKUP_SCHEDULE").is_some_and(|v| !v.trim().is_empty())
    }

    /// The backup service's settings, when `vars` schedule it: refused when the repository
    /// is one a container cannot reach (a directory of this host, an SFTP host without its
    /// known keys).
    pub fn service(&self, file: &Path) -> Result<Option<Service>> {
        let Some(schedule) = self.schedule else { return Ok(None) };
        let shown = file.display();
        if self.url.starts_with("local:") {
            bail!("BACKUP_SCHEDULE in {shown} needs a repository off this host, not {}: the backup service runs in a container without this host's disk (or leave BACKUP_SCHEDULE unset and run `cargo xtask backup` from cron)", self.url);
        }
        if self.url.starts_with("sftp:") && self.sftp.as_ref().is_none_or(|s| s.known_hosts.is_none()) {
            bail!("BACKUP_SCHEDULE in {shown} with an SFTP repository needs BACKUP_SSH_KEY and BACKUP_KNOWN_HOSTS: the backup service has no ~/.ssh of its own (e.g. `ssh-keyscan HOST > certs/backup_known_hosts`)");
        }
        Ok(Some(Service {
            every: schedule.every.as_secs().to_string(),
            at: schedule.at.map(|at| at.as_secs().to_string()).unwrap_or_default(),
            forget: self.keep_options().join(" "),
            health_interval: format!("{}s", health_interval(schedule.every).as_secs()),
        }))
    }

    /// `--group-by host --keep-daily 7 --keep-weekly 4 ...`: `restic forget`'s options for the
    /// retention policy, over all the site's snapshots together (restic would count those of
    /// `cargo xtask backup` and of the backup service apart, their paths being others).
    pub fn keep_options(&self) -> Vec<String> {
        let keep = self.keep.iter().flat_map(|(unit, count)| [format!("--keep-{unit}"), count.to_string()]);
        ["--group-by".to_owned(), "host".to_owned()].into_iter().chain(keep).collect()
    }
}

impl Schedule {
    /// `6h`, `30min`, `1day` (any duration `humantime` reads), `hourly`, `daily`, `weekly`,
    /// each optionally followed by `@HH:MM` (UTC).
    pub fn parse(text: &str, file: &str) -> Result<Schedule> {
        let fail = |why: &str| {
            anyhow::anyhow!("BACKUP_SCHEDULE={text} in {file} {why}: write an interval such as daily, hourly, 6h or 30min, optionally at a UTC time, e.g. daily@03:30")
        };
        let (every, at) = match text.split_once('@') {
            Some((every, at)) => (every.trim(), Some(at.trim())),
            None => (text.trim(), None),
        };
        let every = match every {
            "hourly" => Duration::from_secs(3600),
            "daily" => Duration::from_secs(86_400),
            "weekly" => Duration::from_secs(7 * 86_400),
            other => humantime::parse_duration(other).map_err(|_| fail("is not an interval"))?,
        };
        if every < MIN_EVERY {
            return Err(fail(&format!("is shorter than {}s", MIN_EVERY.as_secs())));
        }
        let at = at.map(|at| time_of_day(at).ok_or_else(|| fail("has no HH:MM time after @"))).transpose()?;
        Ok(Schedule { every, at })
    }
}

/// How often Docker runs the stale-backup check: a few times an interval, at most a minute.
fn health_interval(every: Duration) -> Duration {
    (every / 4).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

/// `url` with the password of a `scheme://user:password@host` part as `***`.
pub fn redacted(url: &str) -> String {
    let Some((before, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once('@').and_then(|(credentials, _)| credentials.split_once(':')) {
        Some((user, password)) if !password.is_empty() => {
            url.replacen(&format!("{before}://{user}:{password}@"), &format!("{before}://{user}:***@"), 1)
        }
        _ => url.to_owned(),
    }
}

/// `HH:MM` as the time since midnight.
fn time_of_day(text: &str) -> Option<Duration> {
    let (hours, minutes) = text.split_once(':')?;
    let (hours, minutes): (u64, u64) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60 && text.len() == 5).then(|| Duration::from_secs(hours * 3600 + minutes * 60))
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

/// BACKUP_SSH_KEY and BACKUP_KNOWN_HOSTS of an `sftp:USER@HOST:/PATH` repository.
fn sftp(url: &str, key: Option<String>, known_hosts: Option<String>, root: &Path, file: &str) -> Result<Option<Sftp>> {
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
    let known_hosts = known_hosts.map(|known| existing(root, &known, "BACKUP_KNOWN_HOSTS", file)).transpose()?;
    Ok(Some(Sftp { destination: destination.to_owned(), key, known_hosts }))
}

/// `path` (relative to the project root) as an absolute path, refused when there is no such
/// file or it cannot be read.
fn existing(root: &Path, path: &str, key: &str, file: &str) -> Result<PathBuf> {
    let full = root.join(path);
    if !full.is_file() {
        bail!("{key}={path} in {file}: no such file: give the path of an existing file (relative to the project root)");
    }
    std::fs::File::open(&full).with_context(|| format!("{key}={path} in {file} cannot be read"))?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const PASSWORD: (&str, &str) = ("BACKUP_PASSWORD", "0123456789abcdef0123");

    fn error(pairs: &[(&str, &str)]) -> String {
        Settings::from_vars(&vars(pairs), Path::new(".env.prod"), Path::new("/nonexistent")).unwrap_err().to_string()
    }

    #[test]
    fn a_repository_on_this_host_must_be_asked_for() {
        let message = error(&[("BACKUP_REPOSITORY", "/srv/backups"), PASSWORD]);
        assert!(message.starts_with("BACKUP_REPOSITORY=/srv/backups in .env.prod is not off this host"), "{message}");
        assert!(message.contains("local:/srv/backups"), "{message}");
        let local = vars(&[("BACKUP_REPOSITORY", "local:/srv/backups"), PASSWORD]);
        let settings = Settings::from_vars(&local, Path::new(".env.prod"), Path::new("/")).unwrap();
        assert_eq!(settings.url, "local:/srv/backups");
        assert_eq!(settings.schedule, None);
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
        assert!(parse_keep(" , ", "f").unwrap_err().to_string().contains("keeps nothing"));
    }

    #[test]
    fn schedules_read_intervals_with_an_optional_utc_time() {
        let parse = |text| Schedule::parse(text, ".env.prod");
        assert_eq!(parse("6h").unwrap(), Schedule { every: Duration::from_secs(21_600), at: None });
        assert_eq!(parse("30min").unwrap().every, Duration::from_secs(1800));
        assert_eq!(
            parse("daily@03:30").unwrap(),
            Schedule { every: Duration::from_secs(86_400), at: Some(Duration::from_secs(12_600)) }
        );
        assert_eq!(parse("hourly").unwrap().every, Duration::from_secs(3600));
        for bad in ["sometimes", "daily@3am", "daily@25:00", "5s", "0 3 * * *"] {
            let message = parse(bad).unwrap_err().to_string();
            assert!(message.starts_with(&format!("BACKUP_SCHEDULE={bad} in .env.prod")), "{message}");
            assert!(message.contains("e.g. daily@03:30"), "{message}");
        }
    }

    #[test]
    fn the_check_runs_a_few_times_an_interval() {
        assert_eq!(health_interval(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(health_interval(Duration::from_secs(86_400)), Duration::from_secs(60));
        assert_eq!(health_interval(Duration::from_secs(4)), Duration::from_secs(2));
    }

    #[test]
    fn a_password_in_the_url_is_not_shown() {
        assert_eq!(
            redacted("rest:https://site:s3cret@backup.example.net/site"),
            "rest:https://site:***@backup.example.net/site"
        );
        assert_eq!(redacted("sftp:backup@host:/srv/site"), "sftp:backup@host:/srv/site");
        assert_eq!(redacted("s3:https://s3.example.net/bucket"), "s3:https://s3.example.net/bucket");
    }

    #[test]
    fn an_ssh_key_is_for_an_sftp_repository() {
        let dir = std::env::temp_dir().join(format!("backup-settings-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), "key").unwrap();
        let settings =
            vars(&[("BACKUP_REPOSITORY", "sftp:backup@10.0.0.2:/srv/site"), PASSWORD, ("BACKUP_SSH_KEY", "id")]);
        let sftp = Settings::from_vars(&settings, Path::new(".env.prod"), &dir).unwrap().sftp.unwrap();
        assert_eq!((sftp.destination.as_str(), sftp.key), ("backup@10.0.0.2", dir.join("id")));
        let s3 = vars(&[("BACKUP_REPOSITORY", "s3:host/bucket"), PASSWORD, ("BACKUP_SSH_KEY", "id")]);
        let message = Settings::from_vars(&s3, Path::new(".env.prod"), &dir).unwrap_err().to_string();
        assert!(message.contains("must read sftp:user@host:/path"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
