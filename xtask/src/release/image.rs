//! The image artifact: `docker save` of the production web image, streamed into the
//! compressor without touching the disk uncompressed.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::thread;

use anyhow::{bail, Context as _, Result};
use indicatif::ProgressBar;

/// Streams `docker save image` into `out`.
pub fn save(image: &str, out: &mut dyn Write, progress: &ProgressBar) -> Result<()> {
    let mut child = Command::new("docker")
        .args(["save", image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `docker`: install Docker Engine (https://docs.docker.com/engine/install/)")?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Read stderr alongside stdout so a chatty docker cannot block on a full pipe.
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let copied = io::copy(&mut progress.wrap_read(stdout), out);
    let status = child.wait().context("cannot wait for `docker save`")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let why = errors.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message");
        bail!("`docker save {image}` failed ({why}): build the image first with `cargo xtask prod` or `cargo xtask release` without --static-dir");
    }
    copied.with_context(|| format!("cannot read the output of `docker save {image}`"))?;
    Ok(())
}
