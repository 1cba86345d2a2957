//! The book's table of refused inputs (docs/src/bad-input.md) is backed by tests: every row
//! names a test that exists (a `#[test]` function in the named file) and whose file asserts
//! the row's message, and the page says how many rows it has.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One row: what is refused, the message (the text of its code span) and `file::test`.
struct Row {
    input: String,
    message: String,
    test: String,
}

/// The page that holds the tables.
const PAGE: &str = "docs/src/bad-input.md";

/// The rows of every table under `# Bad input`, up to the next `# ` heading.
fn rows(page: &str) -> Vec<Row> {
    let start = match page.strip_prefix("# Bad input\n") {
        Some(_) => Some(0),
        None => page.find("\n# Bad input\n").map(|at| at + 1),
    };
    let section = &page[start.expect("the page has a `# Bad input` heading")..];
    let end = section[2..].find("\n# ").map_or(section.len(), |i| i + 2);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| input ") && !l.starts_with("| ---"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a row has input, message and test: {line}");
            Row { input: cells[0].to_owned(), message: code(cells[1]), test: code(cells[2]) }
        })
        .collect()
}

/// The text of a Markdown code span: ``double`` or `single` backticks. As in Markdown, a
/// space padding both ends of a span (needed when it starts or ends with a backtick) is dropped.
fn code(cell: &str) -> String {
    for fence in ["``", "`"] {
        if let Some(inner) = cell.strip_prefix(fence).and_then(|c| c.strip_suffix(fence)) {
            let padded = inner.len() > 1 && inner.starts_with(' ') && inner.ends_with(' ');
            return if padded { inner[1..inner.len() - 1].to_owned() } else { inner.to_owned() };
        }
    }
    panic!("not a code span: {cell}")
}

/// Rust source with its string escapes undone, so a message reads as it is printed.
fn unescaped(source: &str) -> String {
    source.replace("\\\"", "\"").replace("\\\\", "\\")
}

#[test]
fn every_row_of_the_bad_input_table_names_a_test_that_asserts_its_message() {
    let page = fs::read_to_string(root().join(PAGE)).unwrap_or_else(|e| panic!("{PAGE}: {e}"));
    let rows = rows(&page);
    assert!(rows.len() >= 60, "only {} rows: the table lost some", rows.len());
    let stated = format!(" {} rows.", rows.len());
    assert!(page.contains(&stated), "{PAGE} has {} rows: say so in its introduction ({stated:?})", rows.len());
    for row in &rows {
        let (file, name) = row.test.split_once("::").unwrap_or_else(|| panic!("{}: test is not FILE::NAME", row.input));
        let source = fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{}: {file}: {e}", row.input));
        let at = source.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("{}: no fn {name} in {file}", row.input));
        let before: Vec<&str> = source[..at].lines().rev().take(3).collect();
        assert!(before.iter().any(|l| l.trim() == "#[test]"), "{}: {name} in {file} is not a #[test]", row.input);
        assert!(unescaped(&source).contains(&row.message), "{}: {file} never mentions {:?}", row.input, row.message);
    }
    eprintln!("bad input: {} refused inputs, each backed by a test", rows.len());
}

#[test]
fn a_row_without_its_test_would_be_caught() {
    let page = "x\n# Bad input\n\n## Env\n\n| input | message | test |\n| --- | --- | --- |\n| a | `m` | `tests/none.rs::t` |\n# Next\n| b | `n` | `x::y` |\n";
    let rows = rows(page);
    assert_eq!(rows.len(), 1, "rows past the section must not count");
    assert_eq!((rows[0].message.as_str(), rows[0].test.as_str()), ("m", "tests/none.rs::t"));
    assert!(!root().join("tests/none.rs").exists());
}
