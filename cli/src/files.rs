//! `sessionlake files --table T`: the live files of one table, as the signed chain names them,
//! for engines that read a list of files rather than the chain (DuckDB's
//! `read_parquet([...])`, pyarrow's datasets). A folder glob also reads replaced versions and
//! files no commit names; this list does not.
//!
//! Such an engine reads the files without the checks `sessionlake` makes on every byte it
//! reads (each file against the digest its commit recorded): only `sessionlake verify` proves
//! them unaltered.

use std::io::Write as _;

use clap::{Args as ClapArgs, ValueEnum};
use sessionlake_schemas::manifest::{self, ObjectEntry, ObjectKind};
use sessionlake_storage::checkpoint::Scope;

use crate::{Cli, Outcome};

/// Options of `files`.
#[derive(Debug, ClapArgs)]
pub struct FilesArgs {
    /// The table whose live files to print.
    #[arg(long, value_enum, env = "SESSIONLAKE_TABLE")]
    pub table: TableName,
    /// Every delivery of a session delivered more than once (S3 and CloudWatch), not only the
    /// one `search` and `show` read (`commands` only: the rows of the other tables are one per
    /// delivery or per CloudTrail event already).
    #[arg(long, env = "SESSIONLAKE_EVERY_DELIVERY")]
    pub every_delivery: bool,
    /// A JSON array instead of one file per line.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableName {
    /// One row per command.
    Commands,
    /// One row per session and delivery.
    Sessions,
    /// One row per CloudTrail access event.
    Access,
}

impl TableName {
    fn kind(self) -> ObjectKind {
        match self {
            TableName::Commands => ObjectKind::Commands,
            TableName::Sessions => ObjectKind::Sessions,
            TableName::Access => ObjectKind::Access,
        }
    }
}

/// Returns the live files of `table`, by lake path: for `commands`, one delivery per session
/// (the one `search` reads) unless `every_delivery`.
pub fn live_files(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
    table: TableName,
    every_delivery: bool,
) -> Vec<&str> {
    manifest::live_table_files(live, table.kind(), every_delivery)
}

/// Prints the live files of a table: local paths or `s3://` URLs.
pub async fn files(cli: &Cli, args: &FilesArgs) -> anyhow::Result<Outcome> {
    let (store, _, snapshot) = crate::open_reader(cli, Scope::Whole).await?;
    let located: Vec<String> = live_files(&snapshot.live, args.table, args.every_delivery)
        .into_iter()
        .map(|path| store.describe(path))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &located)?;
        writeln!(out)?;
    } else {
        for file in &located {
            writeln!(out, "{file}")?;
        }
    }
    out.flush()?;
    Ok(if located.is_empty() { Outcome::NoMatch } else { Outcome::Matched })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entry(path: &str, kind: ObjectKind, session: &str) -> (String, ObjectEntry) {
        let entry =
            ObjectEntry::new(path.to_string(), 1, "00".repeat(32), kind, vec![session.to_string()]);
        (path.to_string(), entry)
    }

    /// A session delivered by S3 and by CloudWatch: `commands` lists the delivery `search`
    /// reads, unless every delivery is asked for; other tables list every live file.
    #[test]
    fn test_commands_list_the_delivery_search_reads() {
        let live: BTreeMap<String, ObjectEntry> = [
            entry("commands/dt=2026-03-14/a.s3.v1.parquet", ObjectKind::Commands, "a"),
            entry(
                "commands/dt=2026-03-14/a.cloudwatch-stream.v1.parquet",
                ObjectKind::Commands,
                "a",
            ),
            entry("commands/dt=2026-03-14/b.local.v1.parquet", ObjectKind::Commands, "b"),
            entry("sessions/dt=2026-03-14/a.s3.v1.parquet", ObjectKind::Sessions, "a"),
            entry(
                "sessions/dt=2026-03-14/a.cloudwatch-stream.v1.parquet",
                ObjectKind::Sessions,
                "a",
            ),
        ]
        .into_iter()
        .collect();
        let preferred = manifest::preferred_commands(&live);
        let commands = live_files(&live, TableName::Commands, false);
        assert_eq!(commands.len(), 2, "{commands:?}");
        assert!(commands.iter().all(|path| preferred.contains(*path)));
        assert!(commands.contains(&"commands/dt=2026-03-14/b.local.v1.parquet"));
        assert_eq!(live_files(&live, TableName::Commands, true).len(), 3);
        assert_eq!(live_files(&live, TableName::Sessions, false).len(), 2);
        assert!(live_files(&live, TableName::Access, false).is_empty());
    }
}
