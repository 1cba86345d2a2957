//! The one way the xtask starts a program. A [`Step`] says what to run; this module runs it
//! with the terminal passed through ([`status`]), with its output captured ([`output`]), or
//! with its output passed on and watched for its own `error: ...` line ([`watched`]). It also
//! notes Ctrl-C, echoes commands under `--verbose`, and reads the line of a failed child's
//! stderr that says why ([`error_line`]).

pub mod error;
pub mod sink;
mod step;

pub use step::{Input, Sink, Step};

use std::fs::File;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{bail, Context as _, Result};

use self::error::{status_code, ChildFailed, Interrupted};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// `--verbose`: every program is echoed to stderr before it starts.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::SeqCst);
}

/// True once the user pressed Ctrl-C while a child was running.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with [`Interrupted`] once the user has pressed Ctrl-C, so the command unwinds
/// (its guards clean up) and exits with 130.
pub fn stop_if_interrupted() -> Result<()> {
    if interrupted() {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// What a captured child did.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Its stdout when it succeeded.
    pub fn stdout_if_ok(self) -> Option<String> {
        self.ok.then_some(self.stdout)
    }

    /// The line of its stderr that says why it failed.
    pub fn why(&self) -> &str {
        error_line(&self.stderr)
    }
}

/// Runs the child to completion, which must succeed: a failure is a [`ChildFailed`] whose
/// exit code becomes the command's (with the cause the child printed, for a step that
/// [`Step::explains`] itself); Ctrl-C meanwhile is an [`Interrupted`].
pub fn run(step: &Step) -> Result<()> {
    let (status, cause) = if step.explains { watched(step)? } else { (status(step)?, None) };
    succeeded(step, status, cause)
}

/// Like [`run`], for a child that runs beside others: its standard output and error go to
/// `log` (created anew), never to the terminal, and it never reads the terminal.
pub fn run_logged(step: &Step, log: &Path) -> Result<()> {
    echo(step);
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let child = with_stdin(expression(step).unchecked(), step, true).stderr_to_stdout().stdout_file(file);
    let status = child.run().with_context(|| not_found(step))?.status;
    succeeded(step, status, None)
}

/// Ok for a child that succeeded, else the [`ChildFailed`] (or [`Interrupted`]) it is.
fn succeeded(step: &Step, status: ExitStatus, cause: Option<String>) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    stop_if_interrupted()?;
    let command = step.to_string();
    Err(ChildFailed { command, code: status_code(status), what: step.failure.clone(), cause }.into())
}

/// Runs the child with the terminal passed through (its standard output into `step.stdout`
/// when set) and returns its status, whatever it is. Ctrl-C reaches the child through the
/// terminal's process group; we only note it, so the child can stop cleanly and we return
/// when it has.
pub fn status(step: &Step) -> Result<ExitStatus> {
    catch_ctrl_c();
    echo(step);
    let child = with_stdin(expression(step).unchecked(), step, false);
    Ok(match &step.stdout {
        Some(sink) => sink::run(sink, || child.reader().with_context(|| not_found(step)))?,
        None => child.run().with_context(|| not_found(step))?.status,
    })
}

/// `child` reading the step's stdin; without one, the terminal's, or nothing when `probe`
/// (a probe never reads the terminal). Set once: duct lets the first redirection applied
/// win, so a later one would be ignored.
fn with_stdin(child: duct::Expression, step: &Step, probe: bool) -> duct::Expression {
    match &step.stdin {
        Some(Input::Value { value, .. }) => child.stdin_bytes(value.as_bytes()),
        Some(Input::File(path)) => child.stdin_path(path),
        None if probe => child.stdin_null(),
        None => child,
    }
}

/// Runs a short child with its output captured; only a program that cannot start is an error.
pub fn output(step: &Step) -> Result<Output> {
    echo(step);
    let child = with_stdin(expression(step).stdout_capture().stderr_capture().unchecked(), step, true);
    let out = child.run().with_context(|| not_found(step))?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs the child with its standard output handed to `read` as it comes (streamed into an
/// archive, say) and its stderr captured; what `read` returned comes back with the outcome.
pub fn read_stdout<T>(step: &Step, read: impl FnOnce(&mut dyn std::io::Read) -> T) -> Result<(Output, T)> {
    echo(step);
    let child = with_stdin(expression(step).stderr_capture().unchecked(), step, true);
    let reader = child.reader().with_context(|| not_found(step))?;
    let value = read(&mut &reader);
    // What `read` left unread (a tar archive's end padding, or all of it after an error):
    // read to the end, where the reader waits for the child to exit.
    std::io::copy(&mut &reader, &mut std::io::sink()).context("cannot read the child's output")?;
    let done = reader.try_wait()?.context("the child did not finish")?;
    let out = Output {
        ok: done.status.success(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    };
    Ok((out, value))
}

/// A child's standard output, which must succeed: else an error naming `what` it was for,
/// the command and the line of its stderr that says why.
pub fn captured(step: &Step, what: &str) -> Result<String> {
    let out = output(step)?;
    if !out.ok {
        bail!("cannot {what}: `{step}` failed: {}", out.why());
    }
    Ok(out.stdout)
}

/// A short probe's standard output, or None when it cannot run or fails.
pub fn stdout_of(step: &Step) -> Option<String> {
    output(step).ok()?.stdout_if_ok()
}

/// Runs the child with its output (both streams) passed on to our stderr line by line, and
/// returns its status with the last line it printed as `error: ...`, after the prefix
/// BuildKit puts before a build step's output (`#12 0.345 `).
pub fn watched(step: &Step) -> Result<(ExitStatus, Option<String>)> {
    catch_ctrl_c();
    echo(step);
    let reader = expression(step).stderr_to_stdout().unchecked().reader().with_context(|| not_found(step))?;
    let mut cause = None;
    let mut lines = std::io::BufReader::new(&reader);
    let mut line = Vec::new();
    while lines.read_until(b'\n', &mut line).context("cannot read the child's output")? > 0 {
        let _ = std::io::stderr().write_all(&line);
        let text = String::from_utf8_lossy(&line);
        if let Some(error) = own_error(text.trim_end()) {
            cause = Some(error.to_owned());
        }
        line.clear();
    }
    let status = reader.try_wait()?.map(|output| output.status).context("the child did not finish")?;
    Ok((status, cause))
}

/// The line of a child's stderr that says what it failed on: the last that starts with
/// `error` (pip's `ERROR: ...` comes after its warnings), else the first that says something
/// (docker's `Error response from daemon: ...`, git's `fatal: ...`).
pub fn error_line(stderr: &str) -> &str {
    let said = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let error = said().rev().find(|l| l.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("error")));
    error.or_else(|| said().next()).unwrap_or("no message")
}

/// `error: ...` of a line, without BuildKit's `#<step> <seconds> ` before it.
fn own_error(line: &str) -> Option<&str> {
    let rest = match line.strip_prefix('#') {
        Some(rest) => {
            let mut words = rest.splitn(3, ' ');
            let (step, time) = (words.next()?, words.next()?);
            let numeric = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if !(numeric(step) && numeric(time)) {
                return None;
            }
            words.next()?
        }
        None => line,
    };
    rest.strip_prefix("error: ").filter(|e| !e.trim().is_empty())
}

fn echo(step: &Step) {
    if VERBOSE.load(Ordering::SeqCst) {
        eprintln!("+ {step}");
    }
}

fn not_found(step: &Step) -> String {
    format!("cannot run `{}`: is it installed and on PATH?", step.program)
}

/// The child as duct runs it: program, arguments, directory and variables.
fn expression(step: &Step) -> duct::Expression {
    let mut expression = duct::cmd(&step.program, &step.args).dir(&step.dir);
    for (key, value) in &step.env {
        expression = expression.env(key, value);
    }
    expression
}

fn catch_ctrl_c() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Failing to install the handler only means Ctrl-C kills us along with the child.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builds_error_line_is_found_behind_buildkits_prefix() {
        assert_eq!(
            own_error("#21 0.912 error: run-packages: x: no such package"),
            Some("run-packages: x: no such package")
        );
        assert_eq!(own_error("error: the base image runs Python 3.11"), Some("the base image runs Python 3.11"));
        assert_eq!(own_error("#21 ERROR: process did not complete"), None);
        assert_eq!(own_error("#5 [web 2/6] RUN echo error: not ours"), None);
        assert_eq!(own_error("error: "), None);
    }

    #[test]
    fn a_captured_child_says_why_it_failed() {
        let step = Step::new("sh", "/").args(["-c", "echo out; printf '\\n  no such thing\\nmore\\n' >&2; exit 3"]);
        let out = output(&step).unwrap();
        assert!(!out.ok && out.stdout == "out\n");
        assert_eq!(out.why(), "no such thing");
        assert_eq!(
            error_line("WARNING: old pip\nERROR: No matching distribution\n"),
            "ERROR: No matching distribution"
        );
        assert_eq!(error_line("\n"), "no message");
        assert!(output(&Step::new("no-such-program-anywhere", "/")).is_err());
    }

    #[test]
    fn a_captured_child_reads_the_steps_stdin_and_nothing_else() {
        let cat = Step::new("cat", "/");
        let fed = output(&cat.clone().stdin_value("s3cret", "SECRET_KEY of .env.prod")).unwrap();
        assert_eq!(fed.stdout, "s3cret");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from a file").unwrap();
        assert_eq!(output(&cat.clone().stdin(file.path())).unwrap().stdout, "from a file");
        assert_eq!(output(&cat).unwrap().stdout, "", "a probe read the terminal");
    }

    #[test]
    fn a_logged_child_writes_both_streams_to_its_log_and_fails_as_a_run_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let step = Step::new("sh", "/").args(["-c", "echo out; echo err >&2; exit 4"]);
        let error = run_logged(&step, &log).unwrap_err();
        assert_eq!(error.downcast_ref::<ChildFailed>().map(|f| f.code), Some(4));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
        run_logged(&Step::new("true", "/"), &log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "", "the log was not started anew");
    }
}
