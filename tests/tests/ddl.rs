//! The Athena / Trino DDL (`schemas/ddl/athena.sql`) declares each column with the type those
//! engines read the lake's Parquet column as: unsigned 32-bit as `bigint`, unsigned 64-bit as
//! `decimal(20,0)` (Trino's mapping), and leaves out only the encrypted columns.

use std::collections::BTreeMap;

use sessionlake_tests::{duckdb, files_under, repo_root, run};

/// The columns each `CREATE EXTERNAL TABLE` of the DDL declares, by table, with their types.
fn declared() -> BTreeMap<String, BTreeMap<String, String>> {
    let ddl = std::fs::read_to_string(repo_root().join("schemas/ddl/athena.sql")).expect("ddl");
    let mut tables = BTreeMap::new();
    for statement in ddl.split("CREATE EXTERNAL TABLE IF NOT EXISTS ").skip(1) {
        let (name, rest) = statement.split_once(" (").expect("a column list");
        let columns = rest.split_once("\n)").expect("the list ends").0;
        let mut declared = BTreeMap::new();
        for line in columns.lines().map(|line| line.split("--").next().unwrap_or_default()) {
            // `name type` pairs, commas outside `<…>` and `(…)` apart.
            let mut depth = 0;
            let mut item = String::new();
            for c in line.chars().chain([',']) {
                match c {
                    '<' | '(' => depth += 1,
                    '>' | ')' => depth -= 1,
                    _ => {}
                }
                if c == ',' && depth == 0 {
                    if let Some((column, kind)) = item.trim().split_once(' ') {
                        declared.insert(column.to_string(), kind.trim().to_string());
                    }
                    item.clear();
                } else {
                    item.push(c);
                }
            }
        }
        tables.insert(name.trim_start_matches("sessionlake_").to_string(), declared);
    }
    tables
}

/// The type Athena / Trino reads a column of DuckDB's `DESCRIBE` type as.
fn engine_type(duckdb_type: &str) -> String {
    match duckdb_type {
        "VARCHAR" => "string",
        "INTEGER" => "int",
        "BIGINT" | "UINTEGER" => "bigint",
        "UBIGINT" => "decimal(20,0)",
        "BOOLEAN" => "boolean",
        "DOUBLE" => "double",
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMP" => "timestamp",
        "VARCHAR[]" => "array<string>",
        other => other,
    }
    .to_string()
}

/// The columns of a file of `table` in the lake under `dir`, as DuckDB describes them, in the
/// types engines read them as.
fn described(dir: &std::path::Path, table: &str) -> BTreeMap<String, String> {
    let folder = dir.join("lake").join(table);
    let file = files_under(&folder)
        .into_iter()
        .find(|path| path.extension().is_some_and(|ext| ext == "parquet"))
        .map(|path| folder.join(path))
        .unwrap_or_else(|| panic!("a {table} file"));
    let sql = format!(
        "DESCRIBE SELECT * FROM read_parquet('{}', hive_partitioning = false)",
        file.display()
    );
    duckdb(dir, &sql)
        .iter()
        .map(|row| {
            let name = row[0].as_str().expect("name").to_string();
            (name, engine_type(row[1].as_str().expect("type")))
        })
        .collect()
}

#[test]
fn test_the_athena_ddl_declares_the_types_of_the_files() {
    let (dir, _) = super::ingested_examples();
    let declared = declared();
    assert_eq!(declared.keys().collect::<Vec<_>>(), ["access", "commands", "sessions"]);
    let encrypted: BTreeMap<&str, Vec<&str>> = [
        ("commands", sessionlake_schemas::ENCRYPTED_COLUMNS.to_vec()),
        ("sessions", Vec::new()),
        ("access", sessionlake_schemas::ACCESS_ENCRYPTED_COLUMNS.to_vec()),
    ]
    .into_iter()
    .collect();
    for (table, columns) in &declared {
        let in_file = described(dir.path(), table);
        for (column, kind) in columns {
            assert_eq!(in_file.get(column), Some(kind), "{table}.{column}");
        }
        for column in in_file.keys().filter(|column| !columns.contains_key(*column)) {
            assert!(
                encrypted[table.as_str()].contains(&column.as_str()),
                "{table}.{column} is in the files but not in the DDL"
            );
        }
    }
}

/// The columns of each table's Delta log as the Python `deltalake` package reads its schema,
/// in the names `engine_type` gives.
fn delta_columns(table_dir: &std::path::Path) -> BTreeMap<String, String> {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON")
        .expect("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test");
    let script = "import deltalake, sys\n\
                  print(deltalake.DeltaTable(sys.argv[1]).schema().to_json())\n";
    let ran = run(std::process::Command::new(python).arg("-c").arg(script).arg(table_dir));
    assert_eq!(ran.code, 0, "deltalake on {}: {}", table_dir.display(), ran.stderr);
    let schema: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("schema JSON");
    let name = |delta_type: &serde_json::Value| -> String {
        match delta_type {
            serde_json::Value::String(primitive) => match primitive.as_str() {
                "long" => "bigint".to_string(),
                "integer" => "int".to_string(),
                other => other.to_string(),
            },
            array if array["type"] == "array" => {
                format!("array<{}>", array["elementType"].as_str().expect("element type"))
            }
            other => other.to_string(),
        }
    };
    schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| (field["name"].as_str().expect("name").to_string(), name(&field["type"])))
        .collect()
}

/// Each table's Delta log declares every column of the files (encrypted ones too: a reader
/// with the keys reads them) with the type engines read it as, and `dt`, its partition.
#[test]
fn test_the_delta_logs_declare_the_types_of_the_files() {
    let (dir, _) = super::ingested_examples();
    for table in ["commands", "sessions", "access"] {
        let mut in_file = described(dir.path(), table);
        in_file.insert("dt".to_string(), "string".to_string());
        let folder = dir.path().join("lake").join(table);
        assert_eq!(delta_columns(&folder), in_file, "{table}");
    }
}
