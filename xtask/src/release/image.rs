//! The image artifact: `docker save` of the production web image, streamed into the
//! compressor without touching the disk uncompressed.

use std::io::{self, Write};

use anyhow::{bail, Context as _, Result};
use indicatif::ProgressBar;

use crate::process::{self, Step};

/// Streams `docker save image` into `out`.
pub fn save(image: &str, out: &mut dyn Write, progress: &ProgressBar) -> Result<()> {
    let save = Step::new("docker", ".").args(["save", image]);
    let (done, copied) = process::read_stdout(&save, |stdout| io::copy(&mut progress.wrap_read(stdout), out))
        .context("cannot run `docker`: install Docker Engine (https://docs.docker.com/engine/install/)")?;
    if !done.ok {
        bail!("`docker save {image}` failed ({}): build the image first with `cargo xtask prod` or `cargo xtask release` without --static-dir", done.why());
    }
    copied.with_context(|| format!("cannot read the output of `docker save {image}`"))?;
    Ok(())
}
