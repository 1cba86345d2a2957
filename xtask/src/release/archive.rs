//! A reproducible tar stream: entries in the order given (sorted by the caller), owner
//! 0:0 without names, normalised modes, one mtime for all, GNU long names past 100 bytes.
//! Headers are built here rather than by `tar::Builder::append_dir_all`, which walks in
//! file-system order and copies each file's real metadata.

use std::fs::File;
use std::io::{self, Read, Write};

use anyhow::{bail, Context as _, Result};
use indicatif::ProgressBar;
use tar::{EntryType, Header};

use super::tree::{Entry, Kind};

const BLOCK: usize = 512;
/// The GNU extension's name for the entry that carries a long path or link target.
const LONG_LINK: &[u8] = b"././@LongLink";

/// Writes `entries` as a tar stream to `out`; returns how many files and symlinks it holds.
/// Each file must still have the size it had when listed, so that the stream matches its headers.
pub fn write(entries: &[Entry], mtime: u64, out: &mut dyn Write, progress: &ProgressBar) -> Result<u64> {
    let mut files = 0;
    for entry in entries {
        let mut header = header(&entry.kind, mtime);
        set_long_field(out, &mut header, entry.name.as_bytes(), EntryType::GNULongName)?;
        if let Kind::Symlink { target } = &entry.kind {
            set_long_field(out, &mut header, target.as_bytes(), EntryType::GNULongLink)?;
        }
        header.set_cksum();
        out.write_all(header.as_bytes())?;
        if let Kind::File { size, .. } = entry.kind {
            copy_file(entry, size, out)?;
            progress.inc(size);
        }
        files += u64::from(entry.kind != Kind::Dir);
    }
    // The end of an archive is two zero blocks.
    out.write_all(&[0; 2 * BLOCK])?;
    Ok(files)
}

/// Everything in an entry's header except its name and link target.
pub fn header(kind: &Kind, mtime: u64) -> Header {
    let mut header = Header::new_gnu();
    let (entry_type, mode, size) = match kind {
        Kind::Dir => (EntryType::Directory, 0o755, 0),
        Kind::File { size, executable: true } => (EntryType::Regular, 0o755, *size),
        Kind::File { size, executable: false } => (EntryType::Regular, 0o644, *size),
        Kind::Symlink { .. } => (EntryType::Symlink, 0o777, 0),
    };
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header
}

/// Puts `value` in the header's name (or link name) field; a value that does not fit is
/// first written as a GNU long-name (or long-link) entry, which GNU tar reads in its place.
fn set_long_field(out: &mut dyn Write, header: &mut Header, value: &[u8], long_type: EntryType) -> Result<()> {
    let field = match long_type {
        EntryType::GNULongLink => &mut header.as_old_mut().linkname,
        _ => &mut header.as_old_mut().name,
    };
    let fits = value.len() <= field.len();
    let shown = value.len().min(field.len());
    field[..shown].copy_from_slice(&value[..shown]);
    if !fits {
        out.write_all(&long_name_entry(value, long_type))?;
    }
    Ok(())
}

/// A long-name entry: its header, then `value` NUL-terminated and padded to a block.
pub fn long_name_entry(value: &[u8], long_type: EntryType) -> Vec<u8> {
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..LONG_LINK.len()].copy_from_slice(LONG_LINK);
    header.set_entry_type(long_type);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(value.len() as u64 + 1);
    header.set_cksum();
    let with_nul = value.len() + 1;
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(value);
    bytes.resize(BLOCK + with_nul + padding(with_nul as u64), 0);
    bytes
}

/// Zero bytes that bring `len` up to a whole number of blocks.
fn padding(len: u64) -> usize {
    (BLOCK - (len % BLOCK as u64) as usize) % BLOCK
}

fn copy_file(entry: &Entry, size: u64, out: &mut dyn Write) -> Result<()> {
    let path = &entry.source;
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let copied =
        io::copy(&mut (&mut file).take(size), out).with_context(|| format!("cannot read {}", path.display()))?;
    let grew = file.read(&mut [0]).with_context(|| format!("cannot read {}", path.display()))? != 0;
    if copied != size || grew {
        bail!(
            "{} changed while it was being archived: run the release again once nothing writes to it",
            path.display()
        );
    }
    out.write_all(&[0; BLOCK][..padding(size)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap().trim_end_matches('\0')
    }

    #[test]
    fn headers_carry_normalised_modes_owner_zero_and_the_given_mtime() {
        let cases = [
            (Kind::Dir, EntryType::Directory, 0o755, 0),
            (Kind::File { size: 5, executable: false }, EntryType::Regular, 0o644, 5),
            (Kind::File { size: 5, executable: true }, EntryType::Regular, 0o755, 5),
            (Kind::Symlink { target: "a".into() }, EntryType::Symlink, 0o777, 0),
        ];
        for (kind, entry_type, mode, size) in cases {
            let header = header(&kind, 1_700_000_000);
            assert_eq!(header.entry_type(), entry_type);
            assert_eq!(header.mode().unwrap(), mode);
            assert_eq!(header.size().unwrap(), size);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.mtime().unwrap(), 1_700_000_000);
            assert_eq!((header.username().unwrap(), header.groupname().unwrap()), (Some(""), Some("")));
        }
    }

    #[test]
    fn short_names_go_in_the_header_long_ones_in_a_gnu_entry_before_it() {
        let mut out = Vec::new();
        let mut short = header(&Kind::Dir, 0);
        set_long_field(&mut out, &mut short, b"css/", EntryType::GNULongName).unwrap();
        assert!(out.is_empty());
        assert_eq!(field(&short.as_old().name), "css/");

        let long = "d/".repeat(60);
        let mut header = header(&Kind::Dir, 0);
        set_long_field(&mut out, &mut header, long.as_bytes(), EntryType::GNULongName).unwrap();
        assert_eq!(out.len(), 2 * BLOCK);
        assert_eq!(field(&out[..100]), "././@LongLink");
        assert_eq!(out[156], b'L');
        assert_eq!(field(&out[BLOCK..]), long);
        assert_eq!(header.as_old().name[..], long.as_bytes()[..100]);
    }

    #[test]
    fn long_name_entries_are_whole_blocks_with_a_terminating_nul() {
        for len in [101, 511, 512, 1023] {
            let value = vec![b'x'; len];
            let bytes = long_name_entry(&value, EntryType::GNULongLink);
            assert_eq!(bytes.len() % BLOCK, 0, "{len}");
            assert!(bytes.len() > BLOCK + len, "{len}: room for the NUL");
            assert_eq!(bytes[BLOCK + len], 0);
        }
    }
}
