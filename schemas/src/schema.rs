//! Arrow schemas of the lake's tables.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::columns::*;

/// Version of the table schemas, stored in each Parquet file's key-value metadata.
pub const SCHEMA_VERSION: u32 = 2;

/// Columns added after version 1, each nullable: files written before them lack them, and
/// readers take them as null there ([`validate_schema`] accepts their absence).
/// (`confidence` is one of them in `sessions` only: it is required in `commands`, where it is
/// not nullable.)
pub const ADDED_COLUMNS: [&str; 8] =
    [EFFECTIVE_USER, SHELL, KIND, PROGRAM, SHELLS, INPUT_EXPLAINED, CONFIDENCE, CONFIDENCE_REASON];

/// Key under which [`SCHEMA_VERSION`] is stored in Parquet key-value metadata.
pub const SCHEMA_VERSION_KEY: &str = "sessionlake.schema_version";

/// Columns that hold what a person typed or saw: encrypted with Parquet modular encryption.
/// Everything else (ids, times, who, where) stays readable for pruning, retention and other engines.
pub const ENCRYPTED_COLUMNS: [&str; 4] = [COMMAND, OUTPUT, PROMPT, CWD];

/// Columns of the `access` table that can hold what a person typed (Run Command scripts,
/// port-forwarding hosts and ports): encrypted like [`ENCRYPTED_COLUMNS`]. Who, when, where,
/// which document and which session stay readable.
pub const ACCESS_ENCRYPTED_COLUMNS: [&str; 1] = [PARAMETERS];

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static COMMANDS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SESSION_ID, DataType::Utf8, false),
        Field::new(SEQ, DataType::UInt32, false),
        Field::new(STARTED_AT, timestamp(), true),
        Field::new(TIME_SOURCE, DataType::Utf8, false),
        Field::new(PRINCIPAL, DataType::Utf8, true),
        Field::new(RUN_AS, DataType::Utf8, true),
        Field::new(TARGET, DataType::Utf8, true),
        Field::new(REGION, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(CWD, DataType::Utf8, true),
        Field::new(PROMPT, DataType::Utf8, false),
        Field::new(COMMAND, DataType::Utf8, false),
        Field::new(OUTPUT, DataType::Utf8, false),
        Field::new(OUTPUT_TRUNCATED, DataType::Boolean, false),
        Field::new(OUTPUT_BYTES, DataType::UInt64, false),
        Field::new(RAW_OFFSET, DataType::UInt64, false),
        Field::new(RAW_LEN, DataType::UInt64, false),
        Field::new(REDACTIONS, DataType::UInt32, false),
        Field::new(CONFIDENCE, DataType::Utf8, false),
        Field::new(PARSER_VERSION, DataType::UInt32, false),
        Field::new(EFFECTIVE_USER, DataType::Utf8, true),
        Field::new(SHELL, DataType::Utf8, true),
        Field::new(KIND, DataType::Utf8, true),
        Field::new(PROGRAM, DataType::Utf8, true),
    ]))
});

static SESSIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SESSION_ID, DataType::Utf8, false),
        Field::new(PRINCIPAL, DataType::Utf8, true),
        Field::new(RUN_AS, DataType::Utf8, true),
        Field::new(TARGET, DataType::Utf8, true),
        Field::new(REGION, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(STARTED_AT, timestamp(), true),
        Field::new(ENDED_AT, timestamp(), true),
        Field::new(COMMAND_COUNT, DataType::UInt32, false),
        Field::new(SOURCE, DataType::Utf8, false),
        Field::new(SOURCE_REF, DataType::Utf8, false),
        Field::new(RAW_OBJECT, DataType::Utf8, false),
        Field::new(RAW_SHA256, DataType::Utf8, false),
        Field::new(KEY_ID, DataType::Utf8, false),
        Field::new(INGESTED_AT, timestamp(), false),
        Field::new(STATUS, DataType::Utf8, false),
        Field::new(PARSER_VERSION, DataType::UInt32, false),
        Field::new(SHELLS, DataType::Utf8, true),
        Field::new(INPUT_EXPLAINED, DataType::Float64, true),
        Field::new(CONFIDENCE, DataType::Utf8, true),
        Field::new(CONFIDENCE_REASON, DataType::Utf8, true),
    ]))
});

static ACCESS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(EVENT_TIME, timestamp(), false),
        Field::new(KIND, DataType::Utf8, false),
        Field::new(PRINCIPAL, DataType::Utf8, true),
        Field::new(PRINCIPAL_TYPE, DataType::Utf8, true),
        Field::new(SOURCE_IP, DataType::Utf8, true),
        Field::new(USER_AGENT, DataType::Utf8, true),
        Field::new(TARGETS, DataType::new_list(DataType::Utf8, true), false),
        Field::new(OS_USER, DataType::Utf8, true),
        Field::new(DOCUMENT_NAME, DataType::Utf8, true),
        Field::new(PARAMETERS, DataType::Utf8, true),
        Field::new(SESSION_ID, DataType::Utf8, true),
        Field::new(COMMAND_ID, DataType::Utf8, true),
        Field::new(REGION, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(ERROR_CODE, DataType::Utf8, true),
        Field::new(SOURCE_REF, DataType::Utf8, false),
    ]))
});

/// Returns the schema of the `access` table (one row per CloudTrail access event).
pub fn access_schema() -> SchemaRef {
    Arc::clone(&ACCESS)
}

/// Returns the schema of the `commands` table (one row per command).
pub fn commands_schema() -> SchemaRef {
    Arc::clone(&COMMANDS)
}

/// Returns the schema of the `sessions` table (one row per session).
pub fn sessions_schema() -> SchemaRef {
    Arc::clone(&SESSIONS)
}

/// Checks that `actual` has every column of `expected` with the same type.
///
/// Extra columns are allowed (newer writers may add some); missing or retyped ones are not,
/// except the [`ADDED_COLUMNS`], which older files lack.
pub fn validate_schema(expected: &Schema, actual: &Schema) -> Result<(), String> {
    for field in expected.fields() {
        match actual.field_with_name(field.name()) {
            Ok(found) if found.data_type() == field.data_type() => {}
            Ok(found) => {
                return Err(format!(
                    "column {} has type {} where {} was expected",
                    field.name(),
                    found.data_type(),
                    field.data_type()
                ));
            }
            Err(_) if field.is_nullable() && ADDED_COLUMNS.contains(&field.name().as_str()) => {}
            Err(_) => return Err(format!("column {} is missing", field.name())),
        }
    }
    Ok(())
}

/// A table of the lake: its folder, the manifest kind of its files, its Arrow schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `commands`: one row per command, sensitive columns encrypted.
    Commands,
    /// `sessions`: one row per session version, no encrypted column.
    Sessions,
    /// `access`: one row per CloudTrail access event, sensitive columns encrypted.
    Access,
}

impl Table {
    /// Every table, in folder order.
    pub const ALL: [Table; 3] = [Table::Commands, Table::Sessions, Table::Access];

    /// Returns the table of a manifest entry's kind, if its files are a table's.
    pub fn of(kind: crate::manifest::ObjectKind) -> Option<Table> {
        use crate::manifest::ObjectKind;
        match kind {
            ObjectKind::Commands => Some(Table::Commands),
            ObjectKind::Sessions => Some(Table::Sessions),
            ObjectKind::Access => Some(Table::Access),
            _ => None,
        }
    }

    /// Returns the manifest kind of the table's files.
    pub fn kind(self) -> crate::manifest::ObjectKind {
        use crate::manifest::ObjectKind;
        match self {
            Table::Commands => ObjectKind::Commands,
            Table::Sessions => ObjectKind::Sessions,
            Table::Access => ObjectKind::Access,
        }
    }

    /// Returns the table's folder in the lake.
    pub fn dir(self) -> &'static str {
        match self {
            Table::Commands => crate::paths::COMMANDS_DIR,
            Table::Sessions => crate::paths::SESSIONS_DIR,
            Table::Access => crate::paths::ACCESS_DIR,
        }
    }

    /// Returns the table's Arrow schema.
    pub fn arrow_schema(self) -> SchemaRef {
        match self {
            Table::Commands => commands_schema(),
            Table::Sessions => sessions_schema(),
            Table::Access => access_schema(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table is its kind's, the only one of its folder.
    #[test]
    fn test_a_table_is_its_kinds_and_its_folders() {
        for table in Table::ALL {
            assert_eq!(Table::of(table.kind()), Some(table));
            let others = Table::ALL.iter().filter(|other| other.dir() == table.dir()).count();
            assert_eq!(others, 1, "{table:?}");
        }
        assert_eq!(Table::of(crate::manifest::ObjectKind::Raw), None);
    }

    #[test]
    fn test_encrypted_columns_exist_in_commands() {
        for name in ENCRYPTED_COLUMNS {
            assert!(commands_schema().field_with_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn test_encrypted_columns_exist_in_access() {
        for name in ACCESS_ENCRYPTED_COLUMNS {
            assert!(access_schema().field_with_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn test_validate_schema_reports_missing_and_retyped() {
        let expected = commands_schema();
        assert_eq!(validate_schema(&expected, &expected), Ok(()));
        let fewer = Schema::new(expected.fields()[1..].to_vec());
        assert_eq!(
            validate_schema(&expected, &fewer),
            Err("column session_id is missing".to_string())
        );
    }
}
