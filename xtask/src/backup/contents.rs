//! What one snapshot holds, as a directory: `database.dump` (pg_dump's custom format),
//! `media/` (the files of the media volume) and `manifest.json`, which records the tables
//! with their row counts and every media file with its size and SHA-256, so that a restored
//! snapshot can be checked against what was taken.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::sha256;

pub const DUMP: &str = "database.dump";
pub const MEDIA: &str = "media";
pub const MANIFEST: &str = "manifest.json";

/// Rows of every table of a live database, named as pg_dump names them (quoted where
/// needed), one row a line, name and count separated by a NUL byte
/// (`psql --field-separator-zero`), so no name needs escaping.
pub const COUNTS_SQL: &str = "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name),
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text
  FROM information_schema.tables
 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1;
";

/// psql's options for [`COUNTS_SQL`] on its standard input.
pub const COUNTS: &[&str] =
    &["psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--field-separator-zero", "--file=-"];

/// pg_restore writing a dump's data as SQL text, which [`dump_counts`] reads: the counts
/// are the dump's own, whatever the live database did meanwhile.
pub const DATA_AS_TEXT: &[&str] = &["pg_restore", "--data-only", "--file=-"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub taken: String,
    /// The id of the web image that served when it was taken.
    pub release: String,
    pub postgres: String,
    /// `pg_dump custom format 1.15` (the archive's own version).
    pub dump_format: String,
    pub tables: BTreeMap<String, u64>,
    pub media: Vec<MediaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFile {
    /// Relative to the media directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a snapshot's manifest", path.display()))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).context("cannot write the manifest")? + "\n";
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }

    pub fn media_bytes(&self) -> u64 {
        self.media.iter().map(|f| f.size).sum()
    }

    /// `N tables (R rows) and F media files (S)`.
    pub fn describe(&self) -> String {
        format!(
            "{} tables ({} rows) and {} media files ({})",
            self.tables.len(),
            self.rows(),
            self.media.len(),
            crate::db::human::size(self.media_bytes())
        )
    }
}

/// Each table's row count from psql's output of [`COUNTS_SQL`].
pub fn parse_counts(output: &str) -> Result<BTreeMap<String, u64>> {
    let mut tables = BTreeMap::new();
    for line in output.lines().filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once('\0') else { bail!("unexpected row from psql: {line:?}") };
        let count = value.parse().with_context(|| format!("row count of {name} is not a number: {value:?}"))?;
        tables.insert(name.to_owned(), count);
    }
    Ok(tables)
}

/// The server's version and each table's row count, from a dump's data as SQL text
/// ([`DATA_AS_TEXT`]): a table's rows are the lines between its `COPY ... FROM stdin;` and
/// `\.` (COPY's text format escapes newlines within a row).
pub fn dump_counts(text: &mut dyn Read) -> Result<(String, BTreeMap<String, u64>)> {
    let mut version = None;
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, u64)> = None;
    for line in BufReader::new(text).split(b'\n') {
        let line = line.context("cannot read the dump's data")?;
        if let Some((name, rows)) = current.as_mut() {
            if line == b"\\." {
                tables.insert(std::mem::take(name), *rows);
                current = None;
            } else {
                *rows += 1;
            }
            continue;
        }
        let line = String::from_utf8_lossy(&line);
        if let Some(rest) = line.strip_prefix("-- Dumped from database version ") {
            version = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            let name = rest.split(" (").next().unwrap_or(rest).trim_end_matches(" FROM stdin;").to_owned();
            current = Some((name, 0));
        }
    }
    if let Some((name, _)) = current {
        bail!("the dump's data ends inside table {name}'s rows");
    }
    Ok((version.context("the dump does not say which server it was taken from")?, tables))
}

/// `pg_dump custom format 1.15` from a dump's header (`PGDMP`, then the archive version).
pub fn dump_format(dump: &Path) -> Result<String> {
    let mut head = [0u8; 8];
    let read = fs::File::open(dump).and_then(|mut file| file.read_exact(&mut head));
    if read.is_err() || &head[..5] != b"PGDMP" {
        bail!("{} is not a pg_dump archive (no PGDMP header): see pg_dump's output above", dump.display());
    }
    Ok(format!("pg_dump custom format {}.{}", head[5], head[6]))
}

/// Every file under `dir`, by path, with its size and SHA-256.
pub fn media_files(dir: &Path) -> Result<Vec<MediaFile>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let (size, sha256) =
            sha256::hash_file(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?;
        let relative = entry.path().strip_prefix(dir).expect("walkdir stays under its root");
        let path = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        files.push(MediaFile { path, size, sha256 });
    }
    Ok(files)
}

/// What differs between a snapshot's manifest and what was found (tables, media), one line
/// each; empty when they match.
pub fn differences(manifest: &Manifest, tables: &BTreeMap<String, u64>, media: &[MediaFile]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, rows) in &manifest.tables {
        match tables.get(name) {
            Some(n) if n == rows => {}
            Some(n) => found.push(format!("table {name}: {n} rows, the manifest says {rows}")),
            None => found.push(format!("table {name} is missing")),
        }
    }
    found.extend(
        tables
            .keys()
            .filter(|n| !manifest.tables.contains_key(*n))
            .map(|n| format!("table {n} is not in the manifest")),
    );
    found.extend(media_differences(&manifest.media, media));
    found
}

fn media_differences(expected: &[MediaFile], media: &[MediaFile]) -> Vec<String> {
    let by_path: BTreeMap<&str, &MediaFile> = media.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut found = Vec::new();
    for file in expected {
        match by_path.get(file.path.as_str()) {
            Some(other) if *other == file => {}
            Some(other) => found.push(format!(
                "media file {:?}: {} bytes, SHA-256 {}; the manifest says {} bytes, {}",
                file.path, other.size, other.sha256, file.size, file.sha256
            )),
            None => found.push(format!("media file {:?} is missing", file.path)),
        }
    }
    let known: Vec<&str> = expected.iter().map(|f| f.path.as_str()).collect();
    found.extend(
        media
            .iter()
            .filter(|f| !known.contains(&f.path.as_str()))
            .map(|f| format!("media file {:?} is not in the manifest", f.path)),
    );
    found
}

/// Unpacks a tar stream (the media volume, as `tar -c` in a container writes it) into `dir`.
pub fn unpack(stream: &mut dyn Read, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.unpack(dir).with_context(|| format!("cannot unpack the media files into {}", dir.display()))
}

/// A tar file of everything under `dir`, to be unpacked into the media volume.
pub fn pack(dir: &Path, file: &Path) -> Result<PathBuf> {
    let out = fs::File::create(file).with_context(|| format!("cannot create {}", file.display()))?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).with_context(|| format!("cannot pack {}", dir.display()))?;
    builder.into_inner().and_then(|f| f.sync_all()).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file.to_path_buf())
}

/// A new, private directory (mode 0700: it holds a dump of the database), replacing what an
/// earlier run left.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    remove(dir)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

pub fn remove(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(tables: &[(&str, u64)], media: Vec<MediaFile>) -> Manifest {
        Manifest {
            taken: "2026-01-01T00:00:00Z".into(),
            release: "sha256:1".into(),
            postgres: "17.2".into(),
            dump_format: "pg_dump custom format 1.15".into(),
            tables: tables.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
            media,
        }
    }

    fn file(path: &str, size: u64, sha256: &str) -> MediaFile {
        MediaFile { path: path.into(), size, sha256: sha256.into() }
    }

    #[test]
    fn counts_are_read_from_nul_separated_rows() {
        let tables = parse_counts("public.core_upload\x003\npublic.\"Odd name\"\x000\n").unwrap();
        assert_eq!(
            tables.into_iter().collect::<Vec<_>>(),
            [("public.\"Odd name\"".into(), 0), ("public.core_upload".into(), 3)]
        );
        assert!(parse_counts("public.x\0many\n").is_err());
    }

    #[test]
    fn a_dumps_rows_are_counted_from_its_copy_blocks() {
        let text = "--\n-- Dumped from database version 17.2 (Debian 17.2-1)\n-- Dumped by pg_dump version 17.2\n\
                    COPY public.core_upload (id, file) FROM stdin;\n1\tuploads/a.txt\n2\tline\\nbreak\n\\.\n\n\
                    COPY public.\"Odd name\" (id) FROM stdin;\n\\.\n";
        let (version, tables) = dump_counts(&mut text.as_bytes()).unwrap();
        assert_eq!(version, "17.2 (Debian 17.2-1)");
        assert_eq!(
            tables.into_iter().collect::<Vec<_>>(),
            [("public.\"Odd name\"".into(), 0), ("public.core_upload".into(), 2)]
        );
        let cut = "-- Dumped from database version 17\nCOPY public.t (id) FROM stdin;\n1\n";
        assert!(dump_counts(&mut cut.as_bytes()).unwrap_err().to_string().contains("inside table public.t"));
    }

    #[test]
    fn every_difference_is_named() {
        let taken =
            manifest(&[("public.a", 3), ("public.b", 1)], vec![file("x y.txt", 2, "aa"), file("ü.png", 1, "bb")]);
        assert!(differences(&taken, &taken.tables, &taken.media).is_empty());
        let tables = [("public.a".to_string(), 2), ("public.c".to_string(), 0)].into_iter().collect();
        let media = vec![file("x y.txt", 2, "ab"), file("new", 1, "cc")];
        assert_eq!(
            differences(&taken, &tables, &media),
            [
                "table public.a: 2 rows, the manifest says 3",
                "table public.b is missing",
                "table public.c is not in the manifest",
                "media file \"x y.txt\": 2 bytes, SHA-256 ab; the manifest says 2 bytes, aa",
                "media file \"ü.png\" is missing",
                "media file \"new\" is not in the manifest",
            ]
        );
    }

    #[test]
    fn media_round_trips_through_tar_with_any_name() {
        let root = std::env::temp_dir().join(format!("contents-test-{}", std::process::id()));
        let (from, to) = (root.join("from"), root.join("to"));
        fs::create_dir_all(from.join("dir with space")).unwrap();
        fs::write(from.join("dir with space/ünïcode ✓.txt"), "bytes").unwrap();
        fs::write(from.join("top.bin"), [0u8, 1, 2]).unwrap();
        let tar = pack(&from, &root.join("media.tar")).unwrap();
        unpack(&mut fs::File::open(tar).unwrap(), &to).unwrap();
        let listed = media_files(&to).unwrap();
        assert_eq!(listed, media_files(&from).unwrap());
        assert_eq!(listed[0].path, "dir with space/ünïcode ✓.txt");
        assert_eq!(listed[1], file("top.bin", 3, "ae4b3280e56e2faf83f414a6e3dabe9d5fbe18976544c05fed121accb85b53fc"));
        fs::remove_dir_all(&root).unwrap();
    }
}
