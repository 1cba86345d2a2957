//! What the integration tests share: a throwaway project root that the real xtask binary
//! runs against (`sandbox`), the recording fake `docker` in it (`fake_docker`), what Compose
//! makes of an env file (`compose`), and the one way a test skips (`skip`).

pub mod compose;
pub mod fake_docker;
pub mod sandbox;
pub mod skip;

use std::path::{Path, PathBuf};

/// A file of the repository, by its path from the repository root.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Output bytes as text, invalid UTF-8 shown as U+FFFD.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
