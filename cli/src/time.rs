//! Times on the command line: absolute (`2026-03-14`, `2026-03-14T09:30:00Z`) or relative to
//! now (`7d`, `12h`, `30m`), all UTC.

use anyhow::Context as _;

/// Parses a time given on the command line into µs since the epoch.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    parse_time_at(text, chrono::Utc::now().timestamp_micros())
}

/// Parses a span (`7d`, `12h`, `30m`, `45s`, `2w`) into µs; `None` when `text` is no span.
pub fn parse_span(text: &str) -> Option<anyhow::Result<i64>> {
    let text = text.trim();
    let (number, unit) = text.char_indices().last().map(|(i, c)| (&text[..i], c))?;
    let count = number.parse::<i64>().ok()?;
    let unit_micros: i64 = match unit {
        's' => 1_000_000,
        'm' => 60_000_000,
        'h' => 3_600_000_000,
        'd' => 86_400_000_000,
        'w' => 7 * 86_400_000_000,
        _ => {
            return Some(Err(anyhow::anyhow!(
                "{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            )));
        }
    };
    Some(count.checked_mul(unit_micros).context("relative time overflows"))
}

/// Parses `text` with relative times counted back from `now` (µs).
pub fn parse_time_at(text: &str, now: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Some(span) = parse_span(text) {
        return now.checked_sub(span?).context("relative time overflows");
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp_micros());
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).context("midnight")?.and_utc().timestamp_micros());
    }
    anyhow::bail!("{text:?} is not a time: use 2026-03-14, 2026-03-14T09:30:00Z or 7d/12h/30m")
}

/// Where the times a table or CSV shows are given (`--tz`); JSON and evidence bundles stay UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayZone {
    /// `2026-03-14 09:30:00Z`.
    Utc,
    /// This machine's zone (`TZ`, else /etc/localtime), with its offset.
    Local,
    /// A zone of the tz database (`Europe/Paris`), with its offset and abbreviation.
    Named(chrono_tz::Tz),
}

/// Parses `--tz`: `UTC`, `local`, or a tz database name.
pub fn parse_zone(text: &str) -> Result<DisplayZone, String> {
    match text {
        "UTC" | "utc" | "Z" => Ok(DisplayZone::Utc),
        "local" | "Local" => Ok(DisplayZone::Local),
        name => name.parse::<chrono_tz::Tz>().map(DisplayZone::Named).map_err(|_| {
            format!("{name:?} is not UTC, local, or a time zone name such as Europe/Paris")
        }),
    }
}

static DISPLAY_ZONE: std::sync::OnceLock<DisplayZone> = std::sync::OnceLock::new();

/// Sets the zone of displayed times for this process (the first call wins).
pub fn set_display_zone(zone: DisplayZone) {
    let _ = DISPLAY_ZONE.set(zone);
}

/// Formats µs since the epoch in the display zone, always labelled: `2026-03-14 09:30:00Z`,
/// `2026-03-14 10:30:00+01:00`, `2026-03-14 10:30:00+01:00 CET`.
pub fn format_display_time(micros: i64) -> String {
    let Some(time) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    match DISPLAY_ZONE.get().copied().unwrap_or(DisplayZone::Utc) {
        DisplayZone::Utc => format_time(micros),
        DisplayZone::Local => {
            time.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S%:z").to_string()
        }
        DisplayZone::Named(zone) => {
            time.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S%:z %Z").to_string()
        }
    }
}

/// Formats µs since the epoch as `2026-03-14 09:30:00Z` (chrono's `%Y-%m-%d %H:%M:%SZ`,
/// written field by field for years of four digits: a search prints millions of them).
pub fn format_time(micros: i64) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let Some(time) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    if !(0..=9999).contains(&time.year()) {
        return time.format("%Y-%m-%d %H:%M:%SZ").to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_time_forms() {
        let now = 1_773_480_600_000_000; // 2026-03-14T09:30:00Z
        let cases = [
            ("2026-03-14", 1_773_446_400_000_000),
            ("2026-03-14T09:30:00Z", now),
            ("2026-03-14 09:30:00", now),
            ("1d", now - 86_400_000_000),
            ("30m", now - 1_800_000_000),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time_at(text, now).expect(text), expected, "{text}");
        }
        assert!(parse_time_at("yesterday", now).is_err());
        assert!(parse_time_at("5y", now).is_err());
        assert!(parse_time_at("-106751000d", now).is_err());
    }

    #[test]
    fn test_parse_span() {
        assert_eq!(parse_span("24h").map(|r| r.ok()), Some(Some(86_400_000_000)));
        assert!(parse_span("2026-03-14").is_none());
        assert!(matches!(parse_span("5y"), Some(Err(_))));
    }

    #[test]
    fn test_format_time() {
        assert_eq!(format_time(1_773_480_600_000_000), "2026-03-14 09:30:00Z");
        // Field by field, as chrono formats it, across days, years and the four-digit edges.
        let chrono = |micros: i64| {
            let time = chrono::DateTime::from_timestamp_micros(micros).expect("in range");
            time.format("%Y-%m-%d %H:%M:%SZ").to_string()
        };
        let year_0 = -62_167_219_200_000_000;
        let year_10000 = 253_402_300_800_000_000;
        let mut times = vec![0, -1, 1, 951_782_400_000_000, year_0, year_0 - 1, year_10000];
        times.extend((0..2_000i64).map(|i| i * 7_919_999_999_937 - 3_000_000_000_000_000));
        times.extend([year_10000 - 1, i64::MIN, i64::MAX]);
        for micros in times {
            match chrono::DateTime::from_timestamp_micros(micros) {
                Some(_) => assert_eq!(format_time(micros), chrono(micros), "{micros}"),
                None => assert_eq!(format_time(micros), micros.to_string()),
            }
        }
        assert_eq!(format_time(year_10000), "+10000-01-01 00:00:00Z");
        assert_eq!(format_time(year_0 - 1), "-0001-12-31 23:59:59Z");
    }
}
