//! What the real Compose v2 makes of an env file, to hold the xtask's reader against it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// What Compose v2 passes to a container whose `env_file` is `path`, or its error.
pub fn compose_env(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let compose_file = dir.path().join("compose.yml");
    let yaml = format!("services:\n  probe:\n    image: busybox\n    env_file: {:?}\n", path.display().to_string());
    fs::write(&compose_file, yaml).unwrap();
    // A clean environment: interpolation must draw on the file alone, as in the parser call below.
    let output = Command::new("docker")
        .args(["compose", "--project-directory"])
        .arg(dir.path())
        .arg("-f")
        .arg(&compose_file)
        .args(["config", "--format", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("DOCKER_CONFIG", xtask::tools::compose_v2().unwrap())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let environment = config["services"]["probe"]["environment"].as_object().cloned().unwrap_or_default();
    // `config` prints a literal `$` as `$$`, ready for interpolation.
    Ok(environment.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().replace("$$", "$"))).collect())
}
