//! The description checked against the files on disk, so that a wrong directory, module
//! or dependency file stops the command with one line before any image is built.

use std::path::{Component, Path};

use anyhow::{bail, Result};

use super::{Description, SECTION};

pub(super) fn on_disk(d: &Description, root: &Path) -> Result<()> {
    let dir = project_dir(d, root)?;
    if !dir.join("manage.py").is_file() {
        bail!("{SECTION}: dir = {:?} has no manage.py: set dir to the directory holding manage.py", d.dir);
    }
    module(&dir, "settings", &d.settings, &d.dir)?;
    module(&dir, "dev-settings", &d.dev_settings, &d.dir)?;
    application(&dir, "wsgi", &d.wsgi, &d.dir)?;
    if let Some(asgi) = &d.asgi {
        application(&dir, "asgi", asgi, &d.dir)?;
    }
    dependencies(root, &dir, d)?;
    packages("build-packages", &d.build_packages)?;
    packages("run-packages", &d.run_packages)?;
    python(&d.python)
}

/// Debian package names (policy 5.6.1): lower-case letters, digits, `+`, `-` and `.`, at
/// least two, starting with a letter or digit. Whether the base image's suite has them, its
/// package manager says while the image builds.
fn packages(key: &str, names: &[String]) -> Result<()> {
    for name in names {
        let mut bytes = name.bytes();
        let first = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !(first && rest && name.len() >= 2) {
            bail!("{SECTION}: {key}: {name:?} is not a Debian package name: use the name `apt-get install` takes, e.g. \"libpq-dev\"");
        }
    }
    Ok(())
}

/// The project directory: relative, inside the root, and there.
fn project_dir(d: &Description, root: &Path) -> Result<std::path::PathBuf> {
    let path = Path::new(&d.dir);
    let inside = path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if d.dir.is_empty() || !inside {
        bail!(
            "{SECTION}: dir = {:?} is not a path inside the repository: give it relative to Cargo.toml, without `..`",
            d.dir
        );
    }
    let dir = root.join(path);
    if !dir.is_dir() {
        bail!(
            "{SECTION}: dir = {:?}: no such directory in {}: create it or set dir to the Django project's directory",
            d.dir,
            root.display()
        );
    }
    Ok(dir)
}

/// `key = "a.b.c"` names a.b.c, found as `a/b/c.py` or `a/b/c/__init__.py` under `dir`.
fn module(dir: &Path, key: &str, name: &str, shown_dir: &str) -> Result<()> {
    let parts: Vec<&str> = name.split('.').collect();
    if !parts.iter().all(|p| is_identifier(p)) {
        bail!("{SECTION}: {key} = {name:?} is not a Python module name: use dotted identifiers, e.g. mysite.settings");
    }
    let path = parts.join("/");
    if !dir.join(format!("{path}.py")).is_file() && !dir.join(&path).join("__init__.py").is_file() {
        bail!("{SECTION}: {key} = {name:?}: neither {path}.py nor {path}/__init__.py is in {shown_dir}: name a module of the project");
    }
    Ok(())
}

/// `module` or `module:name`, as gunicorn takes it.
fn application(dir: &Path, key: &str, value: &str, shown_dir: &str) -> Result<()> {
    let (module_name, attribute) = value.split_once(':').unwrap_or((value, "application"));
    if !is_identifier(attribute) {
        bail!("{SECTION}: {key} = {value:?}: {attribute:?} is not a Python name: write module:name, e.g. mysite.wsgi:application");
    }
    module(dir, key, module_name, shown_dir)
}

fn dependencies(root: &Path, dir: &Path, d: &Description) -> Result<()> {
    let file = dir.join(&d.dependencies);
    let name = Path::new(&d.dependencies).file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let escapes = Path::new(&d.dependencies).components().any(|c| !matches!(c, Component::Normal(_)));
    if escapes || !(name == "pyproject.toml" || name.ends_with(".txt")) {
        bail!(
            "{SECTION}: dependencies = {:?}: name a requirements file (*.txt) or pyproject.toml inside {}",
            d.dependencies,
            d.dir
        );
    }
    if !file.is_file() {
        bail!("{SECTION}: dependencies = {:?}: no such file in {}: create it or name the project's requirements file or pyproject.toml", d.dependencies, d.dir);
    }
    if name == "pyproject.toml" && d.dependencies != "pyproject.toml" {
        bail!("{SECTION}: dependencies = {:?}: pyproject.toml must be at the top of {}, beside uv.lock: move it there, or name a requirements file", d.dependencies, d.dir);
    }
    if name == "pyproject.toml" && !file.with_file_name("uv.lock").is_file() {
        bail!(
            "{SECTION}: dependencies = {:?} has no uv.lock beside it: run `uv lock` in {} and commit uv.lock",
            d.dependencies,
            d.dir
        );
    }
    // Every file a requirements file includes must be there too: the image installs them all.
    super::build_context::dependency_files(root, d)
        .map_err(|e| anyhow::anyhow!("{SECTION}: dependencies = {:?}: {e:#}", d.dependencies))?;
    Ok(())
}

/// The Python versions with a `python:<version>-slim` image, the default base image.
pub const PYTHONS: &[&str] = &["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"];

fn python(version: &str) -> Result<()> {
    let valid = version
        .split_once('.')
        .is_some_and(|(major, minor)| major == "3" && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        bail!("{SECTION}: python = {version:?} is not a Python version: write 3.N, e.g. \"3.12\"");
    }
    Ok(())
}

/// Without PYTHON_IMAGE, the base image is python:<python>-slim, which must exist; with it,
/// the image build checks that its Python is the description's.
pub fn base_image(d: &Description, python_image: Option<&str>) -> Result<()> {
    let version = d.python.as_str();
    if python_image.is_none_or(str::is_empty) && !PYTHONS.contains(&version) {
        bail!(
            "{SECTION}: python = {version:?} has no base image python:{version}-slim: use one of {}, or set PYTHON_IMAGE in the env file to an image with Python {version}",
            PYTHONS.join(", ")
        );
    }
    Ok(())
}

/// A Python identifier: ASCII letters, digits and `_`, not starting with a digit.
pub fn is_identifier(word: &str) -> bool {
    let mut bytes = word.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn project() -> (tempfile::TempDir, Description) {
        let root = tempfile::tempdir().unwrap();
        for file in [
            "site/manage.py",
            "site/mysite/__init__.py",
            "site/mysite/settings.py",
            "site/mysite/wsgi.py",
            "site/requirements.txt",
        ] {
            let path = root.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        let d = Description {
            dir: "site".into(),
            settings: "mysite.settings".into(),
            dev_settings: "mysite.settings".into(),
            wsgi: "mysite.wsgi:application".into(),
            ..Description::default()
        };
        (root, d)
    }

    fn error(d: &Description, root: &Path) -> String {
        format!("{:#}", on_disk(d, root).unwrap_err())
    }

    #[test]
    fn a_startproject_layout_passes() {
        let (root, d) = project();
        on_disk(&d, root.path()).unwrap();
    }

    #[test]
    fn a_project_at_the_root_passes() {
        let (root, d) = project();
        let d = Description { dir: ".".into(), ..d };
        fs::rename(root.path().join("site/manage.py"), root.path().join("manage.py")).unwrap();
        fs::rename(root.path().join("site/mysite"), root.path().join("mysite")).unwrap();
        fs::write(root.path().join("requirements.txt"), "-r requirements/base.txt\n").unwrap();
        fs::create_dir(root.path().join("requirements")).unwrap();
        fs::write(root.path().join("requirements/base.txt"), "Django\n").unwrap();
        on_disk(&d, root.path()).unwrap();
    }

    #[test]
    fn each_wrong_value_is_named_with_its_fix() {
        let (root, d) = project();
        let cases = [
            (Description { dir: "nowhere".into(), ..d.clone() }, "dir = \"nowhere\": no such directory"),
            (Description { dir: "../site".into(), ..d.clone() }, "not a path inside the repository"),
            (
                Description { settings: "mysite.prod".into(), ..d.clone() },
                "settings = \"mysite.prod\": neither mysite/prod.py",
            ),
            (Description { dev_settings: "my-site.settings".into(), ..d.clone() }, "is not a Python module name"),
            (Description { wsgi: "mysite.wsgi:app-1".into(), ..d.clone() }, "is not a Python name"),
            (
                Description { dependencies: "pyproject.toml".into(), ..d.clone() },
                "dependencies = \"pyproject.toml\": no such file",
            ),
            (Description { dependencies: "setup.py".into(), ..d.clone() }, "name a requirements file"),
            (Description { python: "3".into(), ..d.clone() }, "python = \"3\" is not a Python version"),
            (
                Description { run_packages: vec!["libpq5".into(), "Libjpeg".into()], ..d.clone() },
                "run-packages: \"Libjpeg\" is not a Debian package name",
            ),
        ];
        for (wrong, expected) in cases {
            let message = error(&wrong, root.path());
            assert!(message.contains(expected), "{message}");
            assert!(message.starts_with(SECTION) && !message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn a_python_without_an_official_image_needs_an_image_of_its_own() {
        let (_, d) = project();
        let d = Description { python: "3.99".into(), ..d };
        let error = format!("{:#}", base_image(&d, None).unwrap_err());
        assert!(error.contains("python = \"3.99\" has no base image python:3.99-slim"), "{error}");
        assert!(base_image(&d, Some("")).is_err());
        base_image(&d, Some("registry.example.com/python:3.99")).unwrap();
        base_image(&Description { python: "3.13".into(), ..d }, None).unwrap();
    }

    #[test]
    fn a_pyproject_needs_its_lock_file() {
        let (root, d) = project();
        fs::write(root.path().join("site/pyproject.toml"), "").unwrap();
        let d = Description { dependencies: "pyproject.toml".into(), ..d };
        assert!(error(&d, root.path()).contains("run `uv lock` in site"));
        fs::write(root.path().join("site/uv.lock"), "").unwrap();
        on_disk(&d, root.path()).unwrap();
    }

    #[test]
    fn identifiers_are_python_names() {
        assert!(is_identifier("my_site2") && is_identifier("_x"));
        assert!(!is_identifier("2site") && !is_identifier("my-site") && !is_identifier(""));
    }
}
