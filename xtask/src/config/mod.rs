//! The stacks' settings: the env files, how they are read (`envfile`), written with fresh
//! secrets (`init`), and refused when unsafe for production (`preflight`, `check`).

pub mod check;
pub mod envfile;
pub mod init;
pub mod preflight;
