//! `sessionlake sql "SELECT …"`: SQL over the lake's tables `commands`, `sessions` and
//! `access` (the objects the manifest says are live, every delivery of a session, encrypted
//! columns opened), printed like `search`. Only queries run: a statement that would define, change or copy data
//! is refused before anything is read.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::output::{OutputArgs, OutputFormat, Printer, TableLayout};
use crate::progress::Progress;
use crate::{Cli, Outcome};

/// Options of `sql`.
#[derive(Debug, ClapArgs)]
pub struct SqlArgs {
    /// One query (SELECT, WITH … SELECT, VALUES, EXPLAIN) over `commands` and `sessions`.
    pub query: String,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

fn is_query(statement: &SqlStatement) -> bool {
    match statement {
        SqlStatement::Query(_) => true,
        SqlStatement::Explain { statement, .. } => is_query(statement),
        _ => false,
    }
}

/// Checks that `sql` is one query; names what it is otherwise.
pub fn check_query(sql: &str) -> anyhow::Result<()> {
    let statements = DFParser::parse_sql(sql).context("failed to parse the query")?;
    let [statement] = Vec::from(statements).try_into().map_err(|found: Vec<DfStatement>| {
        anyhow::anyhow!("give exactly one query, not {} statements", found.len())
    })?;
    let query = match &statement {
        DfStatement::Statement(inner) => is_query(inner),
        DfStatement::Explain(explain) => {
            matches!(explain.statement.as_ref(), DfStatement::Statement(inner) if is_query(inner))
        }
        _ => false,
    };
    if !query {
        let text = statement.to_string();
        let keyword = text.split_whitespace().next().unwrap_or_default().to_uppercase();
        anyhow::bail!(
            "sessionlake sql runs queries only (SELECT, WITH, VALUES, EXPLAIN); {keyword} \
             statements are refused: the lake changes only through sessionlake-ingest"
        );
    }
    Ok(())
}

/// Runs `sessionlake sql`.
pub async fn sql(cli: &Cli, args: &SqlArgs) -> anyhow::Result<Outcome> {
    check_query(&args.query)?;
    let ctx =
        crate::open_tables(cli, sessionlake_storage::checkpoint::Scope::Whole, |_| |_: &str| true)
            .await?;
    // A second guard: the plan itself may not hold DDL, DML, COPY or SET.
    let options =
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let frame = ctx.sql_with_options(&args.query, options).await.context("query failed")?;
    let header = frame.schema().fields().iter().map(|field| field.name().clone()).collect();
    let mut printer = Printer::new(&args.print, usize::MAX, "row", TableLayout::plain(header));
    let progress = Progress::spinner(printer.format() != OutputFormat::Json, "querying");
    let rows =
        crate::stream_frame(frame, &mut printer, &progress, None).await.map_err(|error| {
            if format!("{error:#}").contains("Resources exhausted") {
                error.context("the query needs more memory than --memory-limit allows")
            } else {
                error
            }
        })?;
    drop(progress);
    printer.finish(serde_json::json!({ "rows": rows }), &format!("{rows} rows"))?;
    Ok(Outcome::Matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_queries_pass() {
        let queries = [
            "SELECT 1",
            "select count(*) from commands where command like '%rm%'",
            "WITH x AS (SELECT * FROM sessions) SELECT * FROM x",
            "VALUES (1), (2)",
            "EXPLAIN SELECT * FROM commands",
        ];
        for query in queries {
            assert!(check_query(query).is_ok(), "{query}: {:?}", check_query(query));
        }
        let refused = [
            ("CREATE TABLE t AS SELECT 1", "CREATE"),
            ("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp/x'", "CREATE"),
            ("INSERT INTO commands VALUES (1)", "INSERT"),
            ("DELETE FROM commands", "DELETE"),
            ("DROP TABLE commands", "DROP"),
            ("COPY commands TO '/tmp/out.csv'", "COPY"),
            ("COPY (SELECT command FROM commands) TO '/tmp/out.parquet'", "COPY"),
            ("EXPLAIN COPY commands TO '/tmp/out.csv'", "EXPLAIN"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("SELECT 1; DROP TABLE commands", "2 statements"),
        ];
        for (statement, named) in refused {
            let error = check_query(statement).expect_err(statement).to_string();
            assert!(error.contains(named), "{statement}: {error}");
        }
    }
}
