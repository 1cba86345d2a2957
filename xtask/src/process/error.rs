//! How a command's outcome becomes the process exit code: a failed child passes its
//! own code through, any other error is one line on stderr and exit 1.

use std::fmt;
use std::process::ExitCode;

/// A child process that did not succeed. `code` is what we exit with.
#[derive(Debug)]
pub struct ChildFailed {
    pub command: String,
    pub code: u8,
    /// What the step was for, when it says (`cannot build the web image`).
    pub what: Option<String>,
    /// Why, when the child said so in a line of its output (`error: ...`).
    pub cause: Option<String>,
}

impl fmt::Display for ChildFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(what) = &self.what {
            write!(f, "{what}: ")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, "{cause} (")?;
        }
        write!(f, "`{}` failed with exit code {}", self.command, self.code)?;
        if self.cause.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChildFailed {}

/// The user pressed Ctrl-C: the command stops, its guards clean up on the way out (a
/// scratch directory, a one-off container), and it exits with 130 as a shell reports it,
/// without an error line: what stopped then is no failure to report.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Map a process status to the code a shell would report (128 + signal when killed).
pub fn status_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else { return ExitCode::SUCCESS };
    if error.downcast_ref::<Interrupted>().is_some() {
        return ExitCode::from(130);
    }
    eprintln!("error: {error:#}");
    match error.downcast_ref::<ChildFailed>() {
        Some(failed) if failed.code != 0 => ExitCode::from(failed.code),
        _ => ExitCode::FAILURE,
    }
}
