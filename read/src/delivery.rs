//! Which delivery of a session a reader reads. A session may be delivered by several sources
//! (its transcript uploaded to S3 and streamed to CloudWatch Logs): each delivery is a version
//! of its own, and `show`, `show --raw` and `export` read one, the preferred
//! ([`sessionlake_schemas::manifest::session_sources`]) unless asked for another; and
//! whatever a reader lists of one delivery, [`CommandCounts`] says what the others hold that
//! it lacks, so that nothing is left out silently.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher as _;

use datafusion::arrow::array::{AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::prelude::SessionContext;

use sessionlake_schemas::manifest::{self, CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::{SessionSource, paths};
use sessionlake_storage::bail;
use sessionlake_storage::manifest::ChainLink;

use crate::error::{Context as _, ReadError, ReadErrorKind, ReadResult};
use crate::listing::{self, RowSink};
use crate::query::{COMMANDS_WITH_SESSION_TIMES, Query};

/// Returns the live objects of the version of `session` that `source` delivered: its own
/// objects, and the compacted files that hold its rows.
pub fn version_objects<'a>(
    live: &'a BTreeMap<String, ObjectEntry>,
    session: &str,
    source: SessionSource,
) -> Vec<&'a ObjectEntry> {
    let compacted = manifest::compacted_version_source(live.values(), session) == Some(source);
    live.values()
        .filter(|entry| {
            paths::is_session_object(&entry.path, session, source)
                || (compacted
                    && paths::is_compacted(&entry.path)
                    && entry.sessions.iter().any(|id| id == session))
        })
        .collect()
}

/// Returns the source whose delivery of `session` to show: `requested`, else the preferred one
/// (the first of `sources`, [`sessionlake_schemas::manifest::session_sources`]); an error naming
/// the lake (`lake`) when the session has no delivery, or none from `requested`.
pub fn chosen_source(
    sources: &[SessionSource],
    requested: Option<SessionSource>,
    session: &str,
    lake: &dyn std::fmt::Display,
) -> Result<SessionSource, ReadError> {
    let id = sessionlake_schemas::session_id::escaped(session);
    let Some(&preferred) = sources.first() else {
        bail!(
            ReadErrorKind::NotFound,
            "no session {id} in {lake} (list them with `sessionlake sessions`)"
        );
    };
    match requested {
        None => Ok(preferred),
        Some(source) if sources.contains(&source) => Ok(source),
        Some(source) => bail!(
            ReadErrorKind::NotFound,
            "{id} has no delivery from {}: it was delivered by {}",
            source.as_str(),
            sources.iter().map(|source| source.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Returns the shred or retention commit that removed the last of `session`, if one did.
pub fn removed_by<'a>(chain: &'a [ChainLink], session: &str) -> Option<&'a ChainLink> {
    chain.iter().rev().find(|link| {
        matches!(link.manifest.body.action, CommitAction::Shred | CommitAction::Retention)
            && link.manifest.body.removed.iter().any(|entry| {
                entry.kind == ObjectKind::Sessions && entry.sessions.iter().any(|id| id == session)
            })
    })
}

/// How many times each command text matched, by session: in the deliveries a reader does not
/// list (the most any one of them gave) and in the one it lists, for the texts the others
/// matched. Texts compare exactly, or as a stream carries them where one of the two
/// deliveries compared is a stream ([`sessionlake_schemas::comparable_command`]): each way is
/// counted apart and a session's count is the larger. They are held as hashes with this
/// process's random keys.
#[derive(Default)]
pub struct CommandCounts {
    /// Session → the counts of each way of comparing (exactly, as streamed).
    by_session: BTreeMap<String, [TextCounts; 2]>,
    hasher: std::hash::RandomState,
}

/// Text hash → (most matches in one other delivery, matches in the listed one).
type TextCounts = HashMap<u64, (u64, u64)>;

/// Which delivery a [`CommandCounts::add`] counts.
#[derive(Clone, Copy)]
pub enum Counted<'a> {
    /// One delivery not listed; whether a session's texts compare as a stream carries them.
    Other(&'a dyn Fn(&str) -> bool),
    /// The delivery listed.
    Listed,
}

impl CommandCounts {
    /// Counts what `query` (on `commands c` joined with the session times) matches in `ctx`:
    /// the files of one delivery a reader does not list ([`Counted::Other`]), or those of the
    /// delivery it lists, for the texts and sessions the others matched ([`Counted::Listed`]).
    pub async fn add(
        &mut self,
        ctx: &SessionContext,
        query: &Query,
        counted: Counted<'_>,
    ) -> Result<(), ReadError> {
        let mut sink = CountSink { counts: self, counted, of: HashMap::new() };
        sink.run(ctx, query).await?;
        let CountSink { counts, of, .. } = sink;
        for (session, (streamed, texts)) in of {
            let counted = &mut counts.by_session.entry(session).or_default()[usize::from(streamed)];
            for (hash, n) in texts {
                let slot = counted.entry(hash).or_default();
                slot.0 = slot.0.max(n);
            }
        }
        Ok(())
    }

    /// The sessions something was counted of.
    pub fn sessions(&self) -> impl Iterator<Item = &String> {
        self.by_session.keys()
    }

    /// Returns, by session, how many matches the other deliveries hold that the listed one
    /// lacks.
    pub fn more(&self) -> Vec<(String, u64)> {
        let lacking = |texts: &TextCounts| -> u64 {
            texts.values().map(|(other, listed)| other.saturating_sub(*listed)).sum()
        };
        self.by_session
            .iter()
            .map(|(session, ways)| (session.clone(), ways.iter().map(lacking).max().unwrap_or(0)))
            .filter(|(_, more)| *more > 0)
            .collect()
    }
}

/// The rows of a [`CommandCounts::add`] query, counted as they come: one other delivery's into
/// `of` (by session: whether compared as streamed, and the counts), the listed one's into the
/// counts.
struct CountSink<'a, 'b> {
    counts: &'a mut CommandCounts,
    counted: Counted<'b>,
    of: HashMap<String, (bool, HashMap<u64, u64>)>,
}

impl CountSink<'_, '_> {
    async fn run(&mut self, ctx: &SessionContext, query: &Query) -> Result<(), ReadError> {
        let sql = format!(
            "SELECT c.session_id, c.command FROM {COMMANDS_WITH_SESSION_TIMES} {}",
            query.where_clause()
        );
        let frame = ctx.sql(&sql).await.context_kind(ReadErrorKind::Query, "query failed")?;
        let frame = frame.with_param_values(query.params.clone())?;
        listing::stream_frame(frame, self, None).await?;
        Ok(())
    }
}

impl RowSink for CountSink<'_, '_> {
    fn start(&mut self, _schema: &Schema) -> ReadResult<()> {
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> ReadResult<()> {
        let text = |index: usize| {
            let column = batch.column(index);
            datafusion::arrow::compute::cast(column, &DataType::Utf8).map_err(ReadError::sink)
        };
        let (ids, commands) = (text(0)?, text(1)?);
        let (ids, commands) = (ids.as_string::<i32>(), commands.as_string::<i32>());
        let hasher = &self.counts.hasher;
        let hash = |command: &str, streamed: bool| {
            hasher.hash_one(sessionlake_schemas::comparable_command(command, streamed))
        };
        for row in 0..batch.num_rows() {
            let (session, command) = (ids.value(row), commands.value(row));
            match self.counted {
                Counted::Other(streamed) => {
                    if !self.of.contains_key(session) {
                        self.of.insert(session.to_string(), (streamed(session), HashMap::new()));
                    }
                    if let Some((streamed, texts)) = self.of.get_mut(session) {
                        *texts.entry(hash(command, *streamed)).or_default() += 1;
                    }
                }
                Counted::Listed => {
                    let Some(ways) = self.counts.by_session.get_mut(session) else { continue };
                    for (streamed, texts) in [false, true].into_iter().zip(ways.iter_mut()) {
                        if texts.is_empty() {
                            continue;
                        }
                        if let Some((_, listed)) = texts.get_mut(&hash(command, streamed)) {
                            *listed += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
