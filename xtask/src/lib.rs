//! The xtask library: each command builds a [`plan::Plan`] that is printed or run.

pub mod check;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod context;
pub mod db;
pub mod envfile;
pub mod health;
pub mod init;
pub mod plan;
pub mod preflight;
pub mod release;
pub mod run_error;
pub mod runner;
pub mod sha256;
pub mod sink;
pub mod stack;
pub mod tools;
pub mod verify;

pub use context::Context;
