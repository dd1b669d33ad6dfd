//! Records to and from Parquet: the layout every reader relies on, and the readers of the
//! `access` and `sessions` tables that writers use.
//!
//! - zstd, page-level statistics and the page index, so engines prune row groups and pages;
//! - rows sorted by (started_at, session_id, seq) and declared so in `sorting_columns`;
//! - bloom filters on `session_id`, `principal`, `target` (plaintext columns only: parquet
//!   writes bloom filters unencrypted, see docs/stack-notes.md) where the file holds more than
//!   one value of the column, or one longer than its statistics keep: one short value (each
//!   column of a per-session file, mostly) is answered exactly by the min/max statistics;
//! - a per-session `sessions` file (one row) is not compressed: zstd cannot shrink one value
//!   per column, and its contexts would cost more than the rest of the write; nor are the
//!   few-valued columns of every `commands` file ([`UNCOMPRESSED_COMMAND_COLUMNS`]), nor the
//!   other columns of a per-session `commands` file that hold one short value
//!   ([`uncompressed_where_constant`]);
//! - the `commands` file's sensitive columns ([`ENCRYPTED_COLUMNS`]) and the `access` file's
//!   ([`ACCESS_ENCRYPTED_COLUMNS`]) encrypted with Parquet modular encryption under one data key
//!   per file, footer in plaintext (signed) so that other engines read the rest; the wrapped
//!   data key is the footer's key metadata;
//! - [`SCHEMA_VERSION`] in the key-value metadata.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray as _;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, Scalar};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sessionlake_schemas::{
    ACCESS_ENCRYPTED_COLUMNS, AccessKind, AccessRecord, CommandRecord, ENCRYPTED_COLUMNS,
    SCHEMA_VERSION, SCHEMA_VERSION_KEY, SessionRecord, access_schema, columns, commands_schema,
    sessions_schema,
};
use sessionlake_storage::DataKey;

/// Rows per row group: a one-session lookup should read one row group (see BENCHMARKS.md).
pub const DEFAULT_ROW_GROUP_SIZE: usize = 128 * 1024;

/// zstd level of Parquet pages.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Columns that get bloom filters: the ones investigators look up by exact value.
pub const BLOOM_FILTER_COLUMNS: [&str; 3] =
    [columns::SESSION_ID, columns::PRINCIPAL, columns::TARGET];

/// Columns of the `commands` table stored uncompressed in every file: who, where, which
/// shell and program, flags. Each holds a few values a file (dictionary-encoded, so its pages
/// are a dictionary and runs of small indices), which zstd shrinks by a few hundred bytes at
/// most and often grows (a day of the 1 GiB bench: these 15 columns, 11.4 KB compressed against
/// 15.7 KB stored as they are, in a 1 MB file; BENCHMARKS.md), while every compressed column chunk
/// costs a zstd context to write and another to read (parquet makes a compression and a
/// decompression context for each chunk). The columns that hold text a person typed or read,
/// times, positions and sizes are compressed.
pub const UNCOMPRESSED_COMMAND_COLUMNS: [&str; 15] = [
    columns::SESSION_ID,
    columns::TIME_SOURCE,
    columns::PRINCIPAL,
    columns::RUN_AS,
    columns::TARGET,
    columns::REGION,
    columns::ACCOUNT,
    columns::OUTPUT_TRUNCATED,
    columns::REDACTIONS,
    columns::CONFIDENCE,
    columns::PARSER_VERSION,
    columns::EFFECTIVE_USER,
    columns::SHELL,
    columns::KIND,
    columns::PROGRAM,
];

/// Returns the properties of a `commands` file, whoever writes it: [`properties`] with
/// [`UNCOMPRESSED_COMMAND_COLUMNS`] stored uncompressed.
pub(crate) fn commands_properties(
    sorting: Vec<SortingColumn>,
    bloom_filters: &[&str],
    encryption: Option<Arc<FileEncryptionProperties>>,
    row_group_rows: usize,
) -> WriterProperties {
    let mut builder = properties(sorting, bloom_filters, encryption, row_group_rows).into_builder();
    for column in UNCOMPRESSED_COMMAND_COLUMNS {
        builder =
            builder.set_column_compression(ColumnPath::from(column), Compression::UNCOMPRESSED);
    }
    builder.build()
}

/// Columns of the `access` table that get bloom filters (its targets are a list: engines do
/// not probe bloom filters of list elements).
pub const ACCESS_BLOOM_FILTER_COLUMNS: [&str; 3] =
    [columns::EVENT_ID, columns::SESSION_ID, columns::PRINCIPAL];

/// Errors writing Parquet.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {table} parquet: {source}")]
pub struct WriteError {
    table: &'static str,
    #[source]
    source: parquet::errors::ParquetError,
}

/// Returns the lake's writer properties: zstd 3, page statistics, `sorting`, bloom filters on
/// `bloom_filters`, row groups of at most `row_group_rows` rows, `encryption` when given.
pub(crate) fn properties(
    sorting: Vec<SortingColumn>,
    bloom_filters: &[&str],
    encryption: Option<Arc<FileEncryptionProperties>>,
    row_group_rows: usize,
) -> WriterProperties {
    let zstd = ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).unwrap_or_default();
    properties_compressed(
        Compression::ZSTD(zstd),
        sorting,
        bloom_filters,
        encryption,
        row_group_rows,
    )
}

/// [`properties`] with `compression` instead of zstd 3.
fn properties_compressed(
    compression: Compression,
    sorting: Vec<SortingColumn>,
    bloom_filters: &[&str],
    encryption: Option<Arc<FileEncryptionProperties>>,
    row_group_rows: usize,
) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_string(),
            SCHEMA_VERSION.to_string(),
        )]));
    for column in bloom_filters {
        builder = builder.set_column_bloom_filter_enabled(ColumnPath::from(*column), true);
    }
    if let Some(encryption) = encryption {
        builder = builder.with_file_encryption_properties(encryption);
    }
    builder.build()
}

fn write(
    table: &'static str,
    batch: RecordBatch,
    properties: WriterProperties,
) -> Result<Vec<u8>, WriteError> {
    write_batches(table, batch.schema(), std::iter::once(Ok(batch)), properties)
}

/// Writes batches made one at a time into one file: only one batch is ever in Arrow form,
/// the rest is encoded and compressed.
fn write_batches(
    table: &'static str,
    schema: arrow_schema::SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, parquet::errors::ParquetError>>,
    properties: WriterProperties,
) -> Result<Vec<u8>, WriteError> {
    let fail = |source| WriteError { table, source };
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, Some(properties)).map_err(fail)?;
    for batch in batches {
        write_bounded(&mut writer, &batch.map_err(fail)?).map_err(fail)?;
    }
    writer.close().map_err(fail)?;
    Ok(buffer)
}

/// Memory a row group being written may hold (its encoded pages, compressed) before it is
/// closed, whatever its number of rows: a session of long outputs makes row groups of fewer
/// rows, never one of hundreds of MB.
pub const ROW_GROUP_MEMORY: usize = 32 * 1024 * 1024;

/// Writes `batch`, then closes the row group if it holds [`ROW_GROUP_MEMORY`] or more.
fn write_bounded<W: std::io::Write + Send>(
    writer: &mut ArrowWriter<W>,
    batch: &RecordBatch,
) -> Result<(), parquet::errors::ParquetError> {
    writer.write(batch)?;
    if writer.memory_size() >= ROW_GROUP_MEMORY {
        writer.flush()?;
    }
    Ok(())
}

/// Returns the columns of `candidates` (a column's name and its value in a record) that a
/// bloom filter helps in a file of `records`: all but those holding a single value (nulls
/// aside) short enough for its statistics to keep whole. Such a column has that value as both
/// its minimum and maximum, which answer an equality exactly, and a filter would only add its
/// allocation and its bytes (every row of a per-session file has its session's id, principal
/// and target). Parquet cuts longer statistics to a prefix ([`STATISTICS_TRUNCATE_LENGTH`]),
/// which cannot tell apart values that share it (role ARNs of one permission set): those keep
/// their filter.
fn varying_columns<T>(records: &[&T], candidates: &[BloomCandidate<T>]) -> Vec<&'static str> {
    candidates
        .iter()
        .filter(|(_, value)| {
            let mut values = records.iter().filter_map(|record| value(record));
            let Some(first) = values.next() else { return false };
            first.len() > STATISTICS_TRUNCATE_LENGTH || values.any(|other| other != first)
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Bytes of a string statistic parquet keeps whole (its default, which the writers leave as it
/// is; the page index's is the same, 64).
const STATISTICS_TRUNCATE_LENGTH: usize =
    match parquet::file::properties::DEFAULT_STATISTICS_TRUNCATE_LENGTH {
        Some(length) => length,
        None => usize::MAX,
    };

/// A column that may get a bloom filter, and its value in a record.
type BloomCandidate<T> = (&'static str, fn(&T) -> Option<&str>);

/// The bloom filter candidates of a `commands` file ([`BLOOM_FILTER_COLUMNS`]).
const COMMAND_BLOOMS: [BloomCandidate<CommandRecord>; 3] = [
    (columns::SESSION_ID, |record| Some(&record.session_id)),
    (columns::PRINCIPAL, |record| record.principal.as_deref()),
    (columns::TARGET, |record| record.target.as_deref()),
];

/// The bloom filter candidates of a `sessions` file ([`BLOOM_FILTER_COLUMNS`]).
const SESSION_BLOOMS: [BloomCandidate<SessionRecord>; 3] = [
    (columns::SESSION_ID, |record| Some(&record.session_id)),
    (columns::PRINCIPAL, |record| record.principal.as_deref()),
    (columns::TARGET, |record| record.target.as_deref()),
];

/// Commands turned into Arrow at a time by [`write_commands`]: a session of a million
/// commands is never in memory twice.
const COMMANDS_PER_BATCH: usize = 8 * 1024;

/// Bytes of text (commands, outputs, prompts) at which a batch of command rows is cut before
/// [`COMMANDS_PER_BATCH`]: rows of long outputs make smaller batches.
const COMMAND_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The text bytes of `row` that count toward [`COMMAND_BATCH_BYTES`].
fn text_bytes(row: &CommandRecord) -> usize {
    row.command.len() + row.output.len() + row.prompt.len()
}

/// Cuts `sorted` into the batches both writers of a `commands` file write, so that they close
/// row groups at the same rows: [`COMMANDS_PER_BATCH`] rows or [`COMMAND_BATCH_BYTES`].
fn command_batches<'a>(sorted: &'a [&'a CommandRecord]) -> Vec<&'a [&'a CommandRecord]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, row) in sorted.iter().enumerate() {
        bytes += text_bytes(row);
        if index + 1 - start >= COMMANDS_PER_BATCH || bytes >= COMMAND_BATCH_BYTES {
            batches.push(&sorted[start..=index]);
            (start, bytes) = (index + 1, 0);
        }
    }
    if start < sorted.len() || batches.is_empty() {
        // An empty session still gets a file (with no rows).
        batches.push(&sorted[start..]);
    }
    batches
}

fn sort_key(record: &CommandRecord) -> (i64, &str, u32) {
    (record.started_at.unwrap_or(i64::MIN), &*record.session_id, record.seq)
}

/// Returns the column index of `name` in the commands schema.
fn index_of(name: &str) -> i32 {
    commands_schema().index_of(name).map_or(0, |index| index as i32)
}

/// Writes `records` as a `commands` file, the sensitive columns encrypted under `key`;
/// `key_metadata` (the wrapped key) goes in the footer so a reader can unwrap it.
pub fn write_commands(
    records: &[CommandRecord],
    key: &DataKey,
    key_metadata: Vec<u8>,
) -> Result<Vec<u8>, WriteError> {
    let encryption = encryption(key, key_metadata, &ENCRYPTED_COLUMNS)
        .map_err(|source| WriteError { table: "commands", source })?;
    write_commands_with(records, Some(encryption), false)
}

/// Writes one session's `commands` file as its rows come, to `out` as its bytes are made: the
/// file [`write_commands`] writes of the same rows when they come in its order (time, then
/// number: a session's rows in time order, see the indexer's `ReplayPlan`). Memory holds a
/// batch of rows and the row group being written (at most [`DEFAULT_ROW_GROUP_SIZE`] rows and
/// about [`ROW_GROUP_MEMORY`]), whatever the number of rows.
pub struct CommandsWriter<W: std::io::Write + Send> {
    out: Option<W>,
    /// Made at the first batch, whose rows tell which columns get a bloom filter (a
    /// session's rows share their session, principal and target).
    writer: Option<ArrowWriter<W>>,
    encryption: Arc<FileEncryptionProperties>,
    batch: Vec<CommandRecord>,
    /// [`text_bytes`] of `batch`.
    batch_bytes: usize,
    rows: usize,
}

impl<W: std::io::Write + Send> CommandsWriter<W> {
    /// Returns a writer of a `commands` file to `out`, its sensitive columns encrypted under
    /// `key`, `key_metadata` (the wrapped key) in the footer.
    pub fn new(out: W, key: &DataKey, key_metadata: Vec<u8>) -> Result<Self, WriteError> {
        let encryption = encryption(key, key_metadata, &ENCRYPTED_COLUMNS)
            .map_err(|source| WriteError { table: "commands", source })?;
        Ok(CommandsWriter {
            out: Some(out),
            writer: None,
            encryption,
            batch: Vec::new(),
            batch_bytes: 0,
            rows: 0,
        })
    }

    /// Takes the next row; they must come in the file's order.
    pub fn push(&mut self, row: CommandRecord) -> Result<(), WriteError> {
        self.batch.push(row);
        self.batch_bytes += text_bytes(self.batch.last().expect("just pushed"));
        if self.batch.len() >= COMMANDS_PER_BATCH || self.batch_bytes >= COMMAND_BATCH_BYTES {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Rows taken so far.
    pub fn rows(&self) -> usize {
        self.rows + self.batch.len()
    }

    fn write_batch(&mut self) -> Result<(), WriteError> {
        let fail = |source| WriteError { table: "commands", source };
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let rows: Vec<&CommandRecord> = batch.iter().collect();
        let record_batch = commands_batch(&rows).map_err(fail)?;
        if self.writer.is_none() {
            let sorting = [columns::STARTED_AT, columns::SESSION_ID, columns::SEQ]
                .into_iter()
                .map(|name| SortingColumn {
                    column_idx: index_of(name),
                    descending: false,
                    nulls_first: true,
                })
                .collect();
            let blooms = varying_columns(&rows, &COMMAND_BLOOMS);
            let encryption = Some(Arc::clone(&self.encryption));
            let properties =
                commands_properties(sorting, &blooms, encryption, DEFAULT_ROW_GROUP_SIZE);
            let properties = uncompressed_where_constant(properties, &record_batch);
            let out = self.out.take().ok_or_else(|| {
                fail(parquet::errors::ParquetError::General("writer already closed".into()))
            })?;
            let writer = ArrowWriter::try_new(out, commands_schema(), Some(properties));
            self.writer = Some(writer.map_err(fail)?);
        }
        if let Some(writer) = self.writer.as_mut() {
            write_bounded(writer, &record_batch).map_err(fail)?;
        }
        self.rows += rows.len();
        Ok(())
    }

    /// Writes what is left and the footer; returns `out` (an empty session's file has no
    /// rows).
    pub fn finish(mut self) -> Result<W, WriteError> {
        if !self.batch.is_empty() || self.writer.is_none() {
            self.write_batch()?;
        }
        let fail = |source| WriteError { table: "commands", source };
        let writer = self.writer.take().ok_or_else(|| {
            fail(parquet::errors::ParquetError::General("writer already closed".into()))
        })?;
        writer.into_inner().map_err(fail)
    }
}

/// Writes `records` (many sessions) as a compacted `commands` file would hold them, with **no
/// encryption**: sorted by (session_id, seq), row groups of
/// [`crate::merge::COMPACTED_ROW_GROUP_ROWS`]. For the benchmark's plaintext copy of a
/// compacted lake; lake files always encrypt the sensitive columns ([`crate::merge`]).
pub fn write_commands_compacted_unencrypted(
    records: &[CommandRecord],
) -> Result<Vec<u8>, WriteError> {
    write_commands_with(records, None, true)
}

fn write_commands_with(
    records: &[CommandRecord],
    encryption: Option<Arc<FileEncryptionProperties>>,
    compacted: bool,
) -> Result<Vec<u8>, WriteError> {
    let mut sorted: Vec<&CommandRecord> = records.iter().collect();
    let order: &[&str] = if compacted {
        sorted.sort_by(|a, b| (&a.session_id, a.seq).cmp(&(&b.session_id, b.seq)));
        &[columns::SESSION_ID, columns::SEQ]
    } else {
        sorted.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        &[columns::STARTED_AT, columns::SESSION_ID, columns::SEQ]
    };
    let sorting = order
        .iter()
        .copied()
        .map(|name| SortingColumn {
            column_idx: index_of(name),
            descending: false,
            nulls_first: true,
        })
        .collect();
    let slices = command_batches(&sorted);
    let mut batches = slices.into_iter().map(commands_batch).peekable();
    let row_group_rows =
        if compacted { crate::merge::COMPACTED_ROW_GROUP_ROWS } else { DEFAULT_ROW_GROUP_SIZE };
    let blooms = varying_columns(&sorted, &COMMAND_BLOOMS);
    let properties = commands_properties(sorting, &blooms, encryption, row_group_rows);
    let properties = match batches.peek() {
        _ if compacted => crate::merge::compacted_properties(properties),
        Some(Ok(first)) => uncompressed_where_constant(properties, first),
        _ => properties,
    };
    write_batches("commands", commands_schema(), batches, properties)
}

/// Leaves uncompressed each column that holds one short value (at most 64 bytes: what parquet
/// keeps whole in statistics) or only nulls in `first`, the first
/// batch of a session's `commands` file (both its writers decide from it). Such a column is a
/// dictionary page of that value and data pages of one repeated index, which zstd cannot
/// shrink; yet every compressed column chunk costs a zstd context to write and another to read
/// (parquet makes a compression and a decompression context for each chunk). A session's rows
/// share a dozen such columns: its id, principal, target, user, shell, parser version.
fn uncompressed_where_constant(
    properties: WriterProperties,
    first: &RecordBatch,
) -> WriterProperties {
    if first.num_rows() == 0 {
        return properties;
    }
    let schema = first.schema();
    let constant = schema.fields().iter().zip(first.columns()).filter(|(_, column)| {
        // A long value (one command's output) is worth compressing even once.
        let short = column.as_string_opt::<i32>().is_none_or(|strings| {
            strings.is_null(0) || strings.value(0).len() <= STATISTICS_TRUNCATE_LENGTH
        });
        short
            && arrow_ord::cmp::not_distinct(column, &Scalar::new(column.slice(0, 1)))
                .is_ok_and(|same| same.null_count() == 0 && same.true_count() == same.len())
    });
    let mut builder = properties.into_builder();
    for (field, _) in constant {
        let path = ColumnPath::from(field.name().as_str());
        builder = builder.set_column_compression(path, Compression::UNCOMPRESSED);
    }
    builder.build()
}

/// Returns `sorted` as one Arrow batch of the commands schema.
fn commands_batch(sorted: &[&CommandRecord]) -> Result<RecordBatch, parquet::errors::ParquetError> {
    let mut session_id = StringBuilder::new();
    let mut seq = UInt32Builder::new();
    let mut started_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut time_source = StringBuilder::new();
    let mut principal = StringBuilder::new();
    let mut run_as = StringBuilder::new();
    let mut target = StringBuilder::new();
    let mut region = StringBuilder::new();
    let mut account = StringBuilder::new();
    let mut cwd = StringBuilder::new();
    let mut prompt = StringBuilder::new();
    let mut command = StringBuilder::new();
    let mut output = StringBuilder::new();
    let mut output_truncated = BooleanBuilder::new();
    let mut output_bytes = UInt64Builder::new();
    let mut raw_offset = UInt64Builder::new();
    let mut raw_len = UInt64Builder::new();
    let mut redactions = UInt32Builder::new();
    let mut confidence = StringBuilder::new();
    let mut parser_version = UInt32Builder::new();
    let mut effective_user = StringBuilder::new();
    let mut shell = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut program = StringBuilder::new();
    for record in sorted.iter() {
        session_id.append_value(&record.session_id);
        seq.append_value(record.seq);
        started_at.append_option(record.started_at);
        time_source.append_value(record.time_source.as_str());
        principal.append_option(record.principal.as_deref());
        run_as.append_option(record.run_as.as_deref());
        target.append_option(record.target.as_deref());
        region.append_option(record.region.as_deref());
        account.append_option(record.account.as_deref());
        cwd.append_option(record.cwd.as_deref());
        prompt.append_value(&record.prompt);
        command.append_value(&record.command);
        output.append_value(&record.output);
        output_truncated.append_value(record.output_truncated);
        output_bytes.append_value(record.output_bytes);
        raw_offset.append_value(record.raw_offset);
        raw_len.append_value(record.raw_len);
        redactions.append_value(record.redactions);
        confidence.append_value(record.confidence.as_str());
        parser_version.append_value(record.parser_version);
        effective_user.append_option(record.effective_user.as_deref());
        shell.append_option(record.shell.as_deref());
        kind.append_value(record.kind());
        program.append_option(record.program.as_deref());
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(session_id.finish()),
        Arc::new(seq.finish()),
        Arc::new(started_at.finish()),
        Arc::new(time_source.finish()),
        Arc::new(principal.finish()),
        Arc::new(run_as.finish()),
        Arc::new(target.finish()),
        Arc::new(region.finish()),
        Arc::new(account.finish()),
        Arc::new(cwd.finish()),
        Arc::new(prompt.finish()),
        Arc::new(command.finish()),
        Arc::new(output.finish()),
        Arc::new(output_truncated.finish()),
        Arc::new(output_bytes.finish()),
        Arc::new(raw_offset.finish()),
        Arc::new(raw_len.finish()),
        Arc::new(redactions.finish()),
        Arc::new(confidence.finish()),
        Arc::new(parser_version.finish()),
        Arc::new(effective_user.finish()),
        Arc::new(shell.finish()),
        Arc::new(kind.finish()),
        Arc::new(program.finish()),
    ];
    Ok(RecordBatch::try_new(commands_schema(), arrays)?)
}

/// Returns plaintext-footer encryption of `columns` under `key`; `wrapped_key` (the lake's
/// wrapped-key record of `key`, its JSON) goes in the footer and on each column as standard key
/// material ([`key_material`]) so that a reader can unwrap it.
pub(crate) fn encryption(
    key: &DataKey,
    wrapped_key: Vec<u8>,
    columns: &[&str],
) -> Result<Arc<FileEncryptionProperties>, parquet::errors::ParquetError> {
    let column_material = key_material(&wrapped_key, false);
    let mut encryption = FileEncryptionProperties::builder(key.expose().to_vec())
        .with_plaintext_footer(true)
        .with_footer_key_metadata(key_material(&wrapped_key, true));
    for column in columns {
        encryption = encryption.with_column_key_and_metadata(
            column,
            key.expose().to_vec(),
            column_material.clone(),
        );
    }
    encryption.build()
}

/// Returns what opens a file [`encryption`] wrote: `key` for the footer and each of `columns`.
pub(crate) fn decryption(
    key: &DataKey,
    columns: &[&str],
) -> Result<Arc<FileDecryptionProperties>, parquet::errors::ParquetError> {
    let secret = key.expose().to_vec();
    FileDecryptionProperties::builder(secret.clone())
        .with_column_keys(columns.to_vec(), vec![secret; columns.len()])?
        .build()
}

/// The key metadata of an encrypted column (or of the footer key) in the standard key-material
/// format (`PKMT1`, parquet-java's `KeyMaterial`, Arrow's `key_material.h`), single wrapping,
/// stored in the file: `masterKeyID` is the key that wrapped the data key (a session key
/// record's path, a KMS key ARN, a keyring key id), `wrappedDEK` the lake's wrapped-key record
/// of it (base64 of its JSON: provider, key id, ciphertext, encryption context). Engines that
/// read Parquet modular encryption (Spark, pyarrow) hand both to a KMS client that knows the
/// lake (`clients/python/sessionlake_kms.py`); shredding a session removes the record its key
/// needs, for them too. sessionlake's own readers take the wrapped key from the commit, not
/// from the file, so files written before this format read the same.
pub fn key_material(wrapped_key: &[u8], footer: bool) -> Vec<u8> {
    use base64::Engine as _;
    let master_key = serde_json::from_slice::<serde_json::Value>(wrapped_key)
        .ok()
        .and_then(|record| record.get("key_id").and_then(|id| id.as_str()).map(str::to_string))
        .unwrap_or_else(|| "sessionlake".to_string());
    let mut material = serde_json::json!({
        "keyMaterialType": "PKMT1",
        "internalStorage": true,
        "isFooterKey": footer,
        "masterKeyID": master_key,
        "wrappedDEK": base64::engine::general_purpose::STANDARD.encode(wrapped_key),
        "doubleWrapping": false,
    });
    if footer {
        material["kmsInstanceID"] = serde_json::json!("DEFAULT");
        material["kmsInstanceURL"] = serde_json::json!("DEFAULT");
    }
    material.to_string().into_bytes()
}

/// Returns the string column `get` makes of each of `records`.
fn string_column<R>(records: &[&R], get: &dyn Fn(&R) -> Option<&str>) -> ArrayRef {
    let mut builder = StringBuilder::new();
    for record in records {
        builder.append_option(get(record));
    }
    Arc::new(builder.finish())
}

/// Writes `records` as an `access` file sorted by (event_time, event_id), its
/// [`ACCESS_ENCRYPTED_COLUMNS`] encrypted under `key`; `key_metadata` (the wrapped key) goes in
/// the footer so a reader can unwrap it.
/// Key of an `access` file's footer metadata that holds when ingest first read its CloudTrail
/// file (µs since the epoch): kept through rewrites, which get a name of their own time.
pub const FIRST_READ_KEY: &str = "sessionlake.first_read_at";

/// Writes `records` as an `access` file, the sensitive columns encrypted under `key`;
/// `key_metadata` (the wrapped key) goes in the footer, and so does `first_read_at`, when
/// ingest first read the CloudTrail file ([`FIRST_READ_KEY`]).
pub fn write_access(
    records: &[AccessRecord],
    key: &DataKey,
    key_metadata: Vec<u8>,
    first_read_at: Option<i64>,
) -> Result<Vec<u8>, WriteError> {
    let mut sorted: Vec<&AccessRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    let strings = |get: &dyn Fn(&AccessRecord) -> Option<&str>| string_column(&sorted, get);
    let mut event_time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut targets = ListBuilder::new(StringBuilder::new());
    for record in &sorted {
        event_time.append_value(record.event_time);
        for target in &record.targets {
            targets.values().append_value(target);
        }
        targets.append(true);
    }
    let arrays: Vec<ArrayRef> = vec![
        strings(&|r| Some(&r.event_id)),
        Arc::new(event_time.finish()),
        strings(&|r| Some(r.kind.as_str())),
        strings(&|r| r.principal.as_deref()),
        strings(&|r| r.principal_type.as_deref()),
        strings(&|r| r.source_ip.as_deref()),
        strings(&|r| r.user_agent.as_deref()),
        Arc::new(targets.finish()),
        strings(&|r| r.os_user.as_deref()),
        strings(&|r| r.document_name.as_deref()),
        strings(&|r| r.parameters.as_deref()),
        strings(&|r| r.session_id.as_deref()),
        strings(&|r| r.command_id.as_deref()),
        strings(&|r| r.region.as_deref()),
        strings(&|r| r.account.as_deref()),
        strings(&|r| r.error_code.as_deref()),
        strings(&|r| Some(&r.source_ref)),
    ];
    let fail = |source| WriteError { table: "access", source };
    // The list field's nullability must match the schema's exactly.
    let batch = RecordBatch::try_new(access_schema(), arrays).map_err(|e| fail(e.into()))?;
    let encryption = encryption(key, key_metadata, &ACCESS_ENCRYPTED_COLUMNS).map_err(fail)?;
    let index = |name| access_schema().index_of(name).map_or(0, |i| i as i32);
    let sorting = [columns::EVENT_TIME, columns::EVENT_ID]
        .into_iter()
        .map(|name| SortingColumn { column_idx: index(name), descending: false, nulls_first: true })
        .collect();
    let properties =
        properties(sorting, &ACCESS_BLOOM_FILTER_COLUMNS, Some(encryption), DEFAULT_ROW_GROUP_SIZE);
    let mut buffer = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties)).map_err(fail)?;
    if let Some(first_read_at) = first_read_at {
        writer.append_key_value_metadata(KeyValue::new(
            FIRST_READ_KEY.to_string(),
            first_read_at.to_string(),
        ));
    }
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(buffer)
}

/// Errors reading an `access` or `sessions` file back.
#[derive(Debug, thiserror::Error)]
#[error("failed to read {object}: {reason}")]
pub struct ReadError {
    object: String,
    reason: String,
}

/// Reads the plaintext columns of an `access` file (`object` names it in errors), without its
/// key: every field but `parameters`, which is encrypted and left `None`.
pub fn read_access_plaintext(
    bytes: bytes::Bytes,
    object: &str,
) -> Result<Vec<AccessRecord>, ReadError> {
    read_access(bytes, object, None)
}

/// An `access` file as read: its events, and when ingest first read their CloudTrail file
/// ([`FIRST_READ_KEY`]; `None` for a file written before the footer kept it).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessFile {
    pub records: Vec<AccessRecord>,
    pub first_read_at: Option<i64>,
}

/// Reads an `access` file (`object` names it in errors): with its data `key`, every field;
/// without, every field but the encrypted `parameters` (left `None`).
pub fn read_access(
    bytes: bytes::Bytes,
    object: &str,
    key: Option<&DataKey>,
) -> Result<Vec<AccessRecord>, ReadError> {
    read_access_file(bytes, object, key).map(|file| file.records)
}

/// [`read_access`], with when ingest first read the file's CloudTrail file, from the same
/// footer.
pub fn read_access_file(
    bytes: bytes::Bytes,
    object: &str,
    key: Option<&DataKey>,
) -> Result<AccessFile, ReadError> {
    let fail = |reason: String| ReadError { object: object.to_string(), reason };
    let mut options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    if let Some(key) = key {
        let decryption =
            decryption(key, &ACCESS_ENCRYPTED_COLUMNS).map_err(|e| fail(e.to_string()))?;
        options = options.with_file_decryption_properties(decryption);
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)
        .map_err(|e| fail(e.to_string()))?;
    let first_read_at = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|entries| entries.iter().find(|entry| entry.key == FIRST_READ_KEY))
        .and_then(|entry| entry.value.as_deref()?.parse().ok());
    let schema = Arc::clone(builder.schema());
    let wanted: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| {
            key.is_some() || !ACCESS_ENCRYPTED_COLUMNS.contains(&field.name().as_str())
        })
        .map(|(index, _)| index)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder.with_projection(mask).build().map_err(|e| fail(e.to_string()))?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| fail(format!("column {name} is missing")))
        };
        let text = |name: &str| -> Result<&arrow_array::StringArray, ReadError> {
            column(name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| fail(format!("column {name} is not text")))
        };
        let times = column(columns::EVENT_TIME)?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| fail("column event_time is not a timestamp".into()))?;
        let targets = column(columns::TARGETS)?
            .as_list_opt::<i32>()
            .ok_or_else(|| fail("column targets is not a list".into()))?;
        let (event_id, kind, principal, principal_type) = (
            text(columns::EVENT_ID)?,
            text(columns::KIND)?,
            text(columns::PRINCIPAL)?,
            text(columns::PRINCIPAL_TYPE)?,
        );
        let (source_ip, user_agent, os_user, document_name) = (
            text(columns::SOURCE_IP)?,
            text(columns::USER_AGENT)?,
            text(columns::OS_USER)?,
            text(columns::DOCUMENT_NAME)?,
        );
        let (session_id, command_id, region, account) = (
            text(columns::SESSION_ID)?,
            text(columns::COMMAND_ID)?,
            text(columns::REGION)?,
            text(columns::ACCOUNT)?,
        );
        let (error_code, source_ref) = (text(columns::ERROR_CODE)?, text(columns::SOURCE_REF)?);
        let parameters = if key.is_some() { Some(text(columns::PARAMETERS)?) } else { None };
        let at = |array: &arrow_array::StringArray, row: usize| {
            (!array.is_null(row)).then(|| array.value(row).to_string())
        };
        for row in 0..batch.num_rows() {
            let kind_text = at(kind, row).unwrap_or_default();
            let kind = AccessKind::parse(&kind_text)
                .ok_or_else(|| fail(format!("row {row} has unknown kind {kind_text:?}")))?;
            let row_targets = if targets.is_null(row) {
                Vec::new()
            } else {
                targets
                    .value(row)
                    .as_string_opt::<i32>()
                    .map(|list| list.iter().flatten().map(str::to_string).collect())
                    .unwrap_or_default()
            };
            records.push(AccessRecord {
                event_id: at(event_id, row).unwrap_or_default(),
                event_time: times.value(row),
                kind,
                principal: at(principal, row),
                principal_type: at(principal_type, row),
                source_ip: at(source_ip, row),
                user_agent: at(user_agent, row),
                targets: row_targets,
                os_user: at(os_user, row),
                document_name: at(document_name, row),
                parameters: parameters.and_then(|parameters| at(parameters, row)),
                session_id: at(session_id, row),
                command_id: at(command_id, row),
                region: at(region, row),
                account: at(account, row),
                error_code: at(error_code, row),
                source_ref: at(source_ref, row).unwrap_or_default(),
            });
        }
    }
    Ok(AccessFile { records, first_read_at })
}

/// What a stored `sessions` row says about its session: the facts CloudTrail may complete, and
/// where its transcript came from and lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The facts (who, where, when) as stored.
    pub context: sessionlake_schemas::SessionContext,
    /// End of the session (µs), when the transcript tells.
    pub ended_at: Option<i64>,
    /// Where in its delivery it came from (`s3://…`, `cwl://…`, a path).
    pub source_ref: String,
    /// Lake path of its encrypted raw transcript.
    pub raw_object: String,
    /// SHA-256 (hex) of the original transcript bytes.
    pub raw_sha256: String,
}

/// Reads the rows of a `sessions` file (`object` names it in errors). A `sessions` file has no
/// encrypted column: no key is needed.
pub fn read_sessions(bytes: bytes::Bytes, object: &str) -> Result<Vec<StoredSession>, ReadError> {
    let fail = |reason: String| ReadError { object: object.to_string(), reason };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|e| fail(e.to_string()))?;
    let mut sessions = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let text = |name: &str| -> Result<&arrow_array::StringArray, ReadError> {
            batch
                .column_by_name(name)
                .ok_or_else(|| fail(format!("column {name} is missing")))?
                .as_string_opt::<i32>()
                .ok_or_else(|| fail(format!("column {name} is not text")))
        };
        let time = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|column| column.as_primitive_opt::<TimestampMicrosecondType>())
                .ok_or_else(|| fail(format!("column {name} is missing or not a timestamp")))
        };
        let (started, ended) = (time(columns::STARTED_AT)?, time(columns::ENDED_AT)?);
        let (session_id, principal, run_as, target) = (
            text(columns::SESSION_ID)?,
            text(columns::PRINCIPAL)?,
            text(columns::RUN_AS)?,
            text(columns::TARGET)?,
        );
        let (region, account, source_ref) =
            (text(columns::REGION)?, text(columns::ACCOUNT)?, text(columns::SOURCE_REF)?);
        let (raw_object, raw_sha256) = (text(columns::RAW_OBJECT)?, text(columns::RAW_SHA256)?);
        let at = |array: &arrow_array::StringArray, row: usize| {
            (!array.is_null(row)).then(|| array.value(row).to_string())
        };
        for row in 0..batch.num_rows() {
            let context = sessionlake_schemas::SessionContext {
                session_id: at(session_id, row).unwrap_or_default(),
                principal: at(principal, row),
                run_as: at(run_as, row),
                target: at(target, row),
                region: at(region, row),
                account: at(account, row),
                started_at: (!started.is_null(row)).then(|| started.value(row)),
            };
            sessions.push(StoredSession {
                context,
                ended_at: (!ended.is_null(row)).then(|| ended.value(row)),
                source_ref: at(source_ref, row).unwrap_or_default(),
                raw_object: at(raw_object, row).unwrap_or_default(),
                raw_sha256: at(raw_sha256, row).unwrap_or_default(),
            });
        }
    }
    Ok(sessions)
}

/// Writes `records` as a `sessions` file (no sensitive columns: not encrypted).
pub fn write_sessions(records: &[SessionRecord]) -> Result<Vec<u8>, WriteError> {
    let mut sorted: Vec<&SessionRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (a.started_at, &a.session_id).cmp(&(b.started_at, &b.session_id)));
    let strings = |get: &dyn Fn(&SessionRecord) -> Option<&str>| string_column(&sorted, get);
    let times = |get: &dyn Fn(&SessionRecord) -> Option<i64>| -> ArrayRef {
        let mut builder = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for record in &sorted {
            builder.append_option(get(record));
        }
        Arc::new(builder.finish())
    };
    let numbers = |get: &dyn Fn(&SessionRecord) -> u32| -> ArrayRef {
        let mut builder = UInt32Builder::new();
        for record in &sorted {
            builder.append_value(get(record));
        }
        Arc::new(builder.finish())
    };
    let arrays: Vec<ArrayRef> = vec![
        strings(&|r| Some(&r.session_id)),
        strings(&|r| r.principal.as_deref()),
        strings(&|r| r.run_as.as_deref()),
        strings(&|r| r.target.as_deref()),
        strings(&|r| r.region.as_deref()),
        strings(&|r| r.account.as_deref()),
        times(&|r| r.started_at),
        times(&|r| r.ended_at),
        numbers(&|r| r.command_count),
        strings(&|r| Some(r.source.as_str())),
        strings(&|r| Some(&r.source_ref)),
        strings(&|r| Some(&r.raw_object)),
        strings(&|r| Some(&r.raw_sha256)),
        strings(&|r| Some(&r.key_id)),
        times(&|r| Some(r.ingested_at)),
        strings(&|r| Some(r.status.as_str())),
        numbers(&|r| r.parser_version),
        {
            let mut builder = StringBuilder::new();
            for record in &sorted {
                builder.append_option(record.understanding.as_ref().map(|u| u.shells.join(",")));
            }
            Arc::new(builder.finish())
        },
        {
            let mut builder = Float64Builder::new();
            for record in &sorted {
                builder.append_option(record.understanding.as_ref().map(|u| u.input_explained));
            }
            Arc::new(builder.finish())
        },
        strings(&|r| r.understanding.as_ref().map(|u| u.confidence.as_str())),
        strings(&|r| r.understanding.as_ref().map(|u| u.reason.as_str())),
    ];
    let batch = RecordBatch::try_new(sessions_schema(), arrays)
        .map_err(|e| WriteError { table: "sessions", source: e.into() })?;
    let index = |name| sessions_schema().index_of(name).map_or(0, |i| i as i32);
    let sorting = [columns::STARTED_AT, columns::SESSION_ID]
        .into_iter()
        .map(|name| SortingColumn { column_idx: index(name), descending: false, nulls_first: true })
        .collect();
    let compression = match sorted.len() {
        0 | 1 => Compression::UNCOMPRESSED,
        _ => Compression::ZSTD(ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).unwrap_or_default()),
    };
    let blooms = varying_columns(&sorted, &SESSION_BLOOMS);
    write(
        "sessions",
        batch,
        properties_compressed(compression, sorting, &blooms, None, DEFAULT_ROW_GROUP_SIZE),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use sessionlake_schemas::{Confidence, TimeSource};

    use super::*;

    /// Returns a command of alice's session, with output (the other tests' records start here).
    pub(crate) fn record(seq: u32, command: &str) -> CommandRecord {
        CommandRecord {
            session_id: "alice-0123456789abcdef0".into(),
            seq,
            started_at: None,
            time_source: TimeSource::None,
            principal: Some("arn:aws:iam::111122223333:user/alice".into()),
            run_as: Some("ssm-user".into()),
            target: Some("i-0123456789abcdef0".into()),
            region: None,
            account: None,
            cwd: Some("~".into()),
            prompt: "$ ".into(),
            command: command.into(),
            output: "secret output".into(),
            output_truncated: false,
            output_bytes: 13,
            raw_offset: 0,
            raw_len: 10,
            redactions: 0,
            confidence: Confidence::High,
            parser_version: 1,
            effective_user: None,
            shell: None,
            program: None,
        }
    }

    fn access_record(event_id: &str, event_time: i64) -> AccessRecord {
        AccessRecord {
            event_id: event_id.into(),
            event_time,
            kind: AccessKind::RunCommand,
            principal: Some("arn:aws:iam::111122223333:user/alice".into()),
            principal_type: Some("IAMUser".into()),
            source_ip: Some("203.0.113.9".into()),
            user_agent: None,
            targets: vec!["i-1".into(), "tag:Env=prod".into()],
            os_user: None,
            document_name: Some("AWS-RunShellScript".into()),
            parameters: Some(r#"{"parameters":{"commands":["cat /etc/shadow"]}}"#.into()),
            session_id: None,
            command_id: Some("cmd-1".into()),
            region: Some("us-east-1".into()),
            account: Some("111122223333".into()),
            error_code: None,
            source_ref: "s3://trail/AWSLogs/x.json.gz".into(),
        }
    }

    #[test]
    fn test_access_parameters_are_encrypted_and_the_rest_reads_without_the_key() {
        let key = DataKey::from_slice(&[7u8; 32]).expect("32");
        let records = [access_record("e2", 20), access_record("e1", 10)];
        let bytes = write_access(&records, &key, b"meta".to_vec(), Some(42)).expect("write");
        let first_read = |bytes: Vec<u8>| {
            read_access_file(Bytes::from(bytes), "a.parquet", None).expect("read").first_read_at
        };
        assert_eq!(first_read(bytes.clone()), Some(42));
        let without = write_access(&records, &key, b"meta".to_vec(), None).expect("write");
        assert_eq!(first_read(without), None);
        assert!(memchr::memmem::find(&bytes, b"/etc/shadow").is_none(), "parameters in plaintext");
        let read = read_access_plaintext(Bytes::from(bytes.clone()), "a.parquet").expect("read");
        let sorted = [access_record("e1", 10), access_record("e2", 20)];
        let expected: Vec<AccessRecord> = sorted
            .iter()
            .cloned()
            .map(|record| AccessRecord { parameters: None, ..record })
            .collect();
        assert_eq!(read, expected);
        // With the key, every field comes back, so a rewrite loses nothing.
        let whole = read_access(Bytes::from(bytes.clone()), "a.parquet", Some(&key)).expect("read");
        assert_eq!(whole, sorted.to_vec());
        let wrong = DataKey::from_slice(&[8u8; 32]).expect("32");
        let error = read_access(Bytes::from(bytes), "a.parquet", Some(&wrong)).expect_err("wrong");
        assert!(error.to_string().contains("a.parquet"), "{error}");
    }

    #[test]
    fn test_sessions_read_back_what_was_written() {
        use sessionlake_schemas::{SessionSource, SessionStatus};
        let written = SessionRecord {
            session_id: "alice-0123456789abcdef0".into(),
            principal: None,
            run_as: Some("ssm-user".into()),
            target: Some("i-0123456789abcdef0".into()),
            region: None,
            account: Some("111122223333".into()),
            started_at: Some(1_700_000_000_000_000),
            ended_at: None,
            command_count: 2,
            source: SessionSource::S3,
            source_ref: "s3://b/ssm/alice-0123456789abcdef0.log".into(),
            raw_object: "raw/dt=2023-11-14/alice.s3.v1.zst.sle".into(),
            raw_sha256: "ab".repeat(32),
            key_id: "k".into(),
            ingested_at: 1,
            status: SessionStatus::Complete,
            parser_version: 1,
            understanding: Some(sessionlake_schemas::Understanding {
                shells: vec!["bash".into(), "zsh".into()],
                input_explained: 0.5,
                confidence: sessionlake_schemas::SessionConfidence::Medium,
                reason: "50% of the input explained by prompts and commands".into(),
            }),
        };
        let bytes = write_sessions(std::slice::from_ref(&written)).expect("write");
        let read = read_sessions(Bytes::from(bytes), "s.parquet").expect("read");
        let context = sessionlake_schemas::SessionContext {
            session_id: written.session_id.clone(),
            principal: None,
            run_as: written.run_as.clone(),
            target: written.target.clone(),
            region: None,
            account: written.account.clone(),
            started_at: written.started_at,
        };
        let expected = StoredSession {
            context,
            ended_at: written.ended_at,
            source_ref: written.source_ref.clone(),
            raw_object: written.raw_object.clone(),
            raw_sha256: written.raw_sha256.clone(),
        };
        assert_eq!(read, vec![expected]);
        let garbage = read_sessions(Bytes::from_static(b"PAR1 not parquet"), "bad.parquet");
        assert!(garbage.is_err_and(|e| e.to_string().contains("bad.parquet")));
    }

    /// Returns, for each row group's column chunks, (column, has a bloom filter, codec).
    pub(crate) fn chunks(bytes: Vec<u8>) -> Vec<(String, bool, Compression)> {
        use parquet::file::reader::{FileReader as _, SerializedFileReader};
        let reader = SerializedFileReader::new(Bytes::from(bytes)).expect("footer");
        let metadata = reader.metadata();
        metadata
            .row_groups()
            .iter()
            .flat_map(|group| group.columns())
            .map(|chunk| {
                let name = chunk.column_path().string();
                (name, chunk.bloom_filter_offset().is_some(), chunk.compression())
            })
            .collect()
    }

    #[test]
    fn test_bloom_filters_only_where_a_column_holds_several_values() {
        let blooms = |chunks: Vec<(String, bool, Compression)>| -> Vec<String> {
            chunks.into_iter().filter(|(_, bloom, _)| *bloom).map(|(name, ..)| name).collect()
        };
        // One session: one id, principal and target; the statistics answer every lookup.
        let one: Vec<CommandRecord> = (0..3).map(|seq| record(seq, "ls")).collect();
        let stored = write_commands_compacted_unencrypted(&one).expect("write");
        assert_eq!(blooms(chunks(stored)), Vec::<String>::new());
        // Two sessions of one principal, on two targets (a null aside).
        let mut two = one.clone();
        two[1].session_id = "bob-0123456789abcdef0".into();
        two[1].target = Some("i-0fedcba9876543210".into());
        two[2].principal = None;
        let stored = write_commands_compacted_unencrypted(&two).expect("write");
        assert_eq!(blooms(chunks(stored)), [columns::SESSION_ID, columns::TARGET]);
        // One principal longer than its statistics keep whole: the filter stays.
        let mut long = one.clone();
        for row in &mut long {
            row.principal = Some(
                format!("arn:aws:sts::111122223333:assumed-role/{}/alice", "A".repeat(40)).into(),
            );
        }
        let stored = write_commands_compacted_unencrypted(&long).expect("write");
        assert_eq!(blooms(chunks(stored)), [columns::PRINCIPAL]);
        // Encrypted, as ingest writes it: the same rule.
        let key = DataKey::from_slice(&[9u8; 32]).expect("32");
        let stored = write_commands(&two, &key, b"meta".to_vec()).expect("write");
        let written = chunks(stored);
        assert_eq!(blooms(written.clone()), [columns::SESSION_ID, columns::TARGET]);
    }

    /// Asserts that in `chunks` (of a `commands` file) the columns of
    /// [`UNCOMPRESSED_COMMAND_COLUMNS`] and those of `constant` are stored uncompressed and every
    /// other column with zstd.
    pub(crate) fn assert_commands_compression(
        chunks: &[(String, bool, Compression)],
        constant: &[&str],
    ) {
        assert!(!chunks.is_empty());
        for (name, _, codec) in chunks {
            let plain = UNCOMPRESSED_COMMAND_COLUMNS.contains(&name.as_str())
                || constant.contains(&name.as_str());
            if plain {
                assert_eq!(*codec, Compression::UNCOMPRESSED, "{name}");
            } else {
                assert!(matches!(codec, Compression::ZSTD(_)), "{name}: {codec:?}");
            }
        }
    }

    /// Who, where, which shell and program and the flags are stored uncompressed in every
    /// `commands` file, whatever they hold; text, times, positions and sizes are compressed.
    #[test]
    fn test_few_valued_columns_are_stored_uncompressed_in_every_commands_file() {
        let rows: Vec<CommandRecord> = (0..40)
            .map(|seq| {
                let mut row = record(seq, &format!("echo {seq}"));
                row.output = format!("line {seq}\n");
                row.cwd = Some(format!("/home/alice/{seq}"));
                row.prompt = format!("alice@host:{seq}$ ");
                row.started_at = Some(1_773_446_400_000_000 + i64::from(seq));
                row.output_bytes = u64::from(seq) * 7;
                row.raw_offset = u64::from(seq) * 100;
                row.raw_len = u64::from(seq) + 10;
                if seq % 2 == 0 {
                    row.session_id = "bob-0123456789abcdef0".into();
                    row.principal = Some("arn:aws:iam::111122223333:user/bob".into());
                    row.target = Some("i-0fedcba9876543210".into());
                    row.run_as = Some("root".into());
                }
                row
            })
            .collect();
        let compacted = write_commands_compacted_unencrypted(&rows).expect("write");
        assert_commands_compression(&chunks(compacted), &[]);
        let key = DataKey::from_slice(&[9u8; 32]).expect("32");
        let (at_once, streamed) = written_both_ways(&rows, &key);
        // The rows' region, account, parser version and the like hold one value: those are in
        // the list anyway; none outside it is constant here.
        assert_commands_compression(&chunks(at_once), &[]);
        assert_commands_compression(&chunks(streamed), &[]);
    }

    /// Returns `rows` as one session's `commands` file written at once, then as written by a
    /// [`CommandsWriter`] given the rows one by one (which counts them).
    fn written_both_ways(rows: &[CommandRecord], key: &DataKey) -> (Vec<u8>, Vec<u8>) {
        let at_once = write_commands(rows, key, b"meta".to_vec()).expect("write");
        let mut writer = CommandsWriter::new(Vec::new(), key, b"meta".to_vec()).expect("writer");
        for row in rows.iter().cloned() {
            writer.push(row).expect("push");
        }
        assert_eq!(writer.rows(), rows.len());
        (at_once, writer.finish().expect("finish"))
    }

    /// Both writers of a session's `commands` file leave the columns of one short value (or
    /// only nulls) uncompressed and compress the others; the rows read back the same.
    #[test]
    fn test_columns_of_one_value_are_not_compressed() {
        let key = DataKey::from_slice(&[9u8; 32]).expect("32");
        let rows: Vec<CommandRecord> = (0..50)
            .map(|seq| {
                let mut row = record(seq, &format!("echo {seq}"));
                row.output = format!("{seq}");
                row.started_at = Some(1_773_446_400_000_000 + i64::from(seq));
                row
            })
            .collect();
        let (at_once, streamed) = written_both_ways(&rows, &key);
        let varying = [columns::SEQ, columns::STARTED_AT, columns::COMMAND, columns::OUTPUT];
        for file in [&at_once, &streamed] {
            let written = chunks(file.clone());
            assert_eq!(written.len(), commands_schema().fields().len());
            for (name, _, codec) in written {
                let compressed = codec != Compression::UNCOMPRESSED;
                assert_eq!(compressed, varying.contains(&name.as_str()), "{name}: {codec:?}");
            }
        }
        let (expected, ..) = decrypted(at_once, &key);
        assert_eq!(expected.num_rows(), rows.len());
        assert_eq!(decrypted(streamed, &key).0, expected);
        // One command whose text is long: compressed, though it is the column's one value.
        let long = [record(0, &"x".repeat(STATISTICS_TRUNCATE_LENGTH + 1))];
        let written = chunks(write_commands(&long, &key, b"meta".to_vec()).expect("write"));
        let codec = |column: &str| written.iter().find(|(name, ..)| name == column).map(|c| c.2);
        assert!(matches!(codec(columns::COMMAND), Some(Compression::ZSTD(_))), "{written:?}");
        assert_eq!(codec(columns::OUTPUT), Some(Compression::UNCOMPRESSED));
    }

    #[test]
    fn test_a_one_row_sessions_file_is_not_compressed_and_has_no_bloom_filter() {
        use sessionlake_schemas::{SessionSource, SessionStatus};
        let session = |id: &str, target: &str| SessionRecord {
            session_id: id.into(),
            principal: Some("arn:aws:iam::111122223333:user/alice".into()),
            run_as: None,
            target: Some(target.into()),
            region: None,
            account: None,
            started_at: Some(1_700_000_000_000_000),
            ended_at: None,
            command_count: 1,
            source: SessionSource::S3,
            source_ref: format!("s3://b/{id}.log"),
            raw_object: format!("raw/dt=2023-11-14/{id}.s3.v1.zst.sle"),
            raw_sha256: "ab".repeat(32),
            key_id: "k".into(),
            ingested_at: 1,
            status: SessionStatus::Complete,
            parser_version: 1,
            understanding: None,
        };
        let alice = session("alice-0123456789abcdef0", "i-1");
        let one = chunks(write_sessions(std::slice::from_ref(&alice)).expect("write"));
        assert!(one.iter().all(|(_, bloom, codec)| !bloom && *codec == Compression::UNCOMPRESSED));
        let bob = session("bob-0123456789abcdef0", "i-2");
        let two = chunks(write_sessions(&[alice, bob]).expect("write"));
        assert!(two.iter().all(|(_, _, codec)| matches!(codec, Compression::ZSTD(_))));
        let with_blooms: Vec<&str> =
            two.iter().filter(|(_, bloom, _)| *bloom).map(|(name, ..)| name.as_str()).collect();
        assert_eq!(with_blooms, [columns::SESSION_ID, columns::TARGET]);
    }

    #[test]
    fn test_commands_round_trip_and_need_the_key() {
        let key = DataKey::from_slice(&[9u8; 32]).expect("32");
        let bytes =
            write_commands(&[record(1, "rm -rf /tmp/x"), record(0, "ls")], &key, b"meta".to_vec())
                .expect("write");
        assert!(memchr::memmem::find(&bytes, b"rm -rf").is_none(), "command text is in plaintext");
        assert!(memchr::memmem::find(&bytes, b"secret output").is_none(), "output is in plaintext");

        let (all, ..) = decrypted(bytes.clone(), &key);
        let commands = all
            .column_by_name(columns::COMMAND)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .expect("command column");
        assert_eq!(commands.iter().flatten().collect::<Vec<_>>(), vec!["ls", "rm -rf /tmp/x"]);

        let without_key = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .and_then(|builder| builder.build())
            .map(|reader| reader.collect::<Result<Vec<_>, _>>());
        assert!(!matches!(without_key, Ok(Ok(_))), "encrypted columns read without the key");
    }

    /// Reads the rows of a `commands` file written under `key`, decrypted, as batches
    /// concatenated, and the file's row groups and bloom-filtered columns.
    fn decrypted(bytes: Vec<u8>, key: &DataKey) -> (RecordBatch, usize, Vec<String>) {
        let decryption = decryption(key, &ENCRYPTED_COLUMNS).expect("decryption");
        let options = ArrowReaderOptions::new().with_file_decryption_properties(decryption);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new_with_options(Bytes::from(bytes), options)
                .expect("reader");
        let metadata = builder.metadata().clone();
        let batches: Vec<RecordBatch> =
            builder.build().expect("build").collect::<Result<_, _>>().expect("read");
        let all = arrow_select::concat::concat_batches(&commands_schema(), &batches).expect("one");
        let blooms = metadata.row_groups().first().map_or(Vec::new(), |group| {
            group
                .columns()
                .iter()
                .filter(|column| column.bloom_filter_offset().is_some())
                .map(|column| column.column_path().string())
                .collect()
        });
        (all, metadata.num_row_groups(), blooms)
    }

    /// A session's rows given one by one to [`CommandsWriter`], in the file's order, make the
    /// file [`write_commands`] makes of them at once: the same rows, row groups and bloom
    /// filters (a principal too long for whole statistics keeps its filter), and an empty
    /// session a file with no rows.
    #[test]
    fn test_a_session_written_as_its_rows_come_is_the_file_written_at_once() {
        let key = DataKey::from_slice(&[7u8; 32]).expect("32");
        let long = format!("arn:aws:sts::111122223333:assumed-role/{}/alice", "A".repeat(80));
        let rows: Vec<CommandRecord> = (0..(2 * DEFAULT_ROW_GROUP_SIZE as u32 + 17))
            .map(|seq| {
                let mut row = record(seq, &format!("echo {seq}"));
                row.started_at = (seq > 5).then_some(1_773_446_400_000_000 + i64::from(seq));
                row.principal = Some(long.as_str().into());
                row
            })
            .collect();
        let (at_once, streamed) = written_both_ways(&rows, &key);
        let (expected, expected_groups, expected_blooms) = decrypted(at_once, &key);
        let (found, groups, blooms) = decrypted(streamed, &key);
        assert_eq!(found, expected);
        assert_eq!((groups, &blooms), (expected_groups, &expected_blooms));
        assert_eq!((groups, blooms), (3, vec![columns::PRINCIPAL.to_string()]));

        let empty = CommandsWriter::new(Vec::new(), &key, b"meta".to_vec()).expect("writer");
        let (rows, ..) = decrypted(empty.finish().expect("finish"), &key);
        assert_eq!(rows.num_rows(), 0);

        // Outputs that do not compress: row groups are closed by their memory, not their rows,
        // at the same rows in both.
        let mut state = 1u64;
        let noisy: Vec<CommandRecord> = (0..8_000)
            .map(|seq| {
                let mut row = record(seq, "head -c 8k /dev/urandom | xxd -p");
                row.output = (0..1_024)
                    .map(|_| {
                        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        format!("{:016x}", state)
                    })
                    .collect();
                row
            })
            .collect();
        let at_once = write_commands(&noisy, &key, b"meta".to_vec()).expect("write");
        let mut writer = CommandsWriter::new(Vec::new(), &key, b"meta".to_vec()).expect("writer");
        for row in noisy {
            writer.push(row).expect("push");
        }
        let (expected, expected_groups, _) = decrypted(at_once, &key);
        let (found, groups, _) = decrypted(writer.finish().expect("finish"), &key);
        assert_eq!(found, expected);
        assert_eq!(groups, expected_groups);
        assert!(groups >= 2, "128 MB of output in {groups} row group");
    }
}
