//! Times and durations on the command line and in output: RFC 3339 or
//! epoch milliseconds in, RFC 3339 UTC out, and durations like `30d`.

use crate::error::{Error, Result};

/// Epoch milliseconds, or RFC 3339 (`2026-11-22T07:00:00Z`,
/// `2026-11-22T08:00:00.250+01:00`).
pub fn parse_time(s: &str, flag: &str) -> Result<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad(s, flag));
    }
    parse_rfc3339(s).ok_or_else(|| bad(s, flag))
}

fn bad(s: &str, flag: &str) -> Error {
    Error::Usage(format!(
        "{flag} {s:?}: expected RFC 3339 (2026-11-22T07:00:00Z) or epoch milliseconds"
    ))
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *c == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// RFC 3339 UTC, second precision, without a date library.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's civil-from-days).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `30d`, `12h`, `2w`, `90m` (minutes), `1y` (365 days) → milliseconds.
/// Epoch milliseconds as a signed timestamp (Kafka's kind), saturating.
pub(crate) fn signed_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Milliseconds since the epoch by this machine's clock (0 before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| {
        Error::Usage(format!(
            "{s:?}: expected a duration such as 30d, 12h, 2w, 1y"
        ))
    })?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "" if n == 0 => 0,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => {
            return Err(Error::Usage(format!(
                "{s:?}: unknown unit {unit:?}; use ms, s, m, h, d, w or y"
            )));
        }
    };
    // A duration longer than the clock can count means "forever".
    Ok(n.saturating_mul(unit_ms))
}

/// A duration in the largest unit of [`parse_duration`]'s that divides it
/// evenly, so a message shows `30d` for what the operator typed as `30d`.
pub fn format_duration(ms: u64) -> String {
    // No weeks: `7d` reads back as typed, and `2w` as `14d`.
    const UNITS: [(u64, &str); 5] = [
        (365 * 86_400_000, "y"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    if ms == 0 {
        return "0".into();
    }
    UNITS
        .iter()
        .find(|(u, _)| ms.is_multiple_of(*u))
        .map_or_else(
            || format!("{ms}ms"),
            |(u, name)| format!("{}{name}", ms / u),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_back_as_typed() {
        for d in ["30d", "7d", "12h", "90s", "1y", "1500ms", "5m"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
        assert_eq!(format_duration(parse_duration("2w").unwrap()), "14d");
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(
            parse_duration("1000000y").unwrap(),
            1_000_000 * 365 * 86_400_000
        );
        assert_eq!(parse_duration("99999999999999999999y").ok(), None);
        assert_eq!(parse_duration("18446744073709551615y").unwrap(), u64::MAX);
    }

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            parse_time("1700000000000", "--from-time").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z", "x").unwrap(), 0);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", "x").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00", "x").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("2000-02-29T00:00:00Z", "x").unwrap(),
            951_782_400_000
        );
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
            "12ab",
        ] {
            assert!(parse_time(bad, "--to-time").is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3_600_000);
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("d").is_err());
    }
}
