//! UTC times as the xtask writes them: stamps in backup file names (and back), and times
//! people read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second humantime formats (9999-12-31T23:59:59Z); later times would make it fail.
const LAST: Duration = Duration::from_secs(253_402_300_799);

/// `20250131T235959Z`: sortable, and free of characters a file name would need quoted for.
pub fn stamp(at: SystemTime) -> String {
    rfc3339(at).replace(['-', ':'], "")
}

/// The time a [`stamp()`] names; `None` unless `text` is one, with a real date and time.
pub fn parse_stamp(text: &str) -> Option<SystemTime> {
    // ASCII first: the slices below must fall on character boundaries.
    let shaped = text.len() == 16 && text.is_ascii() && text.as_bytes()[8] == b'T' && text.ends_with('Z');
    if !shaped {
        return None;
    }
    let (date, time) = (&text[..8], &text[9..15]);
    let rfc3339 =
        format!("{}-{}-{}T{}:{}:{}Z", &date[..4], &date[4..6], &date[6..], &time[..2], &time[2..4], &time[4..]);
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// `2025-01-31 23:59:59 UTC`.
pub fn readable(at: SystemTime) -> String {
    let rfc3339 = rfc3339(at);
    format!("{} {} UTC", &rfc3339[..10], &rfc3339[11..19])
}

/// `2025-01-31T23:59:59Z`; times before 1970 count as 1970, times after 9999 as 9999.
fn rfc3339(at: SystemTime) -> String {
    let at = at.clamp(UNIX_EPOCH, UNIX_EPOCH + LAST);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_follow_the_calendar_in_utc() {
        assert_eq!(stamp(at(1_738_367_999)), "20250131T235959Z");
        assert_eq!(readable(at(1_738_367_999)), "2025-01-31 23:59:59 UTC");
        assert_eq!(stamp(at(951_782_400)), "20000229T000000Z");
        assert_eq!(readable(at(0)), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn stamps_read_back_only_when_they_name_a_real_time() {
        assert_eq!(parse_stamp(&stamp(at(1_738_367_999))), Some(at(1_738_367_999)));
        assert_eq!(parse_stamp("20000229T000000Z"), Some(at(951_782_400)));
        for bad in
            ["20250131T235959", "2025013XT235959Z", "20251331T000000Z", "2025-01-31T23:5Z", "2025013\u{e9}T35959Z"]
        {
            assert_eq!(parse_stamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_out_of_range_are_clamped_not_fatal() {
        assert_eq!(readable(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01 00:00:00 UTC");
        assert_eq!(stamp(at(LAST.as_secs() + 1)), "99991231T235959Z");
        assert_eq!(stamp(SystemTime::now()).len(), 16);
    }
}
