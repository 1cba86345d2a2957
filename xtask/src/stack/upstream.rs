//! The nginx upstream of the web service: the one file naming the servers nginx sends the
//! site's requests to. It is rendered here only, written into the directory that
//! docker/compose.prod.yml mounts into nginx, and included by docker/nginx/default.conf as
//! the `upstream django_web` block; a redeploy rewrites it, then reloads nginx.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// The directory under the project root that compose.prod.yml mounts at /etc/nginx/upstream.
pub const DIR: &str = ".stack/nginx";
/// The file default.conf includes from that directory.
pub const FILE: &str = "django_web.conf";
/// The port gunicorn listens on in every web container.
const PORT: u16 = 8000;

/// The upstream file of the project at `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join(DIR).join(FILE)
}

/// One `server` line per host: a container name, or the service name `web`, which Docker's
/// DNS answers with every container of the service (a first start, where nginx starts after
/// web is healthy).
pub fn render(hosts: &[String]) -> String {
    let mut text = String::from("# Written by `cargo xtask prod`: the web containers nginx sends requests to.\n");
    text.push_str("upstream django_web {\n");
    for host in hosts {
        text.push_str(&format!("    server {host}:{PORT};\n"));
    }
    text + "}\n"
}

/// Writes the file whole or not at all: a temporary file renamed over it, in the mounted
/// directory itself (a bind-mounted single file would keep showing the old inode).
pub fn write(root: &Path, hosts: &[String]) -> Result<()> {
    write_text(root, &render(hosts))
}

/// The file as it is now, to put back when a switch fails; None when there is none.
pub fn read(root: &Path) -> Option<String> {
    fs::read_to_string(path(root)).ok()
}

pub fn write_text(root: &Path, text: &str) -> Result<()> {
    let target = path(root);
    let dir = root.join(DIR);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let temporary = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
    fs::write(&temporary, text).with_context(|| format!("cannot write {}", temporary.display()))?;
    fs::rename(&temporary, &target).with_context(|| format!("cannot replace {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_line_per_host_on_gunicorns_port() {
        let text = render(&["shop-prod-web-2".into(), "shop-prod-web-3".into()]);
        assert_eq!(
            text,
            "# Written by `cargo xtask prod`: the web containers nginx sends requests to.\n\
             upstream django_web {\n    server shop-prod-web-2:8000;\n    server shop-prod-web-3:8000;\n}\n"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let root = std::env::temp_dir().join(format!("upstream-test-{}", std::process::id()));
        write(&root, &["web".into()]).unwrap();
        write(&root, &["shop-prod-web-2".into()]).unwrap();
        assert!(read(&root).unwrap().ends_with("    server shop-prod-web-2:8000;\n}\n"));
        let names: Vec<_> = fs::read_dir(root.join(DIR)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FILE]);
        fs::remove_dir_all(&root).unwrap();
    }
}
