//! Windows of sort time, so that a search matching millions of rows prints them in order with
//! bounded memory.
//!
//! One `ORDER BY` over every match holds every match until the last is read (and spilling them
//! would write decrypted commands to disk). Instead the search first reads, from plaintext
//! columns only, each session's range of sort times and number of rows ([`Span`]), then cuts
//! time into windows ([`Planner`]) and runs one query per window over the files of the sessions
//! that reach into it. Each window is sorted on its own; windows come in time order, so the
//! output is in order. Every file is read about once (a session that spans several windows is
//! read once per window), and memory holds one window's rows.
//!
//! The first window holds about `chunk` rows; each next one as many as [`WINDOW_BYTES`] holds
//! at what the last one's rows weighed ([`next_rows`]): short commands make few big windows
//! (each window is a query, planned and read on its own), long ones (heredocs, pasted scripts)
//! smaller windows, so that memory stays about the same.

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
    /// Rows of the sessions starting in the range (of every session, for the untimed window):
    /// what the window was cut to hold.
    pub rows: u64,
}

/// Memory the rows of one window may take, about (Arrow's measure of the batches a window's
/// query gives): the size [`next_rows`] cuts windows to after the first.
pub const WINDOW_BYTES: u64 = 32 * 1024 * 1024;

/// How many times `chunk` rows a window may be cut to hold at most, however light its rows: a
/// window's rows are weighed after the filter, and matches need not be spread evenly.
pub const MAX_GROWTH: u64 = 8;

/// Returns how many rows the next window is cut to hold, given the last one: cut to hold
/// `planned` rows, its query gave rows weighing `held` bytes. About [`WINDOW_BYTES`] at that
/// weight a row, at least one row and at most [`MAX_GROWTH`] × `chunk`; `previous` (the rows
/// the last window was cut with) when the last window weighed nothing.
pub fn next_rows(previous: u64, planned: u64, held: u64, chunk: u64) -> u64 {
    if planned == 0 || held == 0 {
        return previous;
    }
    let per_row = held.div_ceil(planned);
    (WINDOW_BYTES / per_row).clamp(1, chunk.max(1).saturating_mul(MAX_GROWTH))
}

/// The sort times of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Rows without a sort time.
    Untimed,
    /// Rows whose sort time is at least `from` and, when `until` is set, before it.
    Timed { from: i64, until: Option<i64> },
}

/// Cuts the sort times of `spans` into windows, in output order, one at a time: the rows
/// without a sort time first, then windows each starting where a session starts and holding
/// the rows of sessions starting in it, about as many as asked for each (more when one session
/// alone has more, or when sessions that started earlier reach into it).
pub struct Planner<'a> {
    /// The window of rows without a sort time, until it is taken.
    untimed: Option<Window>,
    /// The spans with sort times, by their earliest.
    timed: Vec<(i64, i64, &'a Span)>,
    /// The first of `timed` not in a window yet.
    next: usize,
}

impl<'a> Planner<'a> {
    pub fn new(spans: &'a [Span]) -> Planner<'a> {
        let untimed: Vec<&Span> = spans.iter().filter(|span| span.untimed).collect();
        let untimed = (!untimed.is_empty()).then(|| Window {
            range: Range::Untimed,
            sessions: untimed.iter().map(|span| span.session.clone()).collect(),
            rows: untimed.iter().map(|span| span.rows).fold(0, u64::saturating_add),
        });
        let mut timed: Vec<(i64, i64, &Span)> =
            spans.iter().filter_map(|span| span.times.map(|(lo, hi)| (lo, hi, span))).collect();
        timed.sort_by_key(|(lo, _, _)| *lo);
        Planner { untimed, timed, next: 0 }
    }

    /// Returns the next window, cut to hold about `rows` rows; `None` once every time is in
    /// one.
    pub fn next_window(&mut self, rows: u64) -> Option<Window> {
        if let Some(untimed) = self.untimed.take() {
            return Some(untimed);
        }
        let &(from, _, _) = self.timed.get(self.next)?;
        let (mut end, mut held, mut until) = (self.next, 0u64, None);
        while let Some(&(lo, _, span)) = self.timed.get(end) {
            // A window ends only where time moves on: sessions starting together share one.
            if held > 0 && held.saturating_add(span.rows) > rows && lo > from {
                until = Some(lo);
                break;
            }
            held = held.saturating_add(span.rows);
            end += 1;
        }
        self.next = end;
        // Sessions starting earlier reach into the window when they end in it or after it.
        let sessions = self.timed[..end]
            .iter()
            .filter(|(_, hi, _)| *hi >= from)
            .map(|(_, _, span)| span.session.clone())
            .collect();
        Some(Window { range: Range::Timed { from, until }, sessions, rows: held })
    }
}

/// Cuts the sort times of `spans` into windows of about `chunk` rows each ([`Planner`]).
pub fn plan(spans: &[Span], chunk: u64) -> Vec<Window> {
    let mut planner = Planner::new(spans);
    std::iter::from_fn(|| planner.next_window(chunk)).collect()
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

    /// Windows cut one at a time take the size asked for each: the rows of a window are the
    /// rows of the sessions starting in it, and every time is in one window.
    #[test]
    fn test_each_window_is_cut_to_the_rows_asked_for_it() {
        let spans: Vec<Span> = (0..10)
            .map(|start| span(&format!("s{start}"), Some((start * 10, start * 10 + 5)), 10, false))
            .collect();
        let mut planner = Planner::new(&spans);
        let mut cut = Vec::new();
        for rows in [10, 30, 1, 1000] {
            let Some(window) = planner.next_window(rows) else { break };
            cut.push((window.range, window.rows, window.sessions.len()));
        }
        assert_eq!(
            cut,
            [
                (Range::Timed { from: 0, until: Some(10) }, 10, 1),
                (Range::Timed { from: 10, until: Some(40) }, 30, 3),
                (Range::Timed { from: 40, until: Some(50) }, 10, 1),
                (Range::Timed { from: 50, until: None }, 50, 5),
            ]
        );
        assert_eq!(planner.next_window(10), None);
        let untimed = [span("u", None, 4, true), span("v", Some((1, 2)), 6, true)];
        let first = Planner::new(&untimed).next_window(1).expect("the untimed window");
        assert_eq!((first.range, first.rows, names(&first)), (Range::Untimed, 10, vec!["u", "v"]));
    }

    /// The next window holds what the budget holds at the last window's weight a row, never more
    /// than `MAX_GROWTH` chunks nor less than one row, and keeps its size after a window that
    /// weighed nothing.
    #[test]
    fn test_windows_grow_for_light_rows_and_shrink_for_heavy_ones() {
        let chunk = 50_000;
        // 50 bytes a row: the budget holds 671,088 rows, more than 8 chunks.
        assert_eq!(next_rows(chunk, chunk, 50 * chunk, chunk), MAX_GROWTH * chunk);
        // 400 bytes a row: 83,886 rows.
        assert_eq!(next_rows(chunk, chunk, 400 * chunk, chunk), WINDOW_BYTES / 400);
        // 64 KiB a row (pasted scripts): 512 rows.
        assert_eq!(next_rows(chunk, chunk, 65_536 * chunk, chunk), 512);
        // A row heavier than the budget: still one row a window.
        assert_eq!(next_rows(chunk, 1, 2 * WINDOW_BYTES, chunk), 1);
        // Nothing matched in the last window, or it was cut to hold nothing: as before.
        assert_eq!(next_rows(1234, chunk, 0, chunk), 1234);
        assert_eq!(next_rows(1234, 0, 99, chunk), 1234);
    }
}
