//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run and release the Dockerized Django stacks",
    version
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print the exact commands, one per line, and run nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Echo each command before running it
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the development stack (runserver + Postgres), in the foreground by default
    Dev(DevArgs),
    /// Build and start the production stack (gunicorn behind nginx) and wait until it is healthy
    Prod(ProdArgs),
    /// Apply database migrations in a one-off web container
    Migrate(StackArgs),
    /// Collect static files into the volume nginx serves
    Collectstatic(StackArgs),
    /// Run any manage.py command (createsuperuser, shell, ...) with the terminal passed through
    Manage(ManageArgs),
    /// Stop and remove the stack's containers (and its volumes with --volumes)
    Down(DownArgs),
    /// Show the stack's logs
    Logs(LogsArgs),
    /// List the stack's containers
    Ps(StackArgs),
    /// Write .env (or .env.prod) with fresh secrets from the committed example
    Init(InitArgs),
    /// Check the configuration (with --prod: refuse an unsafe production setup)
    Check(StackArgs),
    /// Run the project's test suite in the production image, against a throwaway Postgres
    Test(TestArgs),
    /// Build the release artifacts: static tarball, image tarball, SHA256SUMS, manifest
    Release(ReleaseArgs),
    /// Check release artifacts against SHA256SUMS and manifest.json
    Verify(VerifyArgs),
    /// Back up, restore and inspect the stack's database
    Db(DbArgs),
    /// Snapshots of the production site's data (database and media) in BACKUP_REPOSITORY, off this host
    Backup(BackupArgs),
    /// The production stack's certificates (`tls ca`: the local CA's path; `tls renew`: certbot)
    Tls(TlsArgs),
    /// Run every check and test in order, then print a summary table
    Ci(CiArgs),
    /// Start a new repository with this pipeline and a fresh Django project named NAME
    New(NewArgs),
    /// Deploy a pushed release to the Docker Swarm the Docker CLI points at (`deploy status`: what runs)
    Deploy(DeployArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Use the production stack instead of the development one
    #[arg(long)]
    pub prod: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Rebuild the images before starting
    #[arg(long)]
    pub build: bool,
    /// Run in the background, once web answers its healthcheck
    #[arg(short, long)]
    pub detach: bool,
    /// With --detach: seconds to wait for every healthcheck to pass
    #[arg(long, value_name = "SECONDS", default_value_t = 180, requires = "detach")]
    pub wait_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ProdArgs {
    /// Start from the images already built
    #[arg(long)]
    pub no_build: bool,
    /// Add the bundled Postgres, for hosts without a managed database
    #[arg(long)]
    pub with_db: bool,
    /// Seconds to wait for every healthcheck to pass
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait_timeout: u64,
    /// Switch back to the web image that served before the last redeploy (no build, no migration)
    #[arg(long, conflicts_with = "no_build")]
    pub rollback: bool,
    /// Deploy even when the stack already runs this image with this configuration
    #[arg(long, conflicts_with = "rollback")]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ManageArgs {
    /// Use the production stack instead of the development one
    #[arg(long)]
    pub prod: bool,
    /// The manage.py command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Arguments of `manage.py test` (labels, --parallel, ...), after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Use the production stack instead of the development one
    #[arg(long)]
    pub prod: bool,
    /// Also remove the named volumes (database, static and media files)
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Use the production stack instead of the development one
    #[arg(long)]
    pub prod: bool,
    /// Keep following new output
    #[arg(short, long)]
    pub follow: bool,
    /// Only this service's logs
    pub service: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Write .env.prod for the production stack instead of .env
    #[arg(long)]
    pub prod: bool,
    /// The public host name of the production site (required with --prod)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// A managed database's host name, written as POSTGRES_HOST [default: db, the bundled one]
    #[arg(long, value_name = "HOST")]
    pub db_host: Option<String>,
    /// Where the HTTPS certificate comes from, written as TLS_MODE: local (the project's
    /// own CA), files (TLS_CERT_FILE/TLS_KEY_FILE) or acme (certbot, ACME_EMAIL) [default: local]
    #[arg(long, value_name = "MODE")]
    pub tls: Option<String>,
    /// Replace an existing file, keeping a backup of it
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// Release version (default: the exact vX.Y.Z tag on HEAD, else `git describe`)
    #[arg(long)]
    pub version: Option<String>,
    /// Archive this directory as it is instead of running collectstatic
    #[arg(long, value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Where to write the artifacts [default: dist/ in the project root]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also save the production web image
    #[arg(long)]
    pub image: bool,
    /// Gzip compression level (1-9)
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub level: u32,
    /// Compression threads (default: all cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Release from a work tree with uncommitted changes
    #[arg(long)]
    pub allow_dirty: bool,
    /// Fail at once when another release is writing into the same --out, instead of waiting for it
    #[arg(long)]
    pub no_wait: bool,
    /// Also push the web image and a static nginx image, tagged with the version, and record
    /// their digests in manifest.json
    #[arg(long)]
    pub push: bool,
    /// Where --push pushes: a repository prefix such as 127.0.0.1:5000/shop [default: $REGISTRY]
    #[arg(long, value_name = "REPOSITORY")]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Directory holding SHA256SUMS and manifest.json [default: dist/ in the project root]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: Option<DbCommand>,
}

// Without a subcommand, `db` lists the backups.
#[derive(Debug, Clone, Subcommand)]
pub enum DbCommand {
    /// Dump the database to DIR/DB-UTCTIME.dump (DIR: backups/ or --out), with a .sha256 beside it
    Backup(DbBackupArgs),
    /// Replace the database's contents with a backup, once its checksum matches
    Restore(DbRestoreArgs),
    /// List the backups with their size, time and checksum status
    List(DbListArgs),
    /// Open psql on the stack's database
    Psql(StackArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbBackupArgs {
    /// Back up the production stack's database instead of the development one
    #[arg(long)]
    pub prod: bool,
    /// Directory for the backup [default: backups/ in the project root]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DbRestoreArgs {
    /// The backup to restore (a .dump written by `db backup`)
    pub file: PathBuf,
    /// Restore into the production stack's database instead of the development one
    #[arg(long)]
    pub prod: bool,
    /// Replace the database without asking; without it, restore only says what it would replace
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DbListArgs {
    /// Directory holding the backups [default: backups/ in the project root]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
}

// Without a subcommand, `backup` takes a snapshot.
#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Take a snapshot of the database and the media now (the default), then apply BACKUP_KEEP
    Now,
    /// List the snapshots with their time, size and release
    List,
    /// Restore a snapshot into a scratch database and directory, compare it with its manifest, then `restic check`
    Verify(BackupVerifyArgs),
    /// Replace the site's database and media with a snapshot, after a safety snapshot of them
    Restore(BackupRestoreArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BackupVerifyArgs {
    /// The snapshot's id [default: latest]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BackupRestoreArgs {
    /// The snapshot's id (see `backup list`), or `latest`
    pub id: String,
    /// Replace the data without asking; without it, restore only says what it would replace
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    #[command(subcommand)]
    pub command: TlsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TlsCommand {
    /// Print the path of the local CA's certificate, to trust it (curl --cacert, browser import)
    Ca,
    /// TLS_MODE=acme: have the running certbot service renew now if due (--force: in any case)
    Renew(RenewArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RenewArgs {
    /// Replace the certificate even when it is far from its end
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CiArgs {
    /// Run every step even after a failure, and report all failures together
    #[arg(long)]
    pub keep_going: bool,
    /// Leave out the step named NAME (as the summary table names it); repeat for more
    #[arg(long, value_name = "NAME")]
    pub skip: Vec<String>,
    /// Let a test that cannot run on this machine pass as skipped, named with its reason in the
    /// summary, instead of failing its step
    #[arg(long)]
    pub allow_skips: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    /// Where to create the repository: a new or empty directory
    pub path: PathBuf,
    /// The Django project's package name, a Python identifier [default: PATH's directory name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub command: Option<DeployCommand>,
    /// The release to deploy, pushed with `release --push` [default: the newest in dist/]
    pub version: Option<String>,
    /// Deploy again the version that served before the last deploy (no migration)
    #[arg(long, conflicts_with = "version")]
    pub rollback: bool,
    /// Seconds to wait for each step (database, migrations, every service) to converge
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait_timeout: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeployCommand {
    /// The stack's services: version, tasks running/desired and image digests
    Status,
}
