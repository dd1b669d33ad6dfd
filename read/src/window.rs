//! Windows of sort time, so that a search matching millions of rows prints them in order with
//! bounded memory.
//!
//! One `ORDER BY` over every match holds every match until the last is read (and spilling them
//! would write decrypted commands to disk). Instead the search first reads, from plaintext
//! columns only, each session's range of sort times and number of rows ([`Span`]), then cuts
//! time into windows of about `chunk` rows ([`plan`]) and runs one query per window over the
//! files of the sessions that reach into it. Each window is sorted on its own; windows come in
//! time order, so the output is in order. Every file is read about once (a session that spans
//! several windows is read once per window), and memory holds one window's rows.

use std::collections::HashSet;

/// One session's rows as the search orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Session id.
    pub session: String,
    /// Earliest and latest sort time (µs) of its rows that have one.
    pub times: Option<(i64, i64)>,
    /// Rows.
    pub rows: u64,
    /// Whether some of its rows have no sort time (they sort first).
    pub untimed: bool,
}

/// A range of sort times read by one query, and the sessions with rows in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// What the window holds.
    pub range: Range,
    /// Sessions that may have rows in the range.
    pub sessions: HashSet<String>,
}

/// The sort times of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Rows without a sort time.
    Untimed,
    /// Rows whose sort time is at least `from` and, when `until` is set, before it.
    Timed { from: i64, until: Option<i64> },
}

/// Cuts the sort times of `spans` into windows, in output order, each starting where a session
/// starts and holding the rows of sessions starting in it, about `chunk` rows (more when one
/// session alone has more, or when sessions that started earlier reach into it).
pub fn plan(spans: &[Span], chunk: u64) -> Vec<Window> {
    let mut windows = Vec::new();
    let untimed: HashSet<String> =
        spans.iter().filter(|span| span.untimed).map(|span| span.session.clone()).collect();
    if !untimed.is_empty() {
        windows.push(Window { range: Range::Untimed, sessions: untimed });
    }
    let mut timed: Vec<(i64, i64, &Span)> =
        spans.iter().filter_map(|span| span.times.map(|(lo, hi)| (lo, hi, span))).collect();
    timed.sort_by_key(|(lo, _, _)| *lo);
    let mut bounds: Vec<i64> = Vec::new();
    let mut rows = 0u64;
    for (lo, _, span) in &timed {
        let full = rows > 0 && rows.saturating_add(span.rows) > chunk;
        if bounds.last().is_none_or(|last| full && lo > last) {
            bounds.push(*lo);
            rows = 0;
        }
        rows = rows.saturating_add(span.rows);
    }
    for (index, &from) in bounds.iter().enumerate() {
        let until = bounds.get(index + 1).copied();
        let sessions = timed
            .iter()
            .filter(|(lo, hi, _)| until.is_none_or(|until| *lo < until) && *hi >= from)
            .map(|(_, _, span)| span.session.clone())
            .collect();
        windows.push(Window { range: Range::Timed { from, until }, sessions });
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(session: &str, times: Option<(i64, i64)>, rows: u64, untimed: bool) -> Span {
        Span { session: session.to_string(), times, rows, untimed }
    }

    fn names(window: &Window) -> Vec<&str> {
        let mut names: Vec<&str> = window.sessions.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn test_windows_cover_every_time_once_in_order() {
        let spans = [
            span("a", Some((10, 50)), 4, false),
            span("b", Some((20, 25)), 4, true),
            span("c", Some((30, 300)), 4, false),
            span("d", Some((100, 110)), 4, false),
            span("e", None, 2, true),
        ];
        let windows = plan(&spans, 8);
        let ranges: Vec<Range> = windows.iter().map(|window| window.range).collect();
        assert_eq!(
            ranges,
            [
                Range::Untimed,
                Range::Timed { from: 10, until: Some(30) },
                Range::Timed { from: 30, until: None },
            ]
        );
        assert_eq!(names(&windows[0]), ["b", "e"]);
        assert_eq!(names(&windows[1]), ["a", "b"]);
        // a (until 50) reaches into the window of c and d.
        assert_eq!(names(&windows[2]), ["a", "c", "d"]);
    }

    #[test]
    fn test_a_big_session_gets_a_window_and_equal_starts_share_one() {
        let spans = [
            span("big", Some((1, 2)), 1_000, false),
            span("x", Some((5, 5)), 1, false),
            span("y", Some((5, 6)), 1, false),
        ];
        let windows = plan(&spans, 1);
        let ranges: Vec<Range> = windows.iter().map(|window| window.range).collect();
        // A window starts only where time moves on: x and y start together.
        assert_eq!(
            ranges,
            [Range::Timed { from: 1, until: Some(5) }, Range::Timed { from: 5, until: None }]
        );
        assert_eq!(names(&windows[1]), ["x", "y"]);
        assert!(plan(&[], 10).is_empty());
    }
}
