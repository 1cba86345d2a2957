//! Times and sizes as backups show them: the time in a backup's file name (the UTC
//! stamp of [`crate::clock::stamp`]), and sizes as people read them.

use crate::clock;

/// `2025-01-31 23:59:59 UTC` from a backup's file name (`<db>-<stamp>.dump`), if it has a stamp.
pub fn time_from_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".dump")?;
    let stamp = stem.get(stem.len().checked_sub(16)?..)?;
    clock::parse_stamp(stamp).map(clock::readable)
}

/// `512 B`, `1.5 KiB`, `12.3 MiB`, ...
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn a_stamped_name_gives_its_time() {
        assert_eq!(time_from_name("app-20250131T235959Z.dump").as_deref(), Some("2025-01-31 23:59:59 UTC"));
        assert_eq!(time_from_name("app.dump"), None);
        assert_eq!(time_from_name("app-2025013XT235959Z.dump"), None);
        assert_eq!(
            time_from_name("app-20251399T000000Z.dump"),
            None,
            "no such day: the caller falls back to the mtime"
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_738_367_999);
        let name = format!("app-{}.dump", clock::stamp(at));
        assert_eq!(time_from_name(&name), Some(clock::readable(at)));
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
