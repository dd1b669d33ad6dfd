//! Records to Parquet: the layout every reader relies on.
//!
//! - zstd, page-level statistics and the page index, so engines prune row groups and pages;
//! - rows sorted by (started_at, session_id, seq) and declared so in `sorting_columns`;
//! - bloom filters on `session_id`, `principal`, `target` (plaintext columns only: parquet
//!   writes bloom filters unencrypted, see docs/stack-notes.md);
//! - the `commands` file's sensitive columns ([`ENCRYPTED_COLUMNS`]) encrypted with Parquet
//!   modular encryption under one data key per file, footer in plaintext (signed) so that other
//!   engines read the rest; the wrapped data key is the footer's key metadata;
//! - [`SCHEMA_VERSION`] in the key-value metadata.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sessionlake_lake::DataKey;
use sessionlake_schemas::{
    CommandRecord, ENCRYPTED_COLUMNS, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SessionRecord, columns,
    commands_schema, sessions_schema,
};

/// Rows per row group: a one-session lookup should read one row group (see BENCHMARKS.md).
pub const DEFAULT_ROW_GROUP_SIZE: usize = 128 * 1024;

/// zstd level of Parquet pages.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Columns that get bloom filters: the ones investigators look up by exact value.
pub const BLOOM_FILTER_COLUMNS: [&str; 3] =
    [columns::SESSION_ID, columns::PRINCIPAL, columns::TARGET];

/// Errors writing Parquet.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {table} parquet: {source}")]
pub struct WriteError {
    table: &'static str,
    #[source]
    source: parquet::errors::ParquetError,
}

fn properties(
    sorting: Vec<SortingColumn>,
    encryption: Option<Arc<FileEncryptionProperties>>,
) -> WriterProperties {
    let zstd = ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(DEFAULT_ROW_GROUP_SIZE))
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_string(),
            SCHEMA_VERSION.to_string(),
        )]));
    for column in BLOOM_FILTER_COLUMNS {
        builder = builder.set_column_bloom_filter_enabled(ColumnPath::from(column), true);
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
    let fail = |source| WriteError { table, source };
    let mut buffer = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties)).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(buffer)
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
    let mut sorted: Vec<&CommandRecord> = records.iter().collect();
    sorted.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));

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
    for record in sorted {
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
    ];
    let fail = |source| WriteError { table: "commands", source };
    let batch = RecordBatch::try_new(commands_schema(), arrays).map_err(|e| fail(e.into()))?;
    let mut encryption = FileEncryptionProperties::builder(key.expose().to_vec())
        .with_plaintext_footer(true)
        .with_footer_key_metadata(key_metadata.clone());
    for column in ENCRYPTED_COLUMNS {
        encryption = encryption.with_column_key_and_metadata(
            column,
            key.expose().to_vec(),
            key_metadata.clone(),
        );
    }
    let encryption = encryption.build().map_err(fail)?;
    let sorting = [columns::STARTED_AT, columns::SESSION_ID, columns::SEQ]
        .into_iter()
        .map(|name| SortingColumn {
            column_idx: index_of(name),
            descending: false,
            nulls_first: true,
        })
        .collect();
    write("commands", batch, properties(sorting, Some(encryption)))
}

/// Writes `records` as a `sessions` file (no sensitive columns: not encrypted).
pub fn write_sessions(records: &[SessionRecord]) -> Result<Vec<u8>, WriteError> {
    let mut sorted: Vec<&SessionRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (a.started_at, &a.session_id).cmp(&(b.started_at, &b.session_id)));
    let strings = |get: &dyn Fn(&SessionRecord) -> Option<&str>| -> ArrayRef {
        let mut builder = StringBuilder::new();
        for record in &sorted {
            builder.append_option(get(record));
        }
        Arc::new(builder.finish())
    };
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
    ];
    let batch = RecordBatch::try_new(sessions_schema(), arrays)
        .map_err(|e| WriteError { table: "sessions", source: e.into() })?;
    let index = |name| sessions_schema().index_of(name).map_or(0, |i| i as i32);
    let sorting = [columns::STARTED_AT, columns::SESSION_ID]
        .into_iter()
        .map(|name| SortingColumn { column_idx: index(name), descending: false, nulls_first: true })
        .collect();
    write("sessions", batch, properties(sorting, None))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::encryption::decrypt::FileDecryptionProperties;
    use sessionlake_schemas::{Confidence, TimeSource};

    use super::*;

    fn record(seq: u32, command: &str) -> CommandRecord {
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
        }
    }

    #[test]
    fn test_commands_round_trip_and_need_the_key() {
        let key = DataKey::from_slice(&[9u8; 32]).expect("32");
        let bytes =
            write_commands(&[record(1, "rm -rf /tmp/x"), record(0, "ls")], &key, b"meta".to_vec())
                .expect("write");
        assert!(memchr::memmem::find(&bytes, b"rm -rf").is_none(), "command text is in plaintext");
        assert!(memchr::memmem::find(&bytes, b"secret output").is_none(), "output is in plaintext");

        let decryption = FileDecryptionProperties::builder(key.expose().to_vec())
            .with_column_keys(ENCRYPTED_COLUMNS.to_vec(), vec![key.expose().to_vec(); 4])
            .expect("keys")
            .build()
            .expect("props");
        let options = ArrowReaderOptions::new().with_file_decryption_properties(decryption);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            Bytes::from(bytes.clone()),
            options,
        )
        .expect("reader")
        .build()
        .expect("build");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
        let commands = batches[0]
            .column_by_name(columns::COMMAND)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .expect("command column");
        assert_eq!(commands.iter().flatten().collect::<Vec<_>>(), vec!["ls", "rm -rf /tmp/x"]);

        let without_key = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .and_then(|builder| builder.build())
            .map(|reader| reader.collect::<Result<Vec<_>, _>>());
        assert!(!matches!(without_key, Ok(Ok(_))), "encrypted columns read without the key");
    }
}
