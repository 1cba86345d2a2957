//! The integration tests, one module per file of this directory, linked into one test binary
//! (`cargo test -p xtask --test integration`): the xtask and its dependencies are linked once,
//! not once per file. Test names are module paths: `cli::prod_prints_the_url_once_healthy`.
//!
//! The end-to-end scenarios (`e2e::`) and the engine database tests (`db_engine::`) are
//! `#[ignore]`d: `cargo test -p xtask --test integration -- --ignored --nocapture
//! --test-threads=1 e2e:: db_engine::` runs them on a Docker engine.

mod support;

mod backup;
mod bad_input;
mod book;
mod cli;
mod db;
mod db_engine;
mod deploy;
mod e2e;
mod envfile_fuzz;
mod init;
mod new;
mod preflight;
mod project;
mod push;
mod release;
mod stack;
mod workflows;
