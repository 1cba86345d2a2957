//! The book under `docs/`: mdBook builds it into `target/book` without a warning, and every
//! relative link of the rendered pages (to a page or a file, and to a `#fragment` of the same
//! or another page) leads to a file and an `id` that exist; so do the README's links into the
//! book. `cargo xtask ci` runs this as its `book` step (the `book_check::` names); the link
//! check's own tests below run with the other tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// What the link check needs of one rendered page.
struct Page {
    ids: BTreeSet<String>,
    hrefs: Vec<String>,
}

/// Every value of `name="..."` in `html`, where `name` starts an attribute (so `id` does
/// not match `data-id`). Scanning for the attribute is enough for HTML mdBook writes.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!("{name}=\"");
    html.match_indices(&key)
        .filter(|(at, _)| html[..*at].ends_with(|c: char| c.is_ascii_whitespace()))
        .filter_map(|(at, _)| {
            let value = &html[at + key.len()..];
            value.find('"').map(|end| &value[..end])
        })
        .collect()
}

/// A link into the book itself: not `https:`, `mailto:` or another scheme, and not rooted.
fn is_relative(href: &str) -> bool {
    let scheme = href.find(':').is_some_and(|colon| !href[..colon].contains(['/', '?', '#']));
    !scheme && !href.starts_with('/')
}

/// Every `.html` file under `root`, by its path relative to `root`.
fn pages(root: &Path) -> BTreeMap<PathBuf, Page> {
    let mut pages = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()));
        if entry.path().extension().is_none_or(|ext| ext != "html") {
            continue;
        }
        let html = fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        let ids = attribute_values(&html, "id").into_iter().map(str::to_owned).collect();
        let hrefs = attribute_values(&html, "href").into_iter().filter(|h| is_relative(h)).map(str::to_owned).collect();
        let path = entry.path().strip_prefix(root).expect("walkdir stays under its root").to_path_buf();
        pages.insert(path, Page { ids, hrefs });
    }
    pages
}

/// `relative` taken from the directory of `page`, without `.` and `..`; `None` when it
/// climbs out of the book.
fn joined(page: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in page.parent().unwrap_or(Path::new("")).join(relative).components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::ParentDir if path.pop() => {}
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

/// Why `href` on `page` leads nowhere, if it does.
fn dead_end(root: &Path, pages: &BTreeMap<PathBuf, Page>, page: &Path, href: &str) -> Option<String> {
    let (file, fragment) = href.split_once('#').unwrap_or((href, ""));
    let file = file.split('?').next().unwrap_or_default();
    let target = match file {
        "" => page.to_path_buf(),
        _ => match joined(page, file) {
            Some(target) => target,
            None => return Some("leaves the book".to_owned()),
        },
    };
    if !root.join(&target).is_file() {
        return Some(format!("no file {}", target.display()));
    }
    // A fragment of a file that is no page (a stylesheet) names nothing to look for.
    let ids = &pages.get(&target)?.ids;
    (!fragment.is_empty() && !ids.contains(fragment)).then(|| format!("no id \"{fragment}\" in {}", target.display()))
}

/// Every broken relative link of the rendered book under `root`, as `page: href: why`.
fn broken_links(root: &Path) -> Vec<String> {
    let pages = pages(root);
    let mut broken = Vec::new();
    for (page, found) in &pages {
        for href in &found.hrefs {
            if let Some(why) = dead_end(root, &pages, page, href) {
                broken.push(format!("{}: {href}: {why}", page.display()));
            }
        }
    }
    broken
}

mod link_check {
    use super::*;

    fn book(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().expect("a file has a directory")).expect("the page's directory");
            fs::write(&path, text).expect("the page");
        }
        dir
    }

    #[test]
    fn a_broken_page_link_and_a_broken_fragment_are_caught() {
        let dir = book(&[
            (
                "index.html",
                r##"<h1 id="top">Top</h1> <a href="guide/setup.html#install">ok</a> <a href="gone.html">page</a>
                <a href="#top">ok</a> <a href="#nowhere">fragment</a> <a href="https://example.com/x.html">external</a>"##,
            ),
            (
                "guide/setup.html",
                r#"<link href="../css/site.css"> <h2 id="install">Install</h2> <a href="../index.html#top">ok</a>
                <a href="../index.html#gone">fragment</a> <a href="../../outside.html">out</a>"#,
            ),
            ("css/site.css", "h1 {}"),
        ]);
        assert_eq!(
            broken_links(dir.path()),
            [
                "guide/setup.html: ../index.html#gone: no id \"gone\" in index.html",
                "guide/setup.html: ../../outside.html: leaves the book",
                "index.html: gone.html: no file gone.html",
                "index.html: #nowhere: no id \"nowhere\" in index.html",
            ]
        );
    }

    #[test]
    fn only_whole_attributes_and_relative_links_are_read() {
        let html = r#"<div data-id="no" id="yes"><a href="mailto:a@example.com"></a><a href="a.html?x=1#y">"#;
        assert_eq!(attribute_values(html, "id"), ["yes"]);
        let relative: Vec<&str> = attribute_values(html, "href").into_iter().filter(|h| is_relative(h)).collect();
        assert_eq!(relative, ["a.html?x=1#y"]);
        let dir = book(&[("index.html", html), ("a.html", r#"<p id="y">"#)]);
        assert!(broken_links(dir.path()).is_empty(), "{:?}", broken_links(dir.path()));
    }
}

mod book_check {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace holds the xtask crate")
    }

    /// `mdbook build docs` into `target/book`; fails on any warning (a page SUMMARY.md names
    /// that is missing, a broken include), not only on an error.
    fn build() -> PathBuf {
        let mdbook = xtask::tools::mdbook().unwrap_or_else(|e| panic!("{e:#}"));
        let out = root().join("target/book");
        let mut command = Command::new(&mdbook);
        command.arg("build").arg(root().join("docs")).arg("--dest-dir").arg(&out).stdin(Stdio::null());
        eprintln!("book: {command:?}");
        let output = command.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", mdbook.display()));
        let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "mdbook build failed ({}):\n{said}", output.status);
        let warnings: Vec<&str> = said.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        assert!(warnings.is_empty(), "mdbook build warned:\n{}", warnings.join("\n"));
        out
    }

    #[test]
    fn the_book_builds_without_a_warning_and_every_link_resolves() {
        let out = build();
        let broken = super::broken_links(&out);
        assert!(broken.is_empty(), "broken links in {}:\n{}", out.display(), broken.join("\n"));
        let pages = super::pages(&out);
        assert!(pages.len() > 10, "only {} pages in {}", pages.len(), out.display());
        let readme = std::fs::read_to_string(root().join("README.md")).expect("the README");
        for link in readme.split("](docs/src/").skip(1).map(|rest| rest.split(')').next().unwrap_or_default()) {
            let href = link.replacen(".md", ".html", 1);
            let why = super::dead_end(&out, &pages, Path::new("index.html"), &href);
            assert!(why.is_none(), "README.md: docs/src/{link}: {}", why.unwrap_or_default());
        }
        eprintln!("book: {} pages, every link resolves", pages.len());
    }
}
