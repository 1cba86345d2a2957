//! Production preflight: refuse an unsafe `.env.prod` before anything starts.

use anyhow::{bail, Result};

use crate::compose::Stack;
use crate::context::Context;
use crate::envfile;

pub fn refuse_unsafe_prod(cx: &Context, stack: Stack) -> Result<()> {
    let path = cx.path(stack.env_file());
    let vars = envfile::read(&path)?;
    if matches!(vars.get("DEBUG").map(|v| v.to_ascii_lowercase()).as_deref(), Some("1" | "true" | "yes")) {
        bail!("{}: DEBUG is on: set DEBUG=0 for production", path.display());
    }
    Ok(())
}
