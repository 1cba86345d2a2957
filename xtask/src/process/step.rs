//! What a child process is: program, arguments, the variables it adds, the directory it
//! runs in, and where its input comes from and its output goes. Printed as the shell line
//! that would run it, secrets masked.

use std::fmt;
use std::path::PathBuf;

/// One child process: program, arguments, the variables it adds to the environment
/// and the directory it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
    /// Names of the `env` variables whose values are secrets: passed to the child, masked when printed.
    pub secrets: Vec<String>,
    /// What the child reads as its standard input, instead of the terminal.
    pub stdin: Option<Input>,
    /// Where the child's standard output goes, instead of the terminal.
    pub stdout: Option<Sink>,
    /// What failed, said before the command line when the child fails
    /// (`cannot build the web image`), so the error names the step, not only its argv.
    pub failure: Option<String>,
    /// The child's output goes through us line by line, and the last line it prints as
    /// `error: ...` (an image build's own scripts do) becomes the cause in our error.
    pub explains: bool,
}

/// Where a child's standard input comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    /// A value written to it, which `shown` names wherever the step is printed.
    Value {
        value: String,
        shown: String,
    },
}

/// Never prints a value.
impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::File(path) => write!(f, "File({path:?})"),
            Input::Value { shown, .. } => write!(f, "Value({shown})"),
        }
    }
}

/// A file that receives a child's standard output. It appears only once the child has
/// succeeded (written under a temporary name, then renamed); with `checksum`, its SHA-256
/// is written beside it as `<file>.sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    pub path: PathBuf,
    pub checksum: bool,
}

impl Step {
    pub fn new(program: impl Into<String>, dir: impl Into<PathBuf>) -> Step {
        Step {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.into(),
            secrets: Vec::new(),
            stdin: None,
            stdout: None,
            failure: None,
            explains: false,
        }
    }

    /// Says why it failed in its own output: see [`Step::explains`].
    pub fn explained_by_output(mut self) -> Step {
        self.explains = true;
        self
    }

    /// Names what failed when this child fails.
    pub fn fails_as(mut self, what: impl Into<String>) -> Step {
        self.failure = Some(what.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Step {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Step
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Step {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Like [`Step::env`], for a value that must never be printed (a password).
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Step {
        let key = key.into();
        self.secrets.push(key.clone());
        self.env(key, value)
    }

    pub fn stdin(mut self, path: impl Into<PathBuf>) -> Step {
        self.stdin = Some(Input::File(path.into()));
        self
    }

    /// A value the child reads on its standard input, never printed: `shown` stands for it
    /// (`SECRET_KEY of .env.prod`). A secret goes to a child this way, not on its command line.
    pub fn stdin_value(mut self, value: impl Into<String>, shown: impl Into<String>) -> Step {
        self.stdin = Some(Input::Value { value: value.into(), shown: shown.into() });
        self
    }

    pub fn stdout(mut self, sink: Sink) -> Step {
        self.stdout = Some(sink);
        self
    }
}

/// The command line as a shell would take it: `cd DIR && KEY=value program args < in > out`,
/// with secret values shown as `***`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cd {} &&", quote(&self.dir.to_string_lossy()))?;
        for (key, value) in &self.env {
            if self.secrets.contains(key) {
                write!(f, " {key}=***")?;
            } else {
                write!(f, " {key}={}", quote(value))?;
            }
        }
        write!(f, " {}", quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        match &self.stdin {
            Some(Input::File(path)) => write!(f, " < {}", quote(&path.to_string_lossy()))?,
            Some(Input::Value { shown, .. }) => write!(f, " < ({shown})")?,
            None => {}
        }
        if let Some(sink) = &self.stdout {
            write!(f, " > {}", quote(&sink.path.to_string_lossy()))?;
        }
        Ok(())
    }
}

fn quote(word: &str) -> String {
    shlex::try_quote(word).map(|q| q.into_owned()).unwrap_or_else(|_| format!("{word:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_prints_as_a_shell_line_with_quoting() {
        let step = Step::new("docker", "/srv/my app").env("WEB_IMAGE", "a b").args(["compose", "it's"]);
        assert_eq!(step.to_string(), r#"cd '/srv/my app' && WEB_IMAGE='a b' docker compose "it's""#);
    }

    #[test]
    fn a_value_on_stdin_is_named_never_shown() {
        let step = Step::new("docker", "/")
            .args(["secret", "create", "x", "-"])
            .stdin_value("s3cret", "SECRET_KEY of .env.prod");
        assert_eq!(step.to_string(), "cd / && docker secret create x - < (SECRET_KEY of .env.prod)");
        assert!(!format!("{step:?}").contains("s3cret"));
    }
}
