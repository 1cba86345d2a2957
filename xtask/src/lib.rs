//! The xtask library. A command is parsed ([`cli`]), turned into a [`plan::Plan`] by its
//! module, and the plan is printed (`--dry-run`) or run by [`plan::runner`].
//!
//! The modules follow the pipeline: [`project`] describes the Django project, [`config`]
//! writes and checks the env files, [`tls`] provides the certificates nginx serves,
//! [`stack`] runs the dev and prod stacks, [`release`] builds and verifies the artifacts
//! (and pushes the images to the registry of [`deploy`]),
//! [`db`] backs up and restores the database, [`backup`] snapshots the site's data off the host, and [`ci`] runs every check with the
//! [`tools`] it installs; [`new`] starts a repository of its own from this one.

pub mod backup;
pub mod backup_settings;
pub mod certs;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod deploy;
pub mod env_template;
pub mod envfile;
pub mod files;
pub mod manifest;
pub mod new;
pub mod plan;
pub mod preflight;
pub mod process;
pub mod project;
pub mod redis;
pub mod registry;
pub mod release;
pub mod sha256;
pub mod stack;
pub mod tls;
pub mod tools;

pub use context::Context;
