//! Merging table files into compacted `commands` and `sessions` files: the one primitive every
//! writer that merges or removes session rows uses (`sessionlake compact`, retention, shred,
//! ingest replacing a version).
//!
//! [`merge`] reads the rows of several files of one table (decrypting a `commands` file with
//! its data key, in memory), drops the sessions asked, sorts the rest by (session_id, seq) and
//! writes them as one file with the lake's layout: row groups of [`COMPACTED_ROW_GROUP_ROWS`]
//! rows, so a one-session lookup reads one row group (statistics and the bloom filter on
//! `session_id` prune the others), page index, zstd 3, the sensitive columns encrypted under a
//! fresh data key. [`LakeFiles::write_compacted`] is the same over the lake: it reads committed
//! objects (hash-checked), unwraps their keys, takes a fresh data key (bound to the lake, the file and the role,
//! like an `access` file's) wrapped under a key of the file's own whose record the lake's
//! provider wraps ([`file_key`]), and stores the result
//! under a new compacted name ([`paths::compacted_object`]); rewriting a file without some
//! sessions is a merge of that one file.
//!
//! Nothing decrypted is written anywhere but into the new file's encrypted columns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::cast::AsArray as _;
use arrow_array::{Array as _, ArrayRef, RecordBatch};
use arrow_ord::sort::{SortColumn, lexsort_to_indices};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::SortingColumn;
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_schemas::envelope::{CONTEXT_ROLE, ROLE_COMMANDS, key_context};
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_schemas::{ENCRYPTED_COLUMNS, Table, columns, paths};
use sessionlake_storage::DataKey;
use sessionlake_storage::keys::{KeyProvider, Keys};
use sessionlake_storage::session_keys::SessionKey;
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::transaction;

use crate::parquet_io::{
    BLOOM_FILTER_COLUMNS, commands_properties, decryption, encryption, properties,
};

/// Rows per row group of a compacted file. Sorted by session, a session of a few hundred
/// commands sits in one row group; smaller groups make a lookup decrypt and decompress less,
/// larger ones make the footer smaller (BENCHMARKS.md, "Compaction").
pub const COMPACTED_ROW_GROUP_ROWS: usize = 16 * 1024;

/// Rows per data page of a compacted file at most: sorted by session, the page index lets a
/// lookup skip the pages of other sessions within its row group.
pub const COMPACTED_PAGE_ROWS: usize = 1024;

/// Returns `properties` with the page size of a compacted file.
pub(crate) fn compacted_properties(
    properties: parquet::file::properties::WriterProperties,
) -> parquet::file::properties::WriterProperties {
    properties.into_builder().set_data_page_row_count_limit(COMPACTED_PAGE_ROWS).build()
}

/// Stored bytes of input merged into one compacted file at most (the whole input is decrypted
/// in memory while it is merged; a partition with more becomes several files).
pub const MAX_COMPACTED_INPUT_BYTES: u64 = 128 * 1024 * 1024;

/// A table whose files compaction merges into compacted files (the `access` table's files
/// are rewritten one by one, never merged): what it is as a table is [`Table`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergedTable {
    /// `commands`: one row per command, sensitive columns encrypted.
    Commands,
    /// `sessions`: one row per session version, no encrypted column.
    Sessions,
}

impl MergedTable {
    /// Returns the merged table of a manifest entry's kind.
    pub fn of(kind: ObjectKind) -> Option<MergedTable> {
        match Table::of(kind)? {
            Table::Commands => Some(MergedTable::Commands),
            Table::Sessions => Some(MergedTable::Sessions),
            Table::Access => None,
        }
    }

    /// Returns the table.
    pub fn table(self) -> Table {
        match self {
            MergedTable::Commands => Table::Commands,
            MergedTable::Sessions => Table::Sessions,
        }
    }

    /// Returns the manifest kind of the table's files.
    pub fn kind(self) -> ObjectKind {
        self.table().kind()
    }

    /// Returns the table's folder.
    pub fn dir(self) -> &'static str {
        self.table().dir()
    }

    fn schema(self) -> SchemaRef {
        self.table().arrow_schema()
    }

    /// Columns the rows are sorted by.
    fn sort_columns(self) -> &'static [&'static str] {
        match self {
            MergedTable::Commands => &[columns::SESSION_ID, columns::SEQ],
            MergedTable::Sessions => &[columns::SESSION_ID, columns::STARTED_AT],
        }
    }
}

/// A failure to merge or write a table file, naming the object and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {reason}")]
pub struct CompactError {
    object: String,
    reason: String,
}

impl CompactError {
    fn new(object: &str, reason: impl std::fmt::Display) -> CompactError {
        CompactError { object: object.to_string(), reason: reason.to_string() }
    }
}

/// One file to merge: its name (for errors), its stored bytes, the sessions its manifest entry
/// lists, and for a `commands` file its data key.
pub struct Input {
    /// Lake path.
    pub object: String,
    /// Stored bytes.
    pub bytes: Bytes,
    /// The sessions it holds rows of, as its committed manifest entry lists them (one for a
    /// session's own file; sorted for a compacted file, whose rows are sorted by session).
    pub sessions: Vec<String>,
    /// Data key of the encrypted columns (`commands` files).
    pub key: Option<DataKey>,
}

/// A merged file.
#[derive(Debug)]
pub struct Merged {
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
    /// The sessions it holds rows of, sorted.
    pub sessions: Vec<String>,
    /// Rows.
    pub rows: usize,
}

/// Merges the rows of `inputs` (all of `table`) except those of the sessions `without` names into
/// one file, sorted by session; a `commands` file's sensitive columns are encrypted under `key`
/// with `key_metadata` (the wrapped key) in the footer. Returns `None` when no row is left.
///
/// A streaming merge, one session at a time in session order: each input is opened when its
/// first session comes, read as far as that session's rows go, and dropped once read to its
/// end. Decoded rows in memory are one session's and a batch of each compacted input being
/// read, whatever the number of inputs (issue 22: compaction in bounded memory). A file holding
/// rows of a session its entry does not list, or not sorted by session, is an error naming it.
pub fn merge(
    table: MergedTable,
    inputs: Vec<Input>,
    without: &BTreeSet<String>,
    key: Option<(&DataKey, Vec<u8>)>,
    out_name: &str,
) -> Result<Option<Merged>, CompactError> {
    let schema = table.schema();
    let fail = |reason: &dyn std::fmt::Display| CompactError::new(out_name, reason);
    // The inputs holding each session, in session order.
    let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, input) in inputs.iter().enumerate() {
        for session in input.sessions.iter().filter(|id| !without.contains(*id)) {
            holders.entry(session.clone()).or_default().push(index);
        }
    }
    let encryption = match (table, key) {
        (MergedTable::Commands, Some((key, metadata))) => {
            Some(encryption(key, metadata, &ENCRYPTED_COLUMNS).map_err(|e| fail(&e))?)
        }
        (MergedTable::Commands, None) => return Err(fail(&"a commands file needs a data key")),
        (MergedTable::Sessions, _) => None,
    };
    let sorting = table
        .sort_columns()
        .iter()
        .map(|name| SortingColumn {
            column_idx: schema.index_of(name).map_or(0, |index| index as i32),
            descending: false,
            nulls_first: true,
        })
        .collect();
    let properties = match table {
        MergedTable::Commands => commands_properties,
        MergedTable::Sessions => properties,
    };
    let properties = compacted_properties(properties(
        sorting,
        &BLOOM_FILTER_COLUMNS,
        encryption,
        COMPACTED_ROW_GROUP_ROWS,
    ));
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&schema), Some(properties))
        .map_err(|e| fail(&e))?;
    let mut cursors: Vec<Option<Cursor>> =
        inputs.into_iter().map(|input| Some(Cursor::new(input))).collect();
    let (mut sessions, mut rows) = (Vec::new(), 0);
    for (session, holding) in &holders {
        let mut found = Vec::new();
        for &index in holding {
            let Some(cursor) = cursors[index].as_mut() else { continue };
            found.extend(cursor.take_session(table, &schema, session, without)?);
            if cursor.holds_no_later_session(session) {
                // Read to its end: what is left must be of sessions that go.
                if let Some(mut done) = cursors[index].take() {
                    done.finish(table, &schema, without)?;
                }
            }
        }
        let sorted = sort_session(table, &schema, &found).map_err(|e| fail(&e))?;
        if sorted.num_rows() == 0 {
            continue;
        }
        rows += sorted.num_rows();
        sessions.push(session.clone());
        writer.write(&sorted).map_err(|e| fail(&e))?;
    }
    for mut cursor in cursors.into_iter().flatten() {
        cursor.finish(table, &schema, without)?;
    }
    if rows == 0 {
        return Ok(None);
    }
    writer.close().map_err(|e| fail(&e))?;
    Ok(Some(Merged { bytes, sessions, rows }))
}

/// Returns one session's rows (`batches`, of the table's schema) sorted by the table's order.
fn sort_session(
    table: MergedTable,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let all = arrow_select::concat::concat_batches(schema, batches)?;
    if all.num_rows() < 2 {
        return Ok(all);
    }
    let sort: Vec<SortColumn> = table
        .sort_columns()
        .iter()
        .filter_map(|name| {
            Some(SortColumn { values: all.column_by_name(name).cloned()?, options: None })
        })
        .collect();
    let order = lexsort_to_indices(&sort, None)?;
    arrow_select::take::take_record_batch(&all, &order)
}

/// One input being read, in session order: opened at its first session, its rows taken
/// session by session.
struct Cursor {
    input: Input,
    /// Its reader, once opened.
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    /// Whether it was opened.
    opened: bool,
    /// Rows read and not taken yet (of later sessions).
    pending: Option<RecordBatch>,
}

impl Cursor {
    fn new(input: Input) -> Cursor {
        Cursor { input, reader: None, opened: false, pending: None }
    }

    fn fail(&self, reason: &dyn std::fmt::Display) -> CompactError {
        CompactError::new(&self.input.object, reason)
    }

    /// Whether no session of its list comes after `session` (it has been read to its end).
    fn holds_no_later_session(&self, session: &str) -> bool {
        self.input.sessions.last().is_none_or(|last| last.as_str() <= session)
    }

    /// Returns the next batch of rows, in the table's schema; `None` at the end.
    fn next_batch(
        &mut self,
        table: MergedTable,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>, CompactError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        if !self.opened {
            self.opened = true;
            let (reader, by_session) = open(table, schema, &self.input)?;
            if by_session || self.input.sessions.len() < 2 {
                self.reader = Some(reader);
            } else {
                // Rows of several sessions not sorted by session (a file written by something
                // else than a merge): sorted whole, in memory, as one run.
                let mut batches = Vec::new();
                for batch in reader {
                    let batch = batch.map_err(|e| self.fail(&e))?;
                    batches.push(in_schema(schema, &batch).map_err(|e| self.fail(&e))?);
                }
                let sorted = sort_session(table, schema, &batches).map_err(|e| self.fail(&e))?;
                return Ok((sorted.num_rows() > 0).then_some(sorted));
            }
        }
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        match reader.next() {
            None => Ok(None),
            Some(batch) => {
                let batch = batch.map_err(|e| self.fail(&e))?;
                Ok(Some(in_schema(schema, &batch).map_err(|e| self.fail(&e))?))
            }
        }
    }

    /// Takes the rows of `session` (the next session of its list that does not go): rows of
    /// sessions that go are skipped, a row of a later session ends it (kept for its turn, in
    /// this batch or the next), and a row of an earlier session that stays is an error (the
    /// file holds a session its entry does not list, or is not sorted by session).
    fn take_session(
        &mut self,
        table: MergedTable,
        schema: &SchemaRef,
        session: &str,
        without: &BTreeSet<String>,
    ) -> Result<Vec<RecordBatch>, CompactError> {
        let mut taken = Vec::new();
        while let Some(batch) = self.next_batch(table, schema)? {
            let ids = session_column(&batch).map_err(|e| self.fail(&e))?;
            let mut row = 0;
            while row < ids.len() {
                if ids.is_null(row) {
                    return Err(self.fail(&format!("row {row} of a batch has no session_id")));
                }
                let id = ids.value(row);
                if id == session {
                    let start = row;
                    while row < ids.len() && !ids.is_null(row) && ids.value(row) == session {
                        row += 1;
                    }
                    taken.push(batch.slice(start, row - start));
                } else if without.contains(id) {
                    row += 1;
                } else if id > session {
                    self.pending = Some(batch.slice(row, ids.len() - row));
                    return Ok(taken);
                } else {
                    return Err(self.unexpected(id, session));
                }
            }
        }
        Ok(taken)
    }

    /// Reads what is left: only rows of sessions that go may be.
    fn finish(
        &mut self,
        table: MergedTable,
        schema: &SchemaRef,
        without: &BTreeSet<String>,
    ) -> Result<(), CompactError> {
        while let Some(batch) = self.next_batch(table, schema)? {
            let ids = session_column(&batch).map_err(|e| self.fail(&e))?;
            for row in 0..ids.len() {
                if ids.is_null(row) || !without.contains(ids.value(row)) {
                    return Err(self.unexpected(ids.value(row), "its end"));
                }
            }
        }
        Ok(())
    }

    fn unexpected(&self, found: &str, before: &str) -> CompactError {
        self.fail(&format!(
            "it holds rows of session {} before {}, which its manifest entry does not list in \
             that order (it lists {} sessions)",
            sessionlake_schemas::session_id::escaped(found),
            sessionlake_schemas::session_id::escaped(before),
            self.input.sessions.len()
        ))
    }
}

/// Returns the `session_id` column of `batch`.
fn session_column(batch: &RecordBatch) -> Result<&arrow_array::StringArray, &'static str> {
    batch
        .column_by_name(columns::SESSION_ID)
        .and_then(|column| column.as_string_opt::<i32>())
        .ok_or("column session_id is not text")
}

/// Opens `input` for reading with its data key (a `commands` file), checking its schema; says
/// whether its rows are sorted by session (its first sorting column is `session_id`).
fn open(
    table: MergedTable,
    schema: &SchemaRef,
    input: &Input,
) -> Result<(parquet::arrow::arrow_reader::ParquetRecordBatchReader, bool), CompactError> {
    let fail = |reason: &dyn std::fmt::Display| CompactError::new(&input.object, reason);
    let mut options = ArrowReaderOptions::new();
    if table == MergedTable::Commands {
        let Some(key) = &input.key else {
            return Err(fail(&"no data key to open it with"));
        };
        let decryption = decryption(key, &ENCRYPTED_COLUMNS).map_err(|e| fail(&e))?;
        options = options.with_file_decryption_properties(decryption);
    }
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(input.bytes.clone(), options)
            .map_err(|e| fail(&e))?;
    sessionlake_schemas::validate_schema(schema, builder.schema())
        .map_err(|why| fail(&format!("wrong schema: {why}")))?;
    let session_column = schema.index_of(columns::SESSION_ID).ok();
    let by_session = builder.metadata().row_groups().iter().all(|group| {
        let first = group.sorting_columns().and_then(|sorting| sorting.first());
        first.is_some_and(|column| Some(column.column_idx as usize) == session_column)
    });
    Ok((builder.build().map_err(|e| fail(&e))?, by_session))
}

/// Returns `batch` with the table's columns in the table's order (a file may order them
/// otherwise; a column added since it was written is null).
fn in_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, String> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Ok(Arc::clone(column)),
            None if sessionlake_schemas::ADDED_COLUMNS.contains(&field.name().as_str()) => {
                Ok(arrow_array::new_null_array(field.data_type(), batch.num_rows()))
            }
            None => Err(format!("column {} is missing", field.name())),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| e.to_string())
}

/// Reads the rows of one input that `without` does not name, in the table's schema.
#[cfg(test)]
fn read_rows(
    table: MergedTable,
    schema: &SchemaRef,
    input: Input,
    without: &BTreeSet<String>,
) -> Result<Vec<RecordBatch>, CompactError> {
    let fail = |reason: &dyn std::fmt::Display| CompactError::new(&input.object, reason);
    let mut batches = Vec::new();
    for batch in open(table, schema, &input)?.0 {
        let batch = in_schema(schema, &batch.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
        let ids = session_column(&batch).map_err(|e| fail(&e))?;
        let keep: arrow_array::BooleanArray =
            ids.iter().map(|id| Some(id.is_some_and(|id| !without.contains(id)))).collect();
        let kept =
            arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| fail(&e))?;
        if kept.num_rows() > 0 {
            batches.push(kept);
        }
    }
    Ok(batches)
}

pub use sessionlake_storage::transaction::{Writer, new_version, version_time};

/// The lake, as the writers of compacted files see it.
pub struct LakeFiles<'a> {
    /// Where the files are.
    pub store: &'a LakeStore,
    /// Unwraps the data keys of the files read.
    pub keys: &'a Keys,
    /// Makes the data key of each file written (KMS or the keyring).
    pub provider: &'a dyn KeyProvider,
    /// The lake's id, named in every new key's context.
    pub lake_id: &'a str,
    /// Who writes: the names of the files it writes tell sweeps whether it holds the lease.
    pub writer: Writer,
}

impl LakeFiles<'_> {
    /// Merges the committed files `inputs` (all of one table and one `dt`, one version of each
    /// session), without the sessions `without` names, into one new compacted file; returns it
    /// (every session it holds listed) with its key record, or `None` when no row is left.
    /// Nothing is committed: the caller commits both (or deletes them).
    pub async fn write_compacted(
        &self,
        table: MergedTable,
        dt: &str,
        inputs: &[ObjectEntry],
        without: &BTreeSet<String>,
    ) -> Result<Option<Compacted>, CompactError> {
        let path = paths::compacted_object(table.dir(), dt, &self.writer.new_version());
        let mut read = Vec::with_capacity(inputs.len());
        for entry in inputs {
            let fail = |reason: &dyn std::fmt::Display| CompactError::new(&entry.path, reason);
            let bytes = self.store.get_committed(entry).await.map_err(|e| fail(&e))?;
            let key = match (table, &entry.key) {
                (MergedTable::Sessions, _) => None,
                (MergedTable::Commands, Some(wrapped)) => {
                    Some(self.keys.decrypt(wrapped).await.map_err(|e| fail(&e))?)
                }
                (MergedTable::Commands, None) => {
                    return Err(fail(&"its manifest entry has no key"));
                }
            };
            read.push(Input {
                object: entry.path.clone(),
                bytes,
                sessions: entry.sessions.clone(),
                key,
            });
        }
        // A `commands` file's data key is wrapped under a key of its own (a file key), whose
        // record the provider wraps: deleting the record with the file shreds every copy, and
        // a rekey re-wraps the record.
        let name = paths::compacted_key_subject(&path).unwrap_or_default();
        let keyed = match table {
            MergedTable::Commands => Some(
                file_key(
                    self.store,
                    self.provider,
                    &path,
                    key_context(self.lake_id, name, ROLE_COMMANDS),
                )
                .await
                .map_err(|e| CompactError::new(&path, format!("no data key: {e}")))?,
            ),
            MergedTable::Sessions => None,
        };
        let key = keyed.as_ref().map(|keyed| (keyed.key.clone(), keyed.metadata.clone()));
        let without = without.clone();
        let out_name = path.clone();
        let merged = tokio::task::spawn_blocking(move || {
            let key = key.as_ref().map(|(key, metadata)| (key, metadata.clone()));
            merge(table, read, &without, key, &out_name)
        })
        .await
        .map_err(|e| CompactError::new(&path, format!("merge task failed: {e}")));
        let stored = match merged {
            Ok(Ok(Some(merged))) => {
                let stored = self.store.put(&path, Bytes::from(merged.bytes)).await;
                stored
                    .map(|stored| (stored, merged.sessions))
                    .map_err(|e| CompactError::new(&path, e))
            }
            Ok(Ok(None)) => {
                self.discard(keyed.as_ref()).await;
                return Ok(None);
            }
            Ok(Err(error)) | Err(error) => Err(error),
        };
        let (stored, sessions) = match stored {
            Ok(stored) => stored,
            Err(error) => {
                self.discard(keyed.as_ref()).await;
                return Err(error);
            }
        };
        let (wrapped, key_record) = match keyed {
            Some(keyed) => (Some(keyed.wrapped), Some(keyed.record)),
            None => (None, None),
        };
        let file =
            ObjectEntry { key: wrapped.map(Box::new), ..stored.into_entry(table.kind(), sessions) };
        Ok(Some(Compacted { file, key_record }))
    }

    /// Deletes the key record of a file that will not be written (best effort; a sweep or
    /// `verify` finds what stays).
    async fn discard(&self, keyed: Option<&FileKey>) {
        if let Some(keyed) = keyed {
            transaction::discard(self.store, vec![keyed.record.path.clone()]).await;
        }
    }
}

/// Makes the key of the table file to be written at `path` from `provider`
/// ([`SessionKey::create_for_file`], its record stored now) and a data key wrapped under it,
/// bound to `context` (the lake, the file's subject and the data's role).
pub async fn file_key(
    store: &LakeStore,
    provider: &dyn KeyProvider,
    path: &str,
    context: BTreeMap<String, String>,
) -> Result<FileKey, sessionlake_storage::LakeError> {
    let mut record_context = context.clone();
    record_context.remove(CONTEXT_ROLE);
    let (file_key, record) =
        SessionKey::create_for_file(store, provider, record_context, path).await?;
    let keyed = (|| {
        let key = DataKey::random()?;
        let wrapped = file_key.wrap(&key, context)?;
        let metadata = serde_json::to_vec(&wrapped).map_err(|e| {
            sessionlake_storage::LakeError::new(
                sessionlake_storage::LakeErrorKind::Format,
                format!("key metadata not encoded: {e}"),
            )
        })?;
        Ok((key, wrapped, metadata))
    })();
    match keyed {
        Ok((key, wrapped, metadata)) => Ok(FileKey { key, wrapped, metadata, record }),
        Err(error) => {
            // The record stored for a file that will not be written goes again.
            transaction::discard(store, vec![record.path]).await;
            Err(error)
        }
    }
}

/// Writes `records` as a new `access` file at `path`, under a fresh data key bound to
/// `context` (the lake, the CloudTrail file, role `access`) and wrapped under a file key of its
/// own from `provider` ([`file_key`]); returns the file's entry (naming `sessions`) and its key
/// record's, neither committed. When the file cannot be written, its record is deleted again.
/// `first_read_at` is when ingest first read the CloudTrail file: a rewrite passes the old
/// file's on ([`crate::parquet_io::FIRST_READ_KEY`]).
pub async fn write_access_file(
    store: &LakeStore,
    provider: &dyn KeyProvider,
    path: &str,
    records: Vec<sessionlake_schemas::AccessRecord>,
    context: BTreeMap<String, String>,
    sessions: Vec<String>,
    first_read_at: Option<i64>,
) -> Result<[ObjectEntry; 2], CompactError> {
    let fail = |reason: &dyn std::fmt::Display| CompactError::new(path, reason);
    let fresh = file_key(store, provider, path, context)
        .await
        .map_err(|e| fail(&format!("no data key: {e}")))?;
    let (key, metadata) = (fresh.key.clone(), fresh.metadata.clone());
    let written = async {
        let bytes = tokio::task::spawn_blocking(move || {
            crate::parquet_io::write_access(&records, &key, metadata, first_read_at)
        })
        .await
        .map_err(|e| fail(&format!("writer task failed: {e}")))?
        .map_err(|e| fail(&e))?;
        store.put(path, Bytes::from(bytes)).await.map_err(|e| fail(&e))
    };
    let stored = match written.await {
        Ok(stored) => stored,
        Err(error) => {
            transaction::discard(store, vec![fresh.record.path.clone()]).await;
            return Err(error);
        }
    };
    let file = ObjectEntry {
        key: Some(Box::new(fresh.wrapped)),
        ..stored.into_entry(ObjectKind::Access, sessions)
    };
    Ok([file, fresh.record])
}

/// A compacted file written by [`LakeFiles::write_compacted`], not committed yet.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// The file.
    pub file: ObjectEntry,
    /// The record of its file key (a `commands` file's), committed with it.
    pub key_record: Option<ObjectEntry>,
}

impl Compacted {
    /// Returns the objects to commit: the file and its key record.
    pub fn entries(self) -> impl Iterator<Item = ObjectEntry> {
        std::iter::once(self.file).chain(self.key_record)
    }
}

/// The data key of one new table file, wrapped under the file's own key.
pub struct FileKey {
    /// The data key.
    pub key: DataKey,
    /// The same, wrapped under the file key: the file's manifest entry names it.
    pub wrapped: WrappedKey,
    /// `wrapped` as JSON, for the file's footer.
    pub metadata: Vec<u8>,
    /// The file key's record, stored, to be committed with the file.
    pub record: ObjectEntry,
}

#[cfg(test)]
mod tests {
    use sessionlake_schemas::CommandRecord;

    use super::*;
    use sessionlake_schemas::commands_schema;

    /// Returns command `seq` of `session`: [`crate::parquet_io::tests::record`] with a start time,
    /// no output and bash's shell facts.
    fn record(session: &str, seq: u32, command: &str) -> CommandRecord {
        CommandRecord {
            session_id: session.into(),
            started_at: Some(1_700_000_000_000_000 + i64::from(seq)),
            cwd: None,
            output: String::new(),
            output_bytes: 0,
            raw_len: 1,
            effective_user: Some("ssm-user".into()),
            shell: Some("bash".into()),
            ..crate::parquet_io::tests::record(seq, command)
        }
    }

    fn commands_file(records: &[CommandRecord], key: &DataKey, name: &str) -> Input {
        let bytes =
            crate::parquet_io::write_commands(records, key, b"meta".to_vec()).expect("write");
        let mut sessions: Vec<String> =
            records.iter().map(|record| record.session_id.to_string()).collect();
        sessions.sort();
        sessions.dedup();
        Input { object: name.into(), bytes: Bytes::from(bytes), sessions, key: Some(key.clone()) }
    }

    /// Returns `records` merged into one compacted file under `key`, as an input.
    fn compacted_file(records: &[CommandRecord], key: &DataKey) -> Input {
        let input = commands_file(records, key, "c");
        let merged =
            merge(MergedTable::Commands, vec![input], &BTreeSet::new(), Some((key, vec![])), "c")
                .expect("merge")
                .expect("rows");
        Input {
            object: "compact".into(),
            bytes: Bytes::from(merged.bytes),
            sessions: merged.sessions,
            key: Some(key.clone()),
        }
    }

    /// Three data keys.
    fn keys() -> [DataKey; 3] {
        [1u8, 2, 3].map(|byte| DataKey::from_slice(&[byte; 32]).expect("32 bytes"))
    }

    #[test]
    fn test_merge_sorts_by_session_drops_the_asked_and_encrypts_under_the_new_key() {
        let [a, b, fresh] = keys();
        let inputs = vec![
            commands_file(&[record("s-b", 1, "rm -rf /b"), record("s-b", 0, "ls")], &a, "b"),
            commands_file(&[record("s-a", 0, "cat /etc/shadow")], &b, "a"),
            commands_file(&[record("s-c", 0, "whoami")], &b, "c"),
        ];
        let drop = BTreeSet::from(["s-c".to_string()]);
        let merged =
            merge(MergedTable::Commands, inputs, &drop, Some((&fresh, b"m".to_vec())), "out")
                .expect("merge")
                .expect("rows");
        assert_eq!(merged.sessions, ["s-a", "s-b"]);
        assert_eq!(merged.rows, 3);
        let chunks = crate::parquet_io::tests::chunks(merged.bytes.clone());
        crate::parquet_io::tests::assert_commands_compression(&chunks, &[]);
        for text in [&b"rm -rf"[..], b"/etc/shadow", b"whoami"] {
            assert!(memchr::memmem::find(&merged.bytes, text).is_none(), "{text:?} in plaintext");
        }
        let back = Input {
            object: "out".into(),
            bytes: Bytes::from(merged.bytes),
            sessions: merged.sessions.clone(),
            key: Some(fresh),
        };
        let batches = read_rows(MergedTable::Commands, &commands_schema(), back, &BTreeSet::new())
            .expect("read");
        let commands: Vec<String> = batches
            .iter()
            .flat_map(|batch| {
                let column = batch.column_by_name(columns::COMMAND).expect("command");
                let texts = column.as_string::<i32>();
                texts.iter().flatten().map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(commands, ["cat /etc/shadow", "ls", "rm -rf /b"]);
        // Dropping every session leaves nothing to write.
        let only = vec![commands_file(&[record("s-c", 0, "whoami")], &b, "c")];
        let none = merge(MergedTable::Commands, only, &drop, Some((&a, Vec::new())), "out");
        assert!(none.expect("merge").is_none());
        // A wrong key is an error naming the file, never a panic.
        let wrong = vec![Input {
            key: Some(a.clone()),
            ..commands_file(&[record("x", 0, "y")], &b, "x.parquet")
        }];
        let error =
            merge(MergedTable::Commands, wrong, &BTreeSet::new(), Some((&a, Vec::new())), "o");
        assert!(error.is_err_and(|e| e.to_string().contains("x.parquet")));
    }

    /// The (session, command) of every row of a merged `commands` file, in file order.
    fn rows_of(merged: Merged, key: &DataKey) -> Vec<(String, String)> {
        let back = Input {
            object: "out".into(),
            bytes: Bytes::from(merged.bytes),
            sessions: merged.sessions.clone(),
            key: Some(key.clone()),
        };
        let batches = read_rows(MergedTable::Commands, &commands_schema(), back, &BTreeSet::new())
            .expect("read");
        let mut rows = Vec::new();
        for batch in &batches {
            let ids = batch.column_by_name(columns::SESSION_ID).expect("id").as_string::<i32>();
            let commands = batch.column_by_name(columns::COMMAND).expect("cmd").as_string::<i32>();
            for row in 0..batch.num_rows() {
                rows.push((ids.value(row).to_string(), commands.value(row).to_string()));
            }
        }
        rows
    }

    #[test]
    fn test_merge_streams_a_compacted_file_with_session_files_in_session_order() {
        let [a, b, fresh] = keys();
        // A compacted file of s-b, s-d and s-f (thousands of rows, several batches), and
        // session files of s-a, s-c, s-e and s-g whose rows are out of order.
        let many = |session: &str| -> Vec<CommandRecord> {
            (0..1500).map(|seq| record(session, seq, &format!("{session} {seq}"))).collect()
        };
        let compacted: Vec<CommandRecord> =
            ["s-b", "s-d", "s-f"].iter().flat_map(|session| many(session)).collect();
        let mut inputs = vec![compacted_file(&compacted, &a)];
        for session in ["s-g", "s-a", "s-e", "s-c"] {
            let records = [
                record(session, 1, &format!("{session} 1")),
                record(session, 0, &format!("{session} 0")),
            ];
            inputs.push(commands_file(&records, &b, session));
        }
        let without = BTreeSet::from(["s-d".to_string(), "s-e".to_string()]);
        let merged =
            merge(MergedTable::Commands, inputs, &without, Some((&fresh, Vec::new())), "out")
                .expect("merge")
                .expect("rows");
        assert_eq!(merged.sessions, ["s-a", "s-b", "s-c", "s-f", "s-g"]);
        assert_eq!(merged.rows, 2 + 1500 + 2 + 1500 + 2);
        let rows = rows_of(merged, &fresh);
        let mut expected = Vec::new();
        for session in ["s-a", "s-b", "s-c", "s-f", "s-g"] {
            let count = if ["s-b", "s-f"].contains(&session) { 1500 } else { 2 };
            expected
                .extend((0..count).map(|seq| (session.to_string(), format!("{session} {seq}"))));
        }
        assert_eq!(rows, expected);
    }

    #[test]
    fn test_sessions_ending_on_a_batch_edge_merge() {
        // The reader's batches are 1,024 rows: a session of exactly 1,024 rows ends on the edge,
        // and the next session starts the next batch.
        let [a, _, fresh] = keys();
        let edge: Vec<CommandRecord> = ["s-a", "s-b", "s-c"]
            .iter()
            .flat_map(|session| (0..1024).map(|seq| record(session, seq, &format!("{seq}"))))
            .collect();
        let input = compacted_file(&edge, &a);
        let without = BTreeSet::from(["s-b".to_string()]);
        let merged =
            merge(MergedTable::Commands, vec![input], &without, Some((&fresh, Vec::new())), "o")
                .expect("merge")
                .expect("rows");
        assert_eq!(merged.sessions, ["s-a", "s-c"]);
        assert_eq!(merged.rows, 2048);
        let rows = rows_of(merged, &fresh);
        assert!(rows[..1024].iter().all(|(id, _)| id == "s-a"));
        assert!(rows[1024..].iter().all(|(id, _)| id == "s-c"));
    }

    #[test]
    fn test_a_file_with_rows_of_a_session_its_entry_does_not_list_is_refused() {
        let key = DataKey::from_slice(&[1u8; 32]).expect("32");
        let records = [record("s-a", 0, "ls"), record("s-z", 0, "whoami")];
        let unlisted = Input {
            sessions: vec!["s-a".into()],
            ..commands_file(&records, &key, "commands/dt=2026-03-14/compact-x.parquet")
        };
        let error = merge(
            MergedTable::Commands,
            vec![unlisted],
            &BTreeSet::new(),
            Some((&key, Vec::new())),
            "o",
        )
        .expect_err("refused");
        let error = error.to_string();
        assert!(error.contains("compact-x.parquet") && error.contains("s-z"), "{error}");
    }

    #[test]
    fn test_version_names_carry_their_time() {
        let version = new_version();
        let now = chrono::Utc::now().timestamp_micros();
        let made = version_time(&version).expect("time");
        assert!((now - made).abs() < 60_000_000, "{version}");
        assert_eq!(version_time("zz"), None);
    }
}
