//! SHA-256 the way `sha256sum` writes and reads it: lower-case hex digests of bytes hashed
//! as they stream past, and `<hex>  <name>` lines. Shared by the database backups
//! (`<file>.sha256`) and the releases (SHA256SUMS).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes per read and write when copying: large chunks keep the system calls few.
const CHUNK: usize = 256 * 1024;

/// Passes bytes through to `inner`, hashing and counting them, so a file is hashed as it
/// is written instead of being read back.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, hasher: Sha256::new(), len: 0 }
    }

    /// The byte count and lower-case hex digest of everything written.
    pub fn finish(self) -> (u64, String) {
        (self.len, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `from` into `to` in large chunks; returns the size and SHA-256 of what was copied.
pub fn copy(from: &mut impl Read, to: impl Write) -> io::Result<(u64, String)> {
    let mut writer = BufWriter::with_capacity(CHUNK, HashingWriter::new(to));
    io::copy(from, &mut writer)?;
    let hashing = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(hashing.finish())
}

/// The size and SHA-256 of a file, read as a stream.
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    copy(&mut File::open(path)?, io::sink())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<hex>  <name>` and a newline: one line of what `sha256sum` prints and `sha256sum -c` reads.
pub fn line(hex: &str, name: &str) -> String {
    format!("{hex}  {name}\n")
}

/// The digest and name of a [`line()`] (without its newline), also with `sha256sum`'s ` *name`
/// binary marker; `None` unless the digest is 64 lower-case hex digits and a name follows.
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let (hex, rest) = line.split_at_checked(64)?;
    let name = rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *"))?;
    let hex_ok = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_ok && !name.is_empty()).then_some((hex, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_writer_hashes_what_passes_through() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        let (len, digest) = writer.finish();
        assert_eq!(len, 3);
        assert_eq!(digest, ABC);
    }

    #[test]
    fn copying_hashes_and_writes_every_byte() {
        let data: Vec<u8> = (0..3 * CHUNK + 7).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let (len, digest) = copy(&mut data.as_slice(), &mut out).unwrap();
        assert_eq!((len, out.len()), (data.len() as u64, data.len()));
        assert_eq!(out, data);
        assert_eq!(digest, hex(&Sha256::digest(&data)));
        assert_eq!(copy(&mut &b"abc"[..], io::sink()).unwrap(), (3, ABC.to_owned()));
    }

    #[test]
    fn files_hash_like_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(hash_file(&file).unwrap(), (3, ABC.to_owned()));
        assert_eq!(hash_file(&dir.path().join("missing")).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn lines_read_back_with_either_marker() {
        assert_eq!(line(ABC, "x.dump"), format!("{ABC}  x.dump\n"));
        assert_eq!(parse_line(line(ABC, "a b").trim_end()), Some((ABC, "a b")));
        assert_eq!(parse_line(&format!("{ABC} *x")), Some((ABC, "x")));
        for bad in [format!("{ABC} x"), format!("{ABC}  "), format!("{}  x", ABC.to_uppercase()), ABC[1..].to_owned()] {
            assert_eq!(parse_line(&bad), None, "{bad:?}");
        }
    }
}
