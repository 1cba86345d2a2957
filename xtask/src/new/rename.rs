//! How the default project becomes NAME's: the `config` package of `project-template/` is
//! renamed (its directory and every import, dotted name and setting naming it), the
//! description in Cargo.toml follows, and the example env files name the database after it.

use std::path::PathBuf;

use crate::project::is_identifier;

const TEMPLATE: &str = "project-template/";
const PACKAGE: &str = "config";

/// Python's keywords, and the modules the project already uses under those names.
const TAKEN: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "core",
    "django",
    "stack_settings",
];

/// Why `name` cannot name the project, if it cannot.
pub fn unusable(name: &str) -> Option<&'static str> {
    if !is_identifier(name) {
        return Some("not a Python identifier: letters, digits and _, not starting with a digit");
    }
    if TAKEN.contains(&name) {
        return Some("a Python keyword or a module the project already uses");
    }
    None
}

/// A name close to `name` that is usable, for the error message.
pub fn suggest(name: &str) -> String {
    let mut word: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !word.starts_with(|c: char| c.is_ascii_alphabetic()) {
        word.insert_str(0, "site_");
    }
    if unusable(&word).is_some() {
        word.push_str("_site");
    }
    word
}

/// The path and content `relative` has in the new repository.
pub fn file(relative: &str, bytes: Vec<u8>, name: &str) -> (PathBuf, Vec<u8>) {
    let path = match relative.strip_prefix(TEMPLATE).and_then(|rest| rest.strip_prefix("config/")) {
        Some(inside) => format!("{TEMPLATE}{name}/{inside}"),
        None => relative.to_owned(),
    };
    let Ok(text) = String::from_utf8(bytes.clone()) else { return (path.into(), bytes) };
    let text = if relative.starts_with(TEMPLATE) && relative.ends_with(".py") {
        python(&text, name)
    } else {
        match relative {
            // Dotted names, and the Celery app the processes' commands name (`celery -A config`).
            "Cargo.toml" => text
                .replace(&format!("\"{PACKAGE}."), &format!("\"{name}."))
                .replace(&format!("-A {PACKAGE} "), &format!("-A {name} ")),
            "docker/dev.env.example" | "docker/prod.env.example" => env_example(&text, name),
            _ => text,
        }
    };
    (path.into(), text.into_bytes())
}

/// `config` as a module: `from config import`, `import config`, `config.x` (dotted names
/// in code, strings and docstrings alike), never inside a longer word.
fn python(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PACKAGE) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + PACKAGE.len()..].chars().next();
        let word_start = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let module = matches!(after, Some('.')) || rest[at + PACKAGE.len()..].starts_with(" import");
        let imported = rest[..at].ends_with("import ");
        out.push_str(&rest[..at]);
        out.push_str(if word_start && (module || imported) { name } else { PACKAGE });
        rest = &rest[at + PACKAGE.len()..];
    }
    out.push_str(rest);
    out
}

/// The database and its user are named after the project.
fn env_example(text: &str, name: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line {
            "POSTGRES_USER=django" => format!("POSTGRES_USER={name}"),
            "POSTGRES_DB=django" => format!("POSTGRES_DB={name}"),
            _ => line.to_owned(),
        })
        .collect();
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(relative: &str, text: &str) -> (String, String) {
        let (path, bytes) = file(relative, text.as_bytes().to_vec(), "shop");
        (path.display().to_string(), String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn the_package_is_renamed_in_paths_imports_and_dotted_names() {
        let code = "from config import env\nimport config\nROOT_URLCONF = \"config.urls\"\nconfigure = 1\nx.config.y\n";
        let (path, text) = renamed("project-template/config/settings/base.py", code);
        assert_eq!(path, "project-template/shop/settings/base.py");
        assert_eq!(
            text,
            "from shop import env\nimport shop\nROOT_URLCONF = \"shop.urls\"\nconfigure = 1\nx.config.y\n"
        );
    }

    #[test]
    fn the_description_and_the_example_env_files_follow() {
        let (_, toml) = renamed("Cargo.toml", "settings = \"config.settings.prod\"\nwsgi = \"config.wsgi\"\n");
        assert_eq!(toml, "settings = \"shop.settings.prod\"\nwsgi = \"shop.wsgi\"\n");
        let (_, toml) = renamed("Cargo.toml", "command = \"celery -A config worker\"\n");
        assert_eq!(toml, "command = \"celery -A shop worker\"\n");
        let (_, env) = renamed("docker/dev.env.example", "POSTGRES_USER=django\nPOSTGRES_DB=django\nDEBUG=1\n");
        assert_eq!(env, "POSTGRES_USER=shop\nPOSTGRES_DB=shop\nDEBUG=1\n");
        let (path, readme) = renamed("README.md", "config.settings.prod\n");
        assert_eq!((path.as_str(), readme.as_str()), ("README.md", "config.settings.prod\n"));
    }

    #[test]
    fn names_must_be_identifiers_that_clash_with_nothing() {
        assert_eq!(unusable("shop_2"), None);
        assert!(unusable("my-shop").is_some() && unusable("2shop").is_some() && unusable("").is_some());
        assert!(unusable("class").is_some() && unusable("django").is_some() && unusable("core").is_some());
        assert_eq!(suggest("My-Shop"), "my_shop");
        assert_eq!(suggest("2shop"), "site_2shop");
    }
}
