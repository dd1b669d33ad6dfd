//! Delta statistics of an added file, from its Parquet footer (plaintext: readable without the
//! keys): the row count, and for each unencrypted text or time column its null count and, when
//! the footer's bounds are exact, its minimum and maximum. Never a bound of an encrypted
//! column: their statistics are encrypted in the footer, and they are left out by name too.
//! The footer is read through the chain's digests of the file, like every other read.

use std::collections::BTreeMap;

use arrow_schema::DataType as ArrowType;
use object_store::ObjectStoreExt as _;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use serde_json::{Value, json};
use sessionlake_schemas::manifest::ObjectEntry;
use sessionlake_schemas::{ACCESS_ENCRYPTED_COLUMNS, ENCRYPTED_COLUMNS};
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::verified::VerifiedStore;

use crate::Table;

/// Longest text bound written: Delta readers compare bounds as they are, and a longer value is
/// left out rather than cut (a cut maximum would be below the values it bounds).
const MAX_TEXT_BOUND: usize = 32;

/// Reads the footer of `entry` and returns its statistics as the Delta `stats` JSON; `None`
/// when the footer cannot be read (the add action then carries none).
pub(crate) async fn of_file(
    store: &LakeStore,
    table: Table,
    entry: &ObjectEntry,
) -> Option<String> {
    match footer(store, entry).await {
        Ok(metadata) => Some(of_footer(table, &metadata).to_string()),
        Err(error) => {
            tracing::warn!(file = %entry.path, %error, "no Delta statistics: footer not read");
            None
        }
    }
}

/// Reads the footer of `entry`: its last 64 KiB, and more when the footer is longer, each byte
/// checked against the digests its commit recorded (a file altered since gives no statistics).
async fn footer(store: &LakeStore, entry: &ObjectEntry) -> Result<ParquetMetaData, String> {
    let (engine, prefix) = store.engine_store();
    let path = object_store::path::Path::from(format!("{prefix}{}", entry.path));
    let verified = VerifiedStore::new(engine, prefix, [entry], |path| store.describe(path));
    let size = entry.size;
    let mut suffix = size.min(64 * 1024);
    let mut reader = ParquetMetaDataReader::new();
    loop {
        let bytes = verified
            .get_range(&path, size - suffix..size)
            .await
            .map_err(|error| error.to_string())?;
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => return reader.finish().map_err(|error| error.to_string()),
            Err(ParquetError::NeedMoreData(needed))
                if (needed as u64) > suffix && (needed as u64) <= size =>
            {
                suffix = needed as u64;
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// The statistics of a file whose footer is `metadata`.
pub(crate) fn of_footer(table: Table, metadata: &ParquetMetaData) -> Value {
    let encrypted: &[&str] = match table {
        Table::Commands => &ENCRYPTED_COLUMNS,
        Table::Sessions => &[],
        Table::Access => &ACCESS_ENCRYPTED_COLUMNS,
    };
    let schema = table.arrow_schema();
    let mut mins: BTreeMap<String, Value> = BTreeMap::new();
    let mut maxes: BTreeMap<String, Value> = BTreeMap::new();
    let mut nulls: BTreeMap<String, Value> = BTreeMap::new();
    for field in schema.fields() {
        let name = field.name();
        if encrypted.contains(&name.as_str()) {
            continue;
        }
        let kind = field.data_type();
        if !matches!(kind, ArrowType::Utf8 | ArrowType::Timestamp(_, Some(_))) {
            continue;
        }
        let mut null_count = Some(0u64);
        // Bounds only when every row group has exact ones.
        let mut bounds: Option<Option<(Value, Value)>> = None;
        for group in metadata.row_groups() {
            let column =
                group.columns().iter().find(|column| column.column_path().string() == *name);
            let statistics = column.and_then(|column| column.statistics());
            null_count =
                null_count.zip(statistics.and_then(Statistics::null_count_opt)).map(|(a, b)| a + b);
            let pair = statistics.and_then(bounds_of);
            bounds = Some(match (bounds, pair) {
                (None, pair) => pair,
                (Some(Some((low, high))), Some((new_low, new_high))) => {
                    let low = if compare(&new_low, &low).is_lt() { new_low } else { low };
                    let high = if compare(&new_high, &high).is_gt() { new_high } else { high };
                    Some((low, high))
                }
                (Some(_), _) => None,
            });
        }
        if let Some(count) = null_count {
            nulls.insert(name.clone(), json!(count));
        }
        if let Some(Some((low, high))) = bounds {
            mins.insert(name.clone(), low);
            maxes.insert(name.clone(), high);
        }
    }
    json!({
        "numRecords": metadata.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    })
}

/// A row group's exact bounds of a text or time column, as Delta writes them.
fn bounds_of(statistics: &Statistics) -> Option<(Value, Value)> {
    if !(statistics.min_is_exact() && statistics.max_is_exact()) {
        return None;
    }
    match statistics {
        Statistics::ByteArray(values) => {
            let text = |bytes: Option<&parquet::data_type::ByteArray>| {
                bytes.and_then(|bytes| std::str::from_utf8(bytes.data()).ok()).map(str::to_string)
            };
            let (low, high) = text(values.min_opt()).zip(text(values.max_opt()))?;
            (low.chars().count() <= MAX_TEXT_BOUND && high.chars().count() <= MAX_TEXT_BOUND)
                .then(|| (json!(low), json!(high)))
        }
        Statistics::Int64(values) => {
            let (low, high) = values.min_opt().zip(values.max_opt())?;
            Some((json!(time_floor(*low)), json!(time_ceil(*high))))
        }
        _ => None,
    }
}

/// Orders two bounds of one column (both texts, or both times as RFC 3339 of one width).
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    a.as_str().unwrap_or_default().cmp(b.as_str().unwrap_or_default())
}

/// A time in µs as Delta writes a bound, in milliseconds: the lower bound rounded down.
fn time_floor(micros: i64) -> String {
    format_millis(micros.div_euclid(1000))
}

/// The upper bound rounded up, so that it still bounds the microseconds it cuts.
fn time_ceil(micros: i64) -> String {
    format_millis(micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0))
}

fn format_millis(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
