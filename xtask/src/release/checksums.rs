//! SHA256SUMS: one `sha256sum` line per artifact of the release directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

use crate::sha256;

pub const FILE_NAME: &str = "SHA256SUMS";

/// File name to lower-case hex digest; a BTreeMap keeps names sorted by their bytes.
pub type Sums = BTreeMap<String, String>;

/// One `<hex>  <file>` line per file, sorted by name, each ending in a newline, nothing else.
pub fn format(sums: &Sums) -> String {
    sums.iter().map(|(file, hex)| sha256::line(hex, file)).collect()
}

/// Reads what [`format()`] writes (and `sha256sum`'s ` *name` binary marker).
pub fn parse(text: &str, source: &Path) -> Result<Sums> {
    let mut sums = Sums::new();
    for (number, line) in text.lines().enumerate() {
        let Some((hex, file)) = sha256::parse_line(line).filter(|&(_, file)| is_plain_name(file)) else {
            bail!(
                "{} line {}: expected `<sha256>  <file>`, found {line:?}: fix or delete that line",
                source.display(),
                number + 1
            );
        };
        if sums.insert(file.to_owned(), hex.to_owned()).is_some() {
            bail!("{} lists {file} twice: delete one of the lines", source.display());
        }
    }
    Ok(sums)
}

/// A file directly in the release directory: no path, nothing a shell or `sha256sum` escapes.
pub fn is_plain_name(file: &str) -> bool {
    !file.is_empty() && file != "." && file != ".." && !file.contains(['/', '\\', '\n', '\r', '\0'])
}

/// Reads `dir/SHA256SUMS`; a missing file is an empty list.
pub fn read(dir: &Path) -> Result<Sums> {
    let path = dir.join(FILE_NAME);
    match crate::files::read_if_present(&path)? {
        Some(text) => parse(&text, &path),
        None => Ok(Sums::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const B: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn lines_are_sorted_by_name_bytes_with_two_spaces_and_no_blank_line() {
        let sums = Sums::from([("b.tar.gz".into(), A.into()), ("B.tar.gz".into(), B.into()), ("a-1".into(), A.into())]);
        assert_eq!(format(&sums), format!("{B}  B.tar.gz\n{A}  a-1\n{A}  b.tar.gz\n"));
        assert_eq!(format(&Sums::new()), "");
    }

    #[test]
    fn parsing_reads_what_formatting_writes_and_the_binary_marker() {
        let sums = Sums::from([("x.tar.gz".into(), A.into()), ("y".into(), B.into())]);
        assert_eq!(parse(&format(&sums), Path::new("S")).unwrap(), sums);
        assert_eq!(parse(&format!("{A} *x.tar.gz\n"), Path::new("S")).unwrap()["x.tar.gz"], A);
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        for bad in [
            format!("{A} x"),
            format!("{}  x", &A[..63]),
            format!("{}  x", A.to_uppercase()),
            format!("{A}  a/b"),
            String::new(),
        ] {
            let message = parse(&format!("{B}  ok\n{bad}\n"), Path::new("dist/SHA256SUMS")).unwrap_err().to_string();
            assert!(message.starts_with("dist/SHA256SUMS line 2: "), "{message}");
        }
        let twice = parse(&format!("{A}  x\n{B}  x\n"), Path::new("S")).unwrap_err().to_string();
        assert!(twice.contains("lists x twice"), "{twice}");
    }
}
