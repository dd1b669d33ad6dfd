//! Paging: an opaque cursor naming the last row of a page by the listing's sort key, so that the
//! next page starts right after it (`--limit N --after CURSOR`) however the lake grew meanwhile.
//!
//! # Format
//!
//! URL-safe base64 (no padding) of the JSON `{"v":1,"of":"commands","t":<µs or null>,"k":[…]}`:
//! the listing it belongs to, the row's sort time (null sorts first) and the rest of its sort
//! key (`[session_id, seq]` for commands, `[session_id, source]` for sessions). Sort keys are
//! unique, so every row is on exactly one page.

use base64::Engine as _;
use datafusion::arrow::array::{Array, AsArray as _, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType, UInt64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use sessionlake_storage::{bail, ensure};

use crate::error::{Context as _, ErrorKind as _, ReadErrorKind, ReadResult};

/// Version of the cursor format.
const CURSOR_VERSION: u32 = 1;

/// One part of a sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    /// A number (`seq`).
    Number(u64),
    /// A text (`session_id`, `source`).
    Text(String),
}

impl KeyValue {
    /// Reads the (valid) value at `row`: an integer as a number, anything else as its text
    /// (a decimal key, such as `search --include-access`'s, compares as its digits).
    fn of(array: &dyn Array, row: usize) -> ReadResult<KeyValue> {
        let one = array.slice(row, 1);
        let format = |error| ReadErrorKind::Format.passing(error);
        Ok(match one.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let text = cast(&one, &DataType::Utf8).map_err(format)?;
                KeyValue::Text(text.as_string::<i32>().value(0).to_string())
            }
            integer if integer.is_integer() => {
                let number = cast(&one, &DataType::UInt64).map_err(format)?;
                let number = number.as_primitive::<UInt64Type>();
                ensure!(
                    number.is_valid(0),
                    ReadErrorKind::Format,
                    "{} is not a count",
                    array.data_type()
                );
                KeyValue::Number(number.value(0))
            }
            _ => {
                let formatter = ArrayFormatter::try_new(one.as_ref(), &FormatOptions::default())
                    .map_err(format)?;
                KeyValue::Text(formatter.value(0).to_string())
            }
        })
    }

    fn scalar(&self) -> ScalarValue {
        match self {
            KeyValue::Number(number) => ScalarValue::UInt64(Some(*number)),
            KeyValue::Text(text) => ScalarValue::from(text.as_str()),
        }
    }
}

/// The sort key of the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "v")]
    version: u32,
    /// Listing the cursor pages (`commands`, `sessions`).
    #[serde(rename = "of")]
    listing: String,
    /// Sort time in µs since the epoch; `None` sorts first.
    #[serde(rename = "t")]
    time: Option<i64>,
    /// The rest of the sort key.
    #[serde(rename = "k")]
    keys: Vec<KeyValue>,
}

impl Cursor {
    /// Returns the cursor of row `row` of `batch`, whose sort time is column `time_column` and
    /// whose other key parts are `key_columns`.
    pub fn of_row(
        listing: &str,
        batch: &RecordBatch,
        row: usize,
        time_column: &str,
        key_columns: &[&str],
    ) -> ReadResult<Cursor> {
        let column = |name: &str| {
            batch.column_by_name(name).with_context_kind(ReadErrorKind::Format, || {
                format!("the result has no column {name} to page on")
            })
        };
        let times = column(time_column)?;
        let time = match times.as_primitive_opt::<TimestampMicrosecondType>() {
            Some(times) if times.is_valid(row) => Some(times.value(row)),
            Some(_) => None,
            None => bail!(ReadErrorKind::Format, "{time_column} is not a time in µs"),
        };
        let keys = key_columns
            .iter()
            .map(|name| {
                let array = column(name)?;
                ensure!(
                    array.is_valid(row),
                    ReadErrorKind::Format,
                    "{name} is null: it cannot page"
                );
                KeyValue::of(array.as_ref(), row)
                    .with_context_kind(ReadErrorKind::Format, || format!("{name} cannot page"))
            })
            .collect::<ReadResult<_>>()?;
        Ok(Cursor { version: CURSOR_VERSION, listing: listing.to_string(), time, keys })
    }

    /// Returns the opaque token.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a token of `listing` (what `--after` takes).
    pub fn decode(token: &str, listing: &str) -> ReadResult<Cursor> {
        let invalid = || format!("{token:?} is not a cursor printed by sessionlake");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .with_context_kind(ReadErrorKind::Cursor, invalid)?;
        let cursor: Cursor =
            serde_json::from_slice(&json).with_context_kind(ReadErrorKind::Cursor, invalid)?;
        ensure!(
            cursor.version == CURSOR_VERSION,
            ReadErrorKind::Cursor,
            "cursor version {} is not supported (this sessionlake reads {CURSOR_VERSION})",
            cursor.version
        );
        ensure!(
            cursor.listing == listing,
            ReadErrorKind::Cursor,
            "the cursor pages {}, not {listing}",
            cursor.listing
        );
        Ok(cursor)
    }

    /// Returns the SQL condition "the row sorts after this cursor" over `time_expression`
    /// (nulls first) then `key_expressions`, its values bound through `param`.
    pub fn condition(
        &self,
        time_expression: &str,
        key_expressions: &[&str],
        mut param: impl FnMut(ScalarValue) -> String,
    ) -> ReadResult<String> {
        ensure!(
            self.keys.len() == key_expressions.len(),
            ReadErrorKind::Cursor,
            "the cursor has {} key parts where {} pages on {}",
            self.keys.len(),
            self.listing,
            key_expressions.len()
        );
        let mut rest = String::new();
        for (expression, value) in key_expressions.iter().zip(&self.keys).rev() {
            let bound = param(value.scalar());
            rest = if rest.is_empty() {
                format!("{expression} > {bound}")
            } else {
                format!("({expression} > {bound} OR ({expression} = {bound} AND {rest}))")
            };
        }
        Ok(match self.time {
            None => format!(
                "(({time_expression}) IS NOT NULL OR (({time_expression}) IS NULL AND {rest}))"
            ),
            Some(micros) => {
                let bound =
                    param(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())));
                format!(
                    "(({time_expression}) > {bound} OR (({time_expression}) = {bound} AND {rest}))"
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(time: Option<i64>) -> Cursor {
        Cursor {
            version: CURSOR_VERSION,
            listing: "commands".to_string(),
            time,
            keys: vec![KeyValue::Text("alice-1".to_string()), KeyValue::Number(3)],
        }
    }

    #[test]
    fn test_cursor_round_trips_and_refuses_others() {
        for time in [None, Some(1_773_480_600_000_000)] {
            let token = cursor(time).encode();
            assert_eq!(Cursor::decode(&token, "commands").expect(&token), cursor(time));
            assert!(Cursor::decode(&token, "sessions").is_err(), "{token}");
        }
        for bad in ["", "not a cursor", "eyJ2IjoyfQ"] {
            assert!(Cursor::decode(bad, "commands").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn test_condition_orders_nulls_first_then_keys() {
        let mut params = Vec::new();
        let mut param = |value| {
            params.push(value);
            format!("${}", params.len())
        };
        let timed = cursor(Some(5)).condition("t", &["s", "q"], &mut param).expect("condition");
        assert_eq!(timed, "((t) > $3 OR ((t) = $3 AND (s > $2 OR (s = $2 AND q > $1))))");
        let untimed = cursor(None).condition("t", &["s", "q"], &mut param).expect("condition");
        assert_eq!(
            untimed,
            "((t) IS NOT NULL OR ((t) IS NULL AND (s > $5 OR (s = $5 AND q > $4))))"
        );
        assert!(cursor(None).condition("t", &["s"], &mut param).is_err());
    }
}
