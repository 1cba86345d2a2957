//! Times and sizes as backups show them: the UTC stamp in a backup's file name
//! (`20250131T235959Z`, sortable), and times and sizes as people read them.

use std::time::{SystemTime, UNIX_EPOCH};

/// The stamp for a backup taken now, in UTC.
pub fn stamp_now() -> String {
    let (date, time) = civil(SystemTime::now());
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", date.0, date.1, date.2, time.0, time.1, time.2)
}

/// `2025-01-31 23:59:59 UTC` from a backup's file name (`<db>-<stamp>.dump`), if it has a stamp.
pub fn time_from_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".dump")?;
    let stamp = stem.get(stem.len().checked_sub(16)?..)?;
    let shaped = stamp.bytes().enumerate().all(|(i, b)| match i {
        8 => b == b'T',
        15 => b == b'Z',
        _ => b.is_ascii_digit(),
    });
    let part = |from: usize, to: usize| &stamp[from..to];
    shaped.then(|| {
        let (date, time) = ((part(0, 4), part(4, 6), part(6, 8)), (part(9, 11), part(11, 13), part(13, 15)));
        format!("{}-{}-{} {}:{}:{} UTC", date.0, date.1, date.2, time.0, time.1, time.2)
    })
}

/// `2025-01-31 23:59:59 UTC`.
pub fn time(at: SystemTime) -> String {
    let ((year, month, day), (hour, minute, second)) = civil(at);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
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

type Date = (i64, u32, u32);
type Time = (u64, u64, u64);

/// The UTC calendar date and time of `at` (times before 1970 count as 1970).
fn civil(at: SystemTime) -> (Date, Time) {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    (date_from_days(days as i64), (rest / 3600, rest % 3600 / 60, rest % 60))
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to year, month, day.
fn date_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(date_from_days(0), (1970, 1, 1));
        assert_eq!(date_from_days(11_016), (2000, 2, 29));
        assert_eq!(time(UNIX_EPOCH + Duration::from_secs(1_738_367_999)), "2025-01-31 23:59:59 UTC");
    }

    #[test]
    fn a_stamped_name_gives_its_time() {
        assert_eq!(time_from_name("app-20250131T235959Z.dump").as_deref(), Some("2025-01-31 23:59:59 UTC"));
        assert_eq!(time_from_name("app.dump"), None);
        assert_eq!(time_from_name("app-2025013XT235959Z.dump"), None);
        assert_eq!(stamp_now().len(), 16);
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
