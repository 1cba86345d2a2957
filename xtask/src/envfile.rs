//! Reading the stacks' env files (`.env`, `.env.prod`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};

/// The variables an env file defines, in the file's order of first appearance.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for item in dotenvy::from_path_iter(path).with_context(|| format!("cannot read {}", path.display()))? {
        let (key, value) = item.with_context(|| format!("{}: malformed line", path.display()))?;
        vars.insert(key, value);
    }
    Ok(vars)
}
