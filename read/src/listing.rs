//! Listings: a search as a stream of record batches in sort-key order, paged with a
//! [`Cursor`] and, when the result is big, read window by window ([`crate::window`]) so that
//! memory holds one window of sessions, whatever the size of the lake.
//!
//! What comes back goes to a [`RowSink`] (the CLI's printer, a test's vector); the caller gets
//! a [`Listed`]: how many rows matched in all, how many were shown, the next page's cursor.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, Schema, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::prelude::{DataFrame, SessionContext, col};
use datafusion::scalar::ScalarValue;
use futures::StreamExt as _;
use sessionlake_schemas::manifest::ObjectKind;
use sessionlake_storage::keys::Keys;
use sessionlake_storage::store::LakeStore;

use crate::cursor::Cursor;
use crate::error::{Context as _, ReadErrorKind, ReadResult};
use crate::lake_tables::{self, LakeSnapshot};
use crate::query::{COMMANDS_WITH_SESSION_TIMES, Query, SORT_TIME};
use crate::window;

/// What a failed query says, over the engine's error.
const QUERY_FAILED: &str = "query failed";

/// Where a listing's rows go, batch by batch, as they are read.
pub trait RowSink {
    /// Called once, before any batch, with the result's schema.
    fn start(&mut self, schema: &Schema) -> ReadResult<()>;
    /// Takes the next rows.
    fn write(&mut self, batch: &RecordBatch) -> ReadResult<()>;
}

/// What a stream of rows gave: how many, the last of them (for the next cursor), and whether
/// rows beyond the limit were left.
#[derive(Debug, Default)]
pub struct Streamed {
    pub rows: u64,
    /// What the batches read weighed (Arrow's measure of their memory).
    pub bytes: u64,
    last: Option<RecordBatch>,
    more: bool,
}

/// Streams the rows of `frame` to `sink` as they come, at most `limit` of them: memory holds
/// one batch (or one table chunk), whatever the size of the result.
pub async fn stream_frame(
    frame: DataFrame,
    sink: &mut dyn RowSink,
    limit: Option<u64>,
) -> ReadResult<Streamed> {
    let mut stream =
        frame.execute_stream().await.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
    sink.start(&stream.schema())?;
    let mut streamed = Streamed::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
        let weight = u64::try_from(batch.get_array_memory_size()).unwrap_or(u64::MAX);
        streamed.bytes = streamed.bytes.saturating_add(weight);
        let room = limit.map_or(u64::MAX, |limit| limit.saturating_sub(streamed.rows));
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(batch.num_rows());
        streamed.more = take < batch.num_rows();
        if take > 0 {
            let shown = batch.slice(0, take);
            sink.write(&shown)?;
            streamed.rows += take as u64;
            streamed.last = Some(shown.slice(take - 1, 1));
        }
        if streamed.more {
            break;
        }
    }
    Ok(streamed)
}

/// The page a listing is asked for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Start after this cursor's row (a token [`Cursor::encode`] made).
    pub after: Option<String>,
    /// At most this many rows.
    pub limit: Option<u64>,
    /// Rows one query reads, about: a bigger page is read window by window.
    pub chunk: u64,
}

/// What a listing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Rows that match in all (counted apart when the page is not the whole result).
    pub matched: u64,
    /// Rows given to the sink.
    pub shown: u64,
    /// The cursor of the next page, when rows were left.
    pub next: Option<String>,
}

/// A listing in sort-key order that pages with a cursor: `search`, `sessions`, `access` and
/// `search --include-access`.
#[derive(Debug, Clone)]
pub struct Listing {
    /// What the cursor pages.
    pub name: &'static str,
    /// `SELECT <the view's columns>, <time> AS sort_time FROM …`, without conditions.
    pub select: String,
    /// The sort time; nulls sort first.
    pub time_expression: &'static str,
    /// The rest of the sort key, as SQL and as result columns; with the time, unique.
    pub key_expressions: &'static [&'static str],
    pub key_columns: &'static [&'static str],
}

impl Listing {
    pub fn sql(&self, query: &Query, tail: &str) -> String {
        format!("{} {} {tail}", self.select, query.where_clause())
    }

    /// Gives `sink` the page `page` asks for and returns how many rows match in all and the
    /// cursor of the next page.
    ///
    /// A page of at most `page.chunk` rows is one query whose `LIMIT` keeps only the top rows
    /// while it scans. A bigger result, with `lake` given, is read window by window
    /// ([`crate::window`]) so that memory holds one window; without `lake`, one query.
    pub async fn run(
        &self,
        ctx: &SessionContext,
        lake: Option<&LakeReader>,
        query: Query,
        page: &PageRequest,
        sink: &mut dyn RowSink,
    ) -> ReadResult<Listed> {
        let after = page.after.as_deref().map(|t| Cursor::decode(t, self.name)).transpose()?;
        let streamed = match lake {
            Some(lake) if page.limit.is_none_or(|limit| limit > page.chunk) => {
                self.run_windows(ctx, lake, &query, after.as_ref(), page, sink).await?
            }
            _ => self.run_query(ctx, &query, after.as_ref(), None, page.limit, sink).await?,
        };
        let next = match (&streamed.last, streamed.more) {
            (Some(last), true) => {
                Some(Cursor::of_row(self.name, last, 0, SORT_TIME, self.key_columns)?.encode())
            }
            _ => None,
        };
        let matched = if page.limit.is_some() || page.after.is_some() {
            count_rows(ctx, &self.sql(&query, ""), query.params).await?
        } else {
            streamed.rows
        };
        Ok(Listed { matched, shown: streamed.rows, next })
    }

    /// Streams the rows after `after` (from the start without one) whose sort time is in
    /// `range` (all without one), in sort-key order, at most `limit` of them.
    async fn run_query(
        &self,
        ctx: &SessionContext,
        query: &Query,
        after: Option<&Cursor>,
        range: Option<window::Range>,
        limit: Option<u64>,
        sink: &mut dyn RowSink,
    ) -> ReadResult<Streamed> {
        let mut query = self.after(query, after)?;
        let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        match range {
            None => {}
            Some(window::Range::Untimed) => {
                query.conditions.push(format!("({}) IS NULL", self.time_expression));
            }
            Some(window::Range::Timed { from, until }) => {
                query.bind(&format!("({}) >= ?", self.time_expression), time(from));
                if let Some(until) = until {
                    query.bind(&format!("({}) < ?", self.time_expression), time(until));
                }
            }
        }
        // One row past the limit tells whether there is a next page.
        let limit_sql = limit.map(|n| format!(" LIMIT {}", n.saturating_add(1)));
        let order = format!(
            "ORDER BY {} NULLS FIRST, {}{}",
            self.time_expression,
            self.key_expressions.join(", "),
            limit_sql.unwrap_or_default()
        );
        let frame = ctx
            .sql(&self.sql(&query, &order))
            .await
            .context_kind(ReadErrorKind::Query, QUERY_FAILED)?
            .with_param_values(query.params)?;
        stream_frame(frame, sink, limit).await
    }

    /// Returns `query` with the condition of the rows after `after`.
    fn after(&self, query: &Query, after: Option<&Cursor>) -> ReadResult<Query> {
        let mut query = query.clone();
        if let Some(cursor) = after {
            let condition =
                cursor.condition(self.time_expression, self.key_expressions, |v| query.param(v))?;
            query.conditions.push(condition);
        }
        Ok(query)
    }

    /// Streams the rows after `after`, at most `page.limit`, one sort-time window at a time,
    /// each window a query over the files of the sessions that reach into it.
    ///
    /// A result of at most `page.chunk` rows (most searches: a pattern, a person, a day) is read
    /// in one pass, in any order, and sorted in memory, which holds no more than a window would:
    /// the pass stops at the `chunk + 1`st row, and only then are windows read. Windows are cut
    /// from every row of the lake, so such a search would otherwise be one query per `chunk`
    /// rows of the lake.
    async fn run_windows(
        &self,
        ctx: &SessionContext,
        lake: &LakeReader,
        query: &Query,
        after: Option<&Cursor>,
        page: &PageRequest,
        sink: &mut dyn RowSink,
    ) -> ReadResult<Streamed> {
        if let Some((frame, _held)) = self.at_most(ctx, query, after, page.chunk).await? {
            return stream_frame(frame, sink, page.limit).await;
        }
        let spans = session_spans(ctx, self.time_expression).await?;
        let mut streamed = Streamed::default();
        let mut planner = window::Planner::new(&spans);
        let mut rows = page.chunk;
        while let Some(window) = planner.next_window(rows) {
            let room = page.limit.map(|limit| limit - streamed.rows);
            let ctx = lake.tables(Some(&window.sessions))?;
            let part = self.run_query(&ctx, query, after, Some(window.range), room, sink).await?;
            rows = window::next_rows(rows, window.rows, part.bytes, page.chunk);
            streamed.rows += part.rows;
            streamed.bytes = streamed.bytes.saturating_add(part.bytes);
            if part.last.is_some() {
                streamed.last = part.last;
            }
            if part.more {
                streamed.more = true;
                break;
            }
        }
        Ok(streamed)
    }

    /// Reads the rows after `after` in any order and returns them sorted, with the reservation
    /// of the query's memory that holds them, unless there are more than `chunk` of them: then
    /// `None`, once the `chunk + 1`st is read.
    async fn at_most(
        &self,
        ctx: &SessionContext,
        query: &Query,
        after: Option<&Cursor>,
        chunk: u64,
    ) -> ReadResult<Option<(DataFrame, MemoryReservation)>> {
        let query = self.after(query, after)?;
        let sql = self.sql(&query, &format!("LIMIT {}", chunk.saturating_add(1)));
        let frame = ctx
            .sql(&sql)
            .await
            .context_kind(ReadErrorKind::Query, QUERY_FAILED)?
            .with_param_values(query.params)?;
        let mut stream =
            frame.execute_stream().await.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
        let schema = stream.schema();
        // The rows held count against the query's memory limit, as a window's sort would, and
        // are sorted under the same limit, never spilled.
        let runtime = ctx.runtime_env();
        let held = MemoryConsumer::new("search rows").register(&runtime.memory_pool);
        let (mut batches, mut rows) = (Vec::new(), 0u64);
        while let Some(batch) = stream.next().await {
            let batch = batch.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
            rows = rows.saturating_add(batch.num_rows() as u64);
            if rows > chunk {
                return Ok(None);
            }
            held.try_grow(batch.get_array_memory_size())
                .context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
            batches.push(batch);
        }
        let table = MemTable::try_new(schema, vec![batches])
            .context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
        let order = std::iter::once(col(SORT_TIME).sort(true, true))
            .chain(self.key_columns.iter().map(|key| col(*key).sort(true, false)))
            .collect();
        let rows = SessionContext::new_with_config_rt(lake_tables::session_config(), runtime)
            .read_table(Arc::new(table))
            .and_then(|rows| rows.sort(order))
            .context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
        Ok(Some((rows, held)))
    }
}

/// The lake's files as a search reads them, to open tables over some of its sessions.
pub struct LakeReader {
    pub store: LakeStore,
    pub keys: Keys,
    pub snapshot: LakeSnapshot,
    /// Files the search reads at all (partitions, preferred sources).
    pub keep: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// The one session searched: no other session's file is opened.
    pub only: Option<String>,
    /// Most memory a query may hold.
    pub memory_limit: usize,
}

impl LakeReader {
    /// Returns a context with the tables over the kept files of `sessions` (all without); the
    /// `access` table is never narrowed to sessions.
    pub fn tables(&self, sessions: Option<&HashSet<String>>) -> ReadResult<SessionContext> {
        self.tables_keeping(sessions, &*self.keep)
    }

    /// Returns a context like [`LakeReader::tables`] over the files `keep` names instead of the
    /// reader's own.
    pub fn tables_keeping(
        &self,
        sessions: Option<&HashSet<String>>,
        keep: &dyn Fn(&str) -> bool,
    ) -> ReadResult<SessionContext> {
        let ctx = lake_tables::new_context(self.memory_limit)?;
        // Joins build on the sessions and stream the commands past them, in the files' own
        // partitions: hashing every command row into partitions first costs CPU, and reads ahead
        // of a `LIMIT` (`Listing::at_most` stops at its chunk).
        ctx.state_ref().write().config_mut().options_mut().optimizer.repartition_joins = false;
        let of_sessions = |path: &str| {
            let Some(entry) = self.snapshot.live.get(path) else {
                return false;
            };
            // Only `commands` and `sessions` files are per session (`access` files are not).
            if !matches!(entry.kind, ObjectKind::Commands | ObjectKind::Sessions) {
                return true;
            }
            let wanted = |id: &String| {
                sessions.is_none_or(|sessions| sessions.contains(id))
                    && self.only.as_ref().is_none_or(|only| only == id)
            };
            entry.sessions.iter().any(wanted)
        };
        let keep = |path: &str| keep(path) && of_sessions(path);
        lake_tables::register(&ctx, &self.store, &self.snapshot, self.keys.clone(), &keep)?;
        Ok(ctx)
    }
}

/// Reads each session's range of sort times and its number of command rows, on the tables of
/// `ctx`, from plaintext columns only (no data key is used).
pub async fn session_spans(
    ctx: &SessionContext,
    time_expression: &str,
) -> ReadResult<Vec<window::Span>> {
    let sql = format!(
        "SELECT c.session_id, min({time_expression}) AS lo, max({time_expression}) AS hi, \
         count(*) AS n, count({time_expression}) AS timed FROM {COMMANDS_WITH_SESSION_TIMES} \
         GROUP BY c.session_id"
    );
    let frame = ctx.sql(&sql).await.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
    let batches = frame.collect().await.context_kind(ReadErrorKind::Query, QUERY_FAILED)?;
    let mut spans = Vec::new();
    for batch in &batches {
        let ids = batch.column(0).as_string_opt::<i32>();
        let ids = ids.context_kind(ReadErrorKind::Format, "session_id is not text")?;
        let time = |column: usize| {
            batch
                .column(column)
                .as_primitive_opt::<TimestampMicrosecondType>()
                .context_kind(ReadErrorKind::Format, "sort time is not a time in µs")
        };
        let (lo, hi) = (time(1)?, time(2)?);
        let count = |column: usize| {
            let counts = batch.column(column).as_primitive_opt::<Int64Type>();
            counts.context_kind(ReadErrorKind::Format, "count is not a number")
        };
        let (rows, timed) = (count(3)?, count(4)?);
        for row in 0..batch.num_rows() {
            let times =
                (lo.is_valid(row) && hi.is_valid(row)).then(|| (lo.value(row), hi.value(row)));
            spans.push(window::Span {
                session: ids.value(row).to_string(),
                times,
                rows: u64::try_from(rows.value(row)).unwrap_or_default(),
                untimed: timed.value(row) < rows.value(row),
            });
        }
    }
    Ok(spans)
}

/// Counts the rows of `sql`, whose placeholders are bound to `params`.
pub async fn count_rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<ScalarValue>,
) -> ReadResult<u64> {
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM ({sql}) AS matched"))
        .await
        .context_kind(ReadErrorKind::Query, "count failed")?
        .with_param_values(params)?
        .collect()
        .await
        .context_kind(ReadErrorKind::Query, "count failed")?;
    let count = batches
        .first()
        .and_then(|batch| batch.column(0).as_primitive_opt::<Int64Type>())
        .filter(|counts| !counts.is_empty())
        .map(|counts| counts.value(0))
        .context_kind(ReadErrorKind::Format, "count returned no row")?;
    Ok(u64::try_from(count).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray, UInt32Array};
    use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

    use super::*;

    /// Collects the rows' `session_id:seq` as a printer would print them.
    #[derive(Default)]
    struct Rows(Vec<String>);

    impl RowSink for Rows {
        fn start(&mut self, schema: &Schema) -> ReadResult<()> {
            sessionlake_storage::ensure!(
                schema.field_with_name("seq").is_ok(),
                ReadErrorKind::Format,
                "no seq column"
            );
            Ok(())
        }

        fn write(&mut self, batch: &RecordBatch) -> ReadResult<()> {
            let column =
                |name| batch.column_by_name(name).context_kind(ReadErrorKind::Format, name);
            let ids = column("session_id")?.as_string::<i32>();
            let seqs = column("seq")?;
            let seqs = seqs.as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
            for row in 0..batch.num_rows() {
                self.0.push(format!("{}:{}", ids.value(row), seqs.value(row)));
            }
            Ok(())
        }
    }

    /// Five rows: two untimed (sorted first, by key), three timed, one time shared by two.
    fn context() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("session_id", DataType::Utf8, false),
            Field::new("seq", DataType::UInt32, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["b", "a", "a", "b", "a"])),
                Arc::new(UInt32Array::from(vec![0, 1, 0, 1, 2])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(20), None, Some(20), None, Some(5)])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        let ctx = SessionContext::new();
        ctx.register_batch("rows", batch).expect("register");
        ctx
    }

    fn listing() -> Listing {
        Listing {
            name: "rows",
            select: format!("SELECT r.session_id, r.seq, r.t AS {SORT_TIME} FROM rows r"),
            time_expression: "r.t",
            key_expressions: &["r.session_id", "r.seq"],
            key_columns: &["session_id", "seq"],
        }
    }

    #[tokio::test]
    async fn test_pages_cover_every_row_once_in_sort_key_order() {
        let ctx = context();
        let mut pages = Vec::new();
        let mut page = PageRequest { after: None, limit: Some(2), chunk: 100 };
        loop {
            let mut sink = Rows::default();
            let listed =
                listing().run(&ctx, None, Query::default(), &page, &mut sink).await.expect("run");
            assert_eq!(listed.matched, 5);
            assert_eq!(listed.shown, sink.0.len() as u64);
            pages.push(sink.0);
            match listed.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, [vec!["a:1", "b:1"], vec!["a:2", "a:0"], vec!["b:0"]]);
    }

    #[tokio::test]
    async fn test_whole_listing_and_a_cursor_of_another_listing() {
        let ctx = context();
        let mut sink = Rows::default();
        let whole = PageRequest { after: None, limit: None, chunk: 100 };
        let listed = listing().run(&ctx, None, Query::default(), &whole, &mut sink).await;
        assert_eq!(listed.expect("run"), Listed { matched: 5, shown: 5, next: None });
        assert_eq!(sink.0, ["a:1", "b:1", "a:2", "a:0", "b:0"]);

        let first = PageRequest { after: None, limit: Some(1), chunk: 100 };
        let mut sink = Rows::default();
        let listed = listing().run(&ctx, None, Query::default(), &first, &mut sink).await;
        let next = listed.expect("run").next;
        let mut other = listing();
        other.name = "others";
        let after = PageRequest { after: next, ..first };
        let refused = other.run(&ctx, None, Query::default(), &after, &mut sink).await;
        let error = format!("{:#}", refused.expect_err("another listing's cursor"));
        assert!(error.contains("the cursor pages rows, not others"), "{error}");
    }
}
