//! Searches as filters: the SQL a search of the lake's tables runs, built from a [`Filter`]
//! with every value bound as a parameter (no value is ever spliced into SQL), and the partition
//! pruning that goes with a time range.
//!
//! ```
//! use sessionlake_read::query::{Filter, Query, COMMANDS_ALIAS};
//!
//! let filter = Filter { principal: Some("alice".into()), since: Some(0), ..Filter::default() };
//! let mut query = Query::default();
//! query.bind_filters(&filter, COMMANDS_ALIAS, "c.started_at");
//! assert_eq!(
//!     query.where_clause(),
//!     "WHERE (c.principal = $1 OR strpos(c.principal, $1) > 0) AND c.started_at >= $2"
//! );
//! assert_eq!(query.params.len(), 2);
//! ```

use datafusion::scalar::ScalarValue;
use sessionlake_schemas::{AccessKind, paths};

/// Who, where and when a search is about; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The principal (ARN) or a part of it.
    pub principal: Option<String>,
    /// The OS user: the session's, or whom a command ran as (`sudo su -`).
    pub run_as: Option<String>,
    /// The managed node.
    pub target: Option<String>,
    /// One session.
    pub session: Option<String>,
    /// From this time on (µs since the epoch).
    pub since: Option<i64>,
    /// Before this time (µs since the epoch).
    pub until: Option<i64>,
}

/// Column list of a search result, in output order.
pub const SEARCH_COLUMNS: &str = "c.session_id, c.seq, coalesce(c.started_at, s.session_started_at) AS time, \
     CASE WHEN c.started_at IS NULL THEN 'session-start' ELSE c.time_source END AS time_kind, \
     c.principal, c.run_as, c.target, c.cwd, c.command";

/// The columns of schema version 2 that `search` adds after [`SEARCH_COLUMNS`]: whom the
/// command ran as, its shell, its kind (`shell` in files written before the column) and the
/// REPL program. `search --include-access` has a `kind` of its own and adds the others.
pub const SEARCH_ADDED_COLUMNS: &str =
    "c.effective_user, c.shell,      coalesce(c.kind, 'shell') AS command_kind, c.program";

/// Alias of the `commands` table in the search query.
pub const COMMANDS_ALIAS: &str = "c";

/// Each command row (`c`) joined with its session's start and end (`s`), for the sort time: what
/// follows `FROM`. The sessions come first, so that a join that does not repartition (the
/// listings' contexts, [`crate::listing::LakeReader::tables`]) builds its table from them, a
/// few rows a session, and streams the commands past it.
///
/// The session's times are named apart from the commands' own (`session_started_at`,
/// `session_ended_at`): DataFusion 55's physical filter pushdown finds a column by its name,
/// so a condition on `s.started_at` was pushed into the scan of `commands` as its
/// `started_at`, and dropped every command without a time of its own (apache/datafusion
/// issues 25296 and 25244 describe the same fault).
pub const COMMANDS_WITH_SESSION_TIMES: &str = "(SELECT session_id, \
     min(started_at) AS session_started_at, max(ended_at) AS session_ended_at \
     FROM sessions GROUP BY session_id) s RIGHT JOIN commands c ON c.session_id = s.session_id";

/// A command's sort time over [`COMMANDS_WITH_SESSION_TIMES`]: its own, else its session's
/// start, else its session's end.
pub const COMMAND_TIME: &str = "coalesce(c.started_at, s.session_started_at, s.session_ended_at)";

/// Result column holding a listing's sort time (after the shown columns).
pub const SORT_TIME: &str = "sort_time";

/// SQL conditions with numbered parameters, bound safely (no value is ever spliced into SQL).
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// The conditions, joined by `AND`.
    pub conditions: Vec<String>,
    /// The values of the placeholders `$1`, `$2`, … in order.
    pub params: Vec<ScalarValue>,
}

impl Query {
    /// Adds `value` as the next parameter and returns its placeholder (`$3`).
    pub fn param(&mut self, value: ScalarValue) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds `condition`; every `?` in it is the one parameter `value`.
    pub fn bind(&mut self, condition: &str, value: ScalarValue) {
        let placeholder = self.param(value);
        self.conditions.push(condition.replace('?', &placeholder));
    }

    /// Adds the who/where/when of `filters` on table alias `alias`, times on `time_expression`.
    pub fn bind_filters(&mut self, filters: &Filter, alias: &str, time_expression: &str) {
        let text = |value: &String| ScalarValue::from(value.as_str());
        let (since, until) = (filters.since, filters.until);
        if let Some(principal) = &filters.principal {
            self.bind(
                &format!("({alias}.principal = ? OR strpos({alias}.principal, ?) > 0)"),
                text(principal),
            );
        }
        if let Some(run_as) = &filters.run_as {
            // A command matches the session's OS user or whom it ran as (after `sudo su -`).
            let condition = if alias == COMMANDS_ALIAS {
                format!("({alias}.run_as = ? OR {alias}.effective_user = ?)")
            } else {
                format!("{alias}.run_as = ?")
            };
            self.bind(&condition, text(run_as));
        }
        if let Some(target) = &filters.target {
            self.bind(&format!("{alias}.target = ?"), text(target));
        }
        if let Some(session) = &filters.session {
            self.bind(&format!("{alias}.session_id = ?"), text(session));
        }
        let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        if let Some(since) = since {
            self.bind(&format!("{time_expression} >= ?"), time(since));
        }
        if let Some(until) = until {
            self.bind(&format!("{time_expression} < ?"), time(until));
        }
    }

    /// Adds the who/where/when of `filter` and `kinds` on the `access` table (alias `a`): the
    /// OS user is Instance Connect's, a target one of the event's.
    pub fn bind_access_filters(&mut self, filter: &Filter, kinds: &[AccessKind]) {
        let text = |value: &String| ScalarValue::from(value.as_str());
        if let Some(principal) = &filter.principal {
            self.bind("(a.principal = ? OR strpos(a.principal, ?) > 0)", text(principal));
        }
        if let Some(os_user) = &filter.run_as {
            self.bind("a.os_user = ?", text(os_user));
        }
        if let Some(target) = &filter.target {
            self.bind("array_has(a.targets, ?)", text(target));
        }
        if let Some(session) = &filter.session {
            self.bind("a.session_id = ?", text(session));
        }
        let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        if let Some(since) = filter.since {
            self.bind("a.event_time >= ?", time(since));
        }
        if let Some(until) = filter.until {
            self.bind("a.event_time < ?", time(until));
        }
        if !kinds.is_empty() {
            let any: Vec<String> = kinds
                .iter()
                .map(|kind| format!("a.kind = {}", self.param(ScalarValue::from(kind.as_str()))))
                .collect();
            self.conditions.push(format!("({})", any.join(" OR ")));
        }
    }

    /// Returns `WHERE …` of the conditions, or nothing when there is none.
    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Returns which files of the lake a query between `since` and `until` reads: a session lasts
/// at most a day (SSM's maxSessionDuration), so files whose `dt` is more than a day before
/// `since` (or after `until`) cannot hold a match.
pub fn partitions_between(since: Option<i64>, until: Option<i64>) -> impl Fn(&str) -> bool {
    let earliest_dt = since.map(|t| paths::partition_date(t.saturating_sub(86_400_000_000)));
    let latest_dt = until.map(|t| paths::partition_date(t.saturating_add(86_400_000_000)));
    move |path: &str| match paths::dt_of(path) {
        Some(dt) => {
            earliest_dt.as_deref().is_none_or(|e| dt >= e)
                && latest_dt.as_deref().is_none_or(|l| dt <= l)
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each filter is one condition with its own placeholder; `run_as` on commands also
    /// matches whom a command ran as; no filter, no WHERE.
    #[test]
    fn test_filters_bind_their_values_as_parameters() {
        assert_eq!(Query::default().where_clause(), "");
        let filter = Filter {
            principal: None,
            run_as: Some("root".into()),
            target: Some("i-0abc'; DROP TABLE commands; --".into()),
            session: Some("alice-0123456789abcdef0".into()),
            since: None,
            until: Some(10),
        };
        let mut query = Query::default();
        query.bind_filters(&filter, COMMANDS_ALIAS, "t");
        assert_eq!(
            query.where_clause(),
            "WHERE (c.run_as = $1 OR c.effective_user = $1) AND c.target = $2 AND \
             c.session_id = $3 AND t < $4"
        );
        assert_eq!(query.params[1], ScalarValue::from("i-0abc'; DROP TABLE commands; --"));
        let mut sessions = Query::default();
        sessions.bind_filters(&filter, "s", "t");
        assert!(sessions.where_clause().starts_with("WHERE s.run_as = $1 AND"));
    }

    /// A file whose day is more than a day from the range cannot hold a match.
    #[test]
    fn test_partitions_between_keep_a_day_either_side() {
        let day = 86_400_000_000i64;
        let start = 20_526 * day; // 2026-03-14
        let keep = partitions_between(Some(start), Some(start + day));
        assert!(keep("commands/dt=2026-03-13/a.parquet"));
        assert!(keep("commands/dt=2026-03-15/a.parquet"));
        assert!(!keep("commands/dt=2026-03-12/a.parquet"));
        assert!(!keep("commands/dt=2026-03-17/a.parquet"));
        assert!(keep("keys/no-partition.json"));
    }
}
