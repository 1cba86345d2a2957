//! The stacks' settings as commands: `init` writes an env file with fresh secrets, `check`
//! refuses a bad one (with `--prod`, an unsafe production setup) and runs Django's checks.

pub mod check;
pub mod init;
