//! Retention: a policy says how long sessions are kept; `retention plan` says exactly what would
//! go and why, `retention apply` does it; legal holds (`hold`) keep anything they cover whatever
//! the policy says; `shred` destroys one session now.
//!
//! Every change is a manifest commit (action `retention`, `hold` or `shred`) naming the objects
//! removed, the reason and who asked, so `verify` tells a deletion by policy from one by an
//! attacker. Objects are removed from the live set by the commit first and deleted after, so an
//! interrupted run leaves nothing half-visible: a re-run deletes what an earlier commit removed
//! and finishes the plan (which it recomputes from what is still live).
//!
//! Crypto-shredding: a session's objects are sealed under data keys wrapped by its session keys
//! (`keys/sessions/…`, see `sessionlake_lake::session_keys`). When a whole session goes (its rows
//! expire, or `shred`), every session key record of it is deleted first, so any copy of its
//! objects left anywhere is unreadable. When only the original transcript expires (`raw`
//! shorter than `commands`), the raw object is deleted and the session key is kept for the
//! rows.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use arrow::array::{Array, AsArray as _};
use arrow::datatypes::TimestampMicrosecondType;
use clap::{Args as ClapArgs, Subcommand};
use futures::StreamExt as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use sessionlake_indexer::compact::{LakeFiles, Table};
use sessionlake_lake::keys::{KeyProvider, Keys};
use sessionlake_lake::manifest::{self, ChainLink};
use sessionlake_lake::store::LakeStore;
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::{SessionSource, paths};

use crate::{Cli, Outcome, json_record, open_lake, read_committed};

const DAY_MICROS: i64 = 86_400_000_000;
/// Objects read or deleted at once.
const CONCURRENCY: usize = 16;
/// Times `apply` plans again when another writer commits first.
const MAX_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Policy

/// What happens to a session whose rows expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Remove its objects (its session keys go with them).
    Delete,
    /// Destroy its session keys first, then remove its objects: copies elsewhere are useless.
    Shred,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Shred => "shred",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    default: DefaultFile,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultFile {
    commands: String,
    raw: Option<String>,
    action: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    principal: Option<String>,
    target: Option<String>,
    account: Option<String>,
    commands: Option<String>,
    raw: Option<String>,
    action: Option<Action>,
}

/// A pattern with `*` for any text; anything else matches itself.
#[derive(Debug, Clone)]
struct Glob {
    regex: regex::Regex,
}

impl Glob {
    fn new(text: &str) -> anyhow::Result<Glob> {
        let pattern = format!("^{}$", regex::escape(text).replace(r"\*", ".*"));
        Ok(Glob { regex: regex::Regex::new(&pattern)? })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        value.is_some_and(|value| self.regex.is_match(value))
    }
}

/// How long, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Days(i64);

impl std::fmt::Display for Days {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 % 365 == 0 { write!(f, "{}y", self.0 / 365) } else { write!(f, "{}d", self.0) }
    }
}

fn parse_days(field: &str, text: &str) -> anyhow::Result<Days> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: i64 = number.parse().map_err(|_| {
        anyhow::anyhow!("{field}: {text:?} is not a period (a number and d, w or y: 90d, 12w, 7y)")
    })?;
    let days = match unit {
        "d" => number,
        "w" => number * 7,
        "y" => number * 365,
        _ => anyhow::bail!(
            "{field}: {text:?} is not a period (a number and d, w or y: 90d, 12w, 7y)"
        ),
    };
    anyhow::ensure!(days > 0 && days <= 100 * 365, "{field}: {text:?} must be 1d to 100y");
    Ok(Days(days))
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    principal: Option<Glob>,
    target: Option<Glob>,
    account: Option<Glob>,
    commands: Days,
    raw: Days,
    action: Action,
}

/// A validated retention policy.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Rule,
    rules: Vec<Rule>,
}

/// Who a rule is about.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Subject {
    principal: Option<String>,
    target: Option<String>,
    account: Option<String>,
}

/// What the policy decides for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    rule: String,
    commands: Days,
    raw: Days,
    action: Action,
    /// Other rules that applied with different terms (the longest period wins).
    conflicts: Vec<String>,
}

impl Policy {
    /// Reads and validates a policy file; errors name the file and the field.
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read policy {}", path.display()))?;
        Policy::parse(&text).with_context(|| format!("policy {} is not valid", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Policy> {
        let file: PolicyFile = toml::from_str(text)?;
        anyhow::ensure!(file.version == 1, "version {}: this build reads version 1", file.version);
        let commands = parse_days("default.commands", &file.default.commands)?;
        let raw = match &file.default.raw {
            Some(raw) => parse_days("default.raw", raw)?,
            None => commands,
        };
        let default = Rule {
            name: "default".to_string(),
            principal: None,
            target: None,
            account: None,
            commands,
            raw,
            action: file.default.action.unwrap_or(Action::Delete),
        };
        check_raw(&default)?;
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for (index, rule) in file.rules.into_iter().enumerate() {
            let field = |name: &str| format!("rules[{index}] ({}).{name}", rule.name);
            anyhow::ensure!(!rule.name.trim().is_empty(), "rules[{index}].name is empty");
            anyhow::ensure!(
                names.insert(rule.name.clone()),
                "rules[{index}]: a second rule named {:?}",
                rule.name
            );
            anyhow::ensure!(
                rule.principal.is_some() || rule.target.is_some() || rule.account.is_some(),
                "rules[{index}] ({}) matches nothing: give principal, target or account",
                rule.name
            );
            let glob = |value: &Option<String>, name: &str| -> anyhow::Result<Option<Glob>> {
                value.as_deref().map(Glob::new).transpose().with_context(|| field(name))
            };
            let commands = match &rule.commands {
                Some(text) => parse_days(&field("commands"), text)?,
                None => default.commands,
            };
            let raw = match &rule.raw {
                Some(text) => parse_days(&field("raw"), text)?,
                None => default.raw.min(commands),
            };
            let parsed = Rule {
                principal: glob(&rule.principal, "principal")?,
                target: glob(&rule.target, "target")?,
                account: glob(&rule.account, "account")?,
                name: rule.name,
                commands,
                raw,
                action: rule.action.unwrap_or(default.action),
            };
            check_raw(&parsed)?;
            rules.push(parsed);
        }
        Ok(Policy { default, rules })
    }

    /// The rules that apply to `subject`, and what they decide together: the longest period of
    /// each kind wins, and shred wins over delete.
    fn decide(&self, subject: &Subject) -> Decision {
        let applicable: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| {
                [
                    (&rule.principal, &subject.principal),
                    (&rule.target, &subject.target),
                    (&rule.account, &subject.account),
                ]
                .iter()
                .all(|(glob, value)| {
                    glob.as_ref().is_none_or(|glob| glob.matches(value.as_deref()))
                })
            })
            .collect();
        let Some(first) = applicable.first() else {
            return Decision {
                rule: self.default.name.clone(),
                commands: self.default.commands,
                raw: self.default.raw,
                action: self.default.action,
                conflicts: Vec::new(),
            };
        };
        let commands = applicable.iter().map(|rule| rule.commands).max().unwrap_or(first.commands);
        let raw = applicable.iter().map(|rule| rule.raw).max().unwrap_or(first.raw);
        let action = applicable.iter().map(|rule| rule.action).max().unwrap_or(first.action);
        // The rule named is the one that gives the rows' period.
        let winner = applicable.iter().find(|rule| rule.commands == commands).unwrap_or(first);
        let conflicts = applicable
            .iter()
            .filter(|rule| (rule.commands, rule.raw, rule.action) != (commands, raw, action))
            .map(|rule| rule.name.clone())
            .collect();
        Decision { rule: winner.name.clone(), commands, raw, action, conflicts }
    }
}

fn check_raw(rule: &Rule) -> anyhow::Result<()> {
    anyhow::ensure!(
        rule.raw <= rule.commands,
        "{}: raw ({}) outlives commands ({}): an original is never kept without its rows",
        rule.name,
        rule.raw,
        rule.commands
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Holds

/// A legal hold, `holds/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// `hold-` and 12 hex digits.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who placed it (`$USER@host`).
    pub created_by: String,
    /// Why.
    pub reason: String,
    /// One session.
    pub session: Option<String>,
    /// A principal (exact, or `*` patterns).
    pub principal: Option<String>,
    /// A target (exact, or `*` patterns).
    pub target: Option<String>,
}

/// A hold in force, its patterns compiled once.
#[derive(Debug, Clone)]
struct ActiveHold {
    hold: Hold,
    principal: Option<Glob>,
    target: Option<Glob>,
}

impl ActiveHold {
    fn new(hold: Hold) -> anyhow::Result<ActiveHold> {
        let glob = |pattern: &Option<String>| pattern.as_deref().map(Glob::new).transpose();
        let (principal, target) = (glob(&hold.principal)?, glob(&hold.target)?);
        Ok(ActiveHold { hold, principal, target })
    }

    fn covers(&self, session: &str, subject: &Subject) -> bool {
        let matches = |glob: &Option<Glob>, value: &Option<String>| {
            glob.as_ref().is_some_and(|glob| glob.matches(value.as_deref()))
        };
        self.hold.session.as_deref() == Some(session)
            || matches(&self.principal, &subject.principal)
            || matches(&self.target, &subject.target)
    }
}

impl Hold {
    fn scope(&self) -> String {
        match (&self.session, &self.principal, &self.target) {
            (Some(session), _, _) => format!("session {session}"),
            (_, Some(principal), _) => format!("principal {principal}"),
            (_, _, Some(target)) => format!("target {target}"),
            _ => "nothing".to_string(),
        }
    }
}

fn hold_path(id: &str) -> String {
    format!("{}/{id}.json", paths::HOLDS_DIR)
}

async fn live_holds(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<Vec<ActiveHold>> {
    let mut holds = Vec::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Hold) {
        let bytes = read_committed(store, entry).await?;
        let hold: Hold = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a legal hold", store.describe(&entry.path)))?;
        holds.push(
            ActiveHold::new(hold)
                .with_context(|| format!("{} has a bad pattern", store.describe(&entry.path)))?,
        );
    }
    Ok(holds)
}

pub(crate) fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    format!("{user}@{}", sessionlake_lake::lease::host_name())
}

// ---------------------------------------------------------------------------------------------
// Sessions in the lake

/// One session as retention sees it: who, when, and its live objects.
#[derive(Debug, Clone)]
struct LiveSession {
    session_id: String,
    subject: Subject,
    /// Start (else end) time, µs; else the partition date.
    time: i64,
    objects: Vec<ObjectEntry>,
    /// Live compacted files holding its rows (with other sessions' rows): rewritten without it.
    compacted: Vec<ObjectEntry>,
}

/// Reads the `sessions` rows of every live session (plaintext columns only: no key needed).
async fn live_sessions(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<Vec<LiveSession>> {
    let files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Sessions).collect();
    let rows = futures::stream::iter(files.into_iter().map(|entry| async move {
        let bytes = read_committed(store, entry).await?;
        session_rows(&entry.path, bytes)
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut by_id: BTreeMap<String, LiveSession> = BTreeMap::new();
    for found in rows {
        for (session_id, subject, time) in found? {
            let session = by_id.entry(session_id.clone()).or_insert_with(|| LiveSession {
                session_id: session_id.clone(),
                subject: subject.clone(),
                time,
                objects: Vec::new(),
                compacted: Vec::new(),
            });
            // Delivered by several sources: the earliest time counts.
            session.time = session.time.min(time);
        }
    }
    for entry in live.values() {
        if paths::is_compacted(&entry.path) {
            for id in &entry.sessions {
                if let Some(session) = by_id.get_mut(id) {
                    session.compacted.push(entry.clone());
                }
            }
        } else if let [id] = entry.sessions.as_slice()
            && let Some(session) = by_id.get_mut(id)
        {
            session.objects.push(entry.clone());
        }
    }
    Ok(by_id.into_values().collect())
}

/// Returns the text in column `name` at `row` (Utf8 or Utf8View), if any.
fn text_cell(batch: &arrow::array::RecordBatch, name: &str, row: usize) -> Option<String> {
    let column = batch.column_by_name(name)?;
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        arrow::datatypes::DataType::Utf8 => Some(column.as_string::<i32>().value(row).to_string()),
        arrow::datatypes::DataType::Utf8View => {
            Some(column.as_string_view().value(row).to_string())
        }
        _ => None,
    }
}

fn session_rows(object: &str, bytes: bytes::Bytes) -> anyhow::Result<Vec<(String, Subject, i64)>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("failed to open {object}"))?
        .build()
        .with_context(|| format!("failed to read {object}"))?;
    let partition_time = partition_micros(object).unwrap_or(0);
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("failed to read {object}"))?;
        let text = |name: &str, row: usize| text_cell(&batch, name, row);
        let time = |name: &str, row: usize| -> Option<i64> {
            let column = batch.column_by_name(name)?;
            let column = column.as_primitive_opt::<TimestampMicrosecondType>()?;
            (!column.is_null(row)).then(|| column.value(row))
        };
        for row in 0..batch.num_rows() {
            let Some(session_id) = text("session_id", row) else {
                anyhow::bail!("{object} has a row without session_id");
            };
            let subject = Subject {
                principal: text("principal", row),
                target: text("target", row),
                account: text("account", row),
            };
            let when =
                time("started_at", row).or_else(|| time("ended_at", row)).unwrap_or(partition_time);
            rows.push((session_id, subject, when));
        }
    }
    Ok(rows)
}

/// An `access` file as retention sees it: its day and who its events are about.
#[derive(Debug, Clone)]
struct LiveAccessFile {
    entry: ObjectEntry,
    /// Midnight of its `dt` partition, µs.
    time: i64,
    /// One subject per (event, target).
    subjects: Vec<(Option<String>, Subject)>,
}

/// Reads who every live `access` file is about (plaintext columns only: no key needed).
async fn live_access_files(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<Vec<LiveAccessFile>> {
    let files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Access).collect();
    futures::stream::iter(files.into_iter().map(|entry| async move {
        let bytes = read_committed(store, entry).await?;
        let subjects = access_subjects(&entry.path, bytes)?;
        let time = partition_micros(&entry.path).unwrap_or(0);
        anyhow::Ok(LiveAccessFile { entry: entry.clone(), time, subjects })
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect()
}

fn partition_micros(path: &str) -> Option<i64> {
    paths::dt_of(path)
        .and_then(|dt| chrono::NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok())
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc().timestamp_micros())
}

fn access_subjects(
    object: &str,
    bytes: bytes::Bytes,
) -> anyhow::Result<Vec<(Option<String>, Subject)>> {
    use sessionlake_schemas::columns;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("failed to open {object}"))?;
    // Only plaintext columns: the encrypted ones need a key retention does not need.
    let wanted: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| {
            [columns::PRINCIPAL, columns::TARGETS, columns::ACCOUNT, columns::SESSION_ID]
                .contains(&field.name().as_str())
        })
        .map(|(index, _)| index)
        .collect();
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .with_context(|| format!("failed to read {object}"))?;
    let mut subjects = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("failed to read {object}"))?;
        let text = |name: &str, row: usize| text_cell(&batch, name, row);
        let targets = batch.column_by_name(columns::TARGETS).and_then(|c| c.as_list_opt::<i32>());
        for row in 0..batch.num_rows() {
            let mut row_targets: Vec<Option<String>> = targets
                .filter(|list| !list.is_null(row))
                .map(|list| {
                    let values = list.value(row);
                    let values = values.as_string_opt::<i32>().cloned();
                    values
                        .map(|values| {
                            (0..values.len()).map(|i| Some(values.value(i).to_string())).collect()
                        })
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            if row_targets.is_empty() {
                row_targets.push(None);
            }
            for target in row_targets {
                let subject = Subject {
                    principal: text(columns::PRINCIPAL, row),
                    target,
                    account: text(columns::ACCOUNT, row),
                };
                subjects.push((text(columns::SESSION_ID, row), subject));
            }
        }
    }
    Ok(subjects)
}

/// Plans the `access` files: a file goes when its day is older than the longest period any of
/// its events gets (their rows' period), unless a hold covers one of its events.
fn plan_access(
    policy: &Policy,
    files: &[LiveAccessFile],
    holds: &[ActiveHold],
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for file in files {
        let decisions: Vec<Decision> =
            file.subjects.iter().map(|(_, subject)| policy.decide(subject)).collect();
        let keep = decisions
            .iter()
            .map(|decision| decision.commands)
            .max()
            .unwrap_or(policy.default.commands);
        let age_days = (now - file.time).div_euclid(DAY_MICROS);
        if age_days < keep.0 {
            continue;
        }
        let rule = decisions
            .iter()
            .find(|decision| decision.commands == keep)
            .map_or_else(|| policy.default.name.clone(), |decision| decision.rule.clone());
        let held_by = holds
            .iter()
            .find(|hold| {
                file.subjects.iter().any(|(session, subject)| {
                    hold.covers(session.as_deref().unwrap_or_default(), subject)
                })
            })
            .map(|held| held.hold.id.clone());
        planned.push(Planned {
            session_id: file.entry.path.clone(),
            expires: Expiry::Access,
            action: Action::Delete,
            rule,
            age_days,
            keep_days: keep.0,
            principal: None,
            target: None,
            objects: 1,
            bytes: file.entry.size,
            conflicts: Vec::new(),
            held_by,
            remove: vec![file.entry.clone()],
            rewrite: Vec::new(),
        });
    }
    planned
}

// ---------------------------------------------------------------------------------------------
// Plans

/// What expires of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Expiry {
    /// The whole session: rows, original, keys.
    Session,
    /// Only the original transcript.
    Raw,
    /// An `access` file (CloudTrail events of one day from one trail file); `session_id` holds
    /// its path.
    Access,
}

/// One line of a plan.
#[derive(Debug, Clone, Serialize)]
struct Planned {
    session_id: String,
    expires: Expiry,
    action: Action,
    rule: String,
    age_days: i64,
    keep_days: i64,
    principal: Option<String>,
    target: Option<String>,
    objects: usize,
    bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conflicts: Vec<String>,
    /// The hold that keeps it (nothing is done then).
    #[serde(skip_serializing_if = "Option::is_none")]
    held_by: Option<String>,
    #[serde(skip)]
    remove: Vec<ObjectEntry>,
    /// Compacted files to rewrite without the session (whole-session expiry only).
    #[serde(skip)]
    rewrite: Vec<ObjectEntry>,
}

fn plan(policy: &Policy, sessions: &[LiveSession], holds: &[ActiveHold], now: i64) -> Vec<Planned> {
    let mut planned = Vec::new();
    for session in sessions {
        let decision = policy.decide(&session.subject);
        let age_days = (now - session.time).div_euclid(DAY_MICROS);
        let (expires, keep) = if age_days >= decision.commands.0 {
            (Expiry::Session, decision.commands)
        } else if age_days >= decision.raw.0 {
            (Expiry::Raw, decision.raw)
        } else {
            continue;
        };
        let remove: Vec<ObjectEntry> = session
            .objects
            .iter()
            .filter(|entry| expires == Expiry::Session || entry.kind == ObjectKind::Raw)
            .cloned()
            .collect();
        let rewrite =
            if expires == Expiry::Session { session.compacted.clone() } else { Vec::new() };
        if remove.is_empty() && rewrite.is_empty() {
            // The original went earlier; the rows are not due yet.
            continue;
        }
        let held_by = holds
            .iter()
            .find(|hold| hold.covers(&session.session_id, &session.subject))
            .map(|held| held.hold.id.clone());
        planned.push(Planned {
            session_id: session.session_id.clone(),
            expires,
            action: if expires == Expiry::Session { decision.action } else { Action::Delete },
            rule: decision.rule,
            age_days,
            keep_days: keep.0,
            principal: session.subject.principal.clone(),
            target: session.subject.target.clone(),
            objects: remove.len() + rewrite.len(),
            bytes: remove.iter().map(|entry| entry.size).sum(),
            conflicts: decision.conflicts,
            held_by,
            remove,
            rewrite,
        });
    }
    planned
}

// ---------------------------------------------------------------------------------------------
// Commands

/// `retention`: plan or apply a policy.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Lists what the policy would delete or shred and why (rule, age), and what holds keep;
    /// changes nothing.
    Plan(RetentionArgs),
    /// Does what `plan` lists (asks first on a terminal; `--yes` otherwise). Safe to interrupt
    /// and run again.
    Apply(RetentionArgs),
}

/// Options of `retention plan` and `retention apply`.
#[derive(Debug, ClapArgs)]
pub struct RetentionArgs {
    /// The policy file (TOML; see config/retention.example.toml).
    #[arg(long)]
    pub policy: PathBuf,
    /// Judge ages as of this time (default: now): 2026-03-14, 2026-03-14T09:30:00Z.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    /// JSON Lines: one record per session, then a summary.
    #[arg(long)]
    pub json: bool,
}

/// `hold`: legal holds.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Places a hold on a session, a principal or a target.
    Add(HoldAddArgs),
    /// Lists the holds in force.
    List(HoldListArgs),
    /// Releases a hold.
    Release(HoldReleaseArgs),
}

/// Options of `hold add`.
#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["session", "principal", "target"])))]
pub struct HoldAddArgs {
    /// The session to hold.
    pub session: Option<String>,
    /// Hold every session of this principal (exact ARN, or `*` patterns).
    #[arg(long)]
    pub principal: Option<String>,
    /// Hold every session on this target (exact, or `*` patterns).
    #[arg(long)]
    pub target: Option<String>,
    /// Why (recorded in the hold and the commit).
    #[arg(long)]
    pub reason: String,
}

/// Options of `hold list`.
#[derive(Debug, ClapArgs)]
pub struct HoldListArgs {
    /// JSON Lines.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hold release`.
#[derive(Debug, ClapArgs)]
pub struct HoldReleaseArgs {
    /// The hold's id (`hold list`).
    pub id: String,
    /// Why (recorded in the commit).
    #[arg(long)]
    pub reason: String,
}

/// Options of `shred`.
#[derive(Debug, ClapArgs)]
pub struct ShredArgs {
    /// The session to destroy.
    pub session: String,
    /// Why (recorded in the commit).
    #[arg(long)]
    pub reason: String,
    /// Shred without asking.
    #[arg(long)]
    pub yes: bool,
}

fn print(line: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

/// Asks on the terminal, unless `yes`; refuses when there is no terminal to ask on.
fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        "{question}: refusing without --yes (no terminal to ask on)"
    );
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// A lake opened by a one-shot writer job (retention, hold, shred, compact): its chain, its live
/// set, and the keys that sign commits and open files.
pub(crate) struct Lake {
    pub(crate) store: LakeStore,
    pub(crate) keys: Keys,
    pub(crate) keyring: std::sync::Arc<sessionlake_lake::keys::LocalKeyring>,
    pub(crate) chain: Vec<ChainLink>,
    pub(crate) live: BTreeMap<String, ObjectEntry>,
}

impl Lake {
    pub(crate) async fn open(cli: &Cli) -> anyhow::Result<Lake> {
        let (store, keys) = open_lake(cli).await?;
        let keyring = keys.keyring().cloned().with_context(|| {
            format!(
                "changes are signed with the keyring, and {} was not found",
                cli.keyring.display()
            )
        })?;
        let mut lake = Lake { store, keys, keyring, chain: Vec::new(), live: BTreeMap::new() };
        lake.reload().await?;
        Ok(lake)
    }

    /// Rewrites each compacted file of `files` without the sessions of `gone` (each file under
    /// a fresh data key from the provider that wrapped its current one); returns the new files'
    /// entries (a file left with no row has none). Nothing is committed: on error, what was
    /// written is deleted again.
    pub(crate) async fn rewrite_without(
        &self,
        files: &[ObjectEntry],
        gone: &BTreeSet<String>,
    ) -> anyhow::Result<Vec<ObjectEntry>> {
        let mut unique: BTreeMap<&str, &ObjectEntry> = BTreeMap::new();
        for entry in files {
            unique.insert(&entry.path, entry);
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let lake_id = crate::lake_id(&self.store, &self.live).await?.unwrap_or_default();
        let mut written: Vec<ObjectEntry> = Vec::new();
        for entry in unique.into_values() {
            let result = self.rewrite_one(entry, gone, &lake_id).await;
            match result {
                Ok(Some(new)) => written.push(new),
                Ok(None) => {}
                Err(error) => {
                    self.discard(&written).await;
                    return Err(error);
                }
            }
        }
        Ok(written)
    }

    async fn rewrite_one(
        &self,
        entry: &ObjectEntry,
        gone: &BTreeSet<String>,
        lake_id: &str,
    ) -> anyhow::Result<Option<ObjectEntry>> {
        let (Some(table), true, Some(dt)) =
            (Table::of(entry.kind), paths::is_compacted(&entry.path), paths::dt_of(&entry.path))
        else {
            anyhow::bail!("{} is not a compacted commands or sessions file", entry.path);
        };
        let without: BTreeSet<String> =
            entry.sessions.iter().filter(|id| gone.contains(*id)).cloned().collect();
        let provider = self.provider_like(entry.key.as_ref())?;
        let files = LakeFiles {
            store: &self.store,
            keys: &self.keys,
            provider: provider.as_ref(),
            lake_id,
        };
        Ok(files.write_compacted(table, dt, std::slice::from_ref(entry), &without).await?)
    }

    /// Returns the provider to wrap a new data key with: the one that wrapped `current` (the
    /// same KMS key), else the keyring.
    pub(crate) fn provider_like(
        &self,
        current: Option<&WrappedKey>,
    ) -> anyhow::Result<std::sync::Arc<dyn KeyProvider>> {
        match current {
            Some(wrapped) if wrapped.provider == sessionlake_lake::keys::PROVIDER_KMS => {
                Ok(std::sync::Arc::new(self.keys.kms_provider(&wrapped.key_id)?))
            }
            _ => Ok(self.keyring.clone()),
        }
    }

    /// Deletes objects written for a commit that was not made (best effort: `verify` names
    /// any that stay).
    pub(crate) async fn discard(&self, entries: &[ObjectEntry]) {
        for entry in entries {
            if let Err(error) = self.store.delete(&entry.path).await {
                tracing::warn!(object = %entry.path, %error, "uncommitted object not deleted");
            }
        }
    }

    /// Returns the compacted files that once held any of `sessions` and are no longer live,
    /// as committed: a shred or an expiry deletes them too (a compacted file's key is not
    /// under a session key, so only deleting it removes the session's rows).
    fn stale_compacted(&self, sessions: &BTreeSet<String>) -> Vec<ObjectEntry> {
        let mut stale: BTreeMap<&str, &ObjectEntry> = BTreeMap::new();
        for link in &self.chain {
            for entry in &link.manifest.body.added {
                if paths::is_compacted(&entry.path)
                    && !self.live.contains_key(&entry.path)
                    && entry.sessions.iter().any(|id| sessions.contains(id))
                {
                    stale.insert(&entry.path, entry);
                }
            }
        }
        stale.into_values().cloned().collect()
    }

    pub(crate) async fn reload(&mut self) -> anyhow::Result<()> {
        self.chain = manifest::read_chain(&self.store)
            .await
            .with_context(|| format!("failed to read the manifest of {}", self.store.location()))?;
        self.live = manifest::live_objects(&self.chain);
        Ok(())
    }

    pub(crate) fn head(&self) -> Option<u64> {
        self.chain.last().map(|link| link.manifest.body.sequence)
    }

    pub(crate) async fn commit(
        &self,
        action: CommitAction,
        reason: String,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
    ) -> sessionlake_lake::LakeResult<ChainLink> {
        manifest::commit_if_head(
            &self.store,
            &self.keyring.signer(),
            action,
            Some(reason),
            added,
            removed,
            self.head(),
        )
        .await
    }

    /// Deletes objects that retention, shred or compaction commits removed but that are still
    /// stored (an interrupted run). Session key records first.
    pub(crate) async fn sweep(&self) -> anyhow::Result<usize> {
        let mut removed: Vec<&ObjectEntry> = self
            .chain
            .iter()
            .filter(|link| {
                matches!(
                    link.manifest.body.action,
                    CommitAction::Retention | CommitAction::Shred | CommitAction::Compact
                )
            })
            .flat_map(|link| &link.manifest.body.removed)
            .filter(|entry| !self.live.contains_key(&entry.path))
            .collect();
        removed.sort_by_key(|entry| entry.kind != ObjectKind::SessionKey);
        let mut swept = 0;
        for entry in removed {
            if self.store.exists(&entry.path).await? {
                self.store.delete(&entry.path).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }
}

/// Deletes `paths`, session key records first (a crash in between leaves only ciphertext),
/// counting on a spinner when stderr is a terminal.
pub(crate) async fn delete_all(store: &LakeStore, entries: Vec<ObjectEntry>) -> anyhow::Result<()> {
    let progress = crate::progress::Progress::counting(true, "deleting", "objects");
    let (keys, rest): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|entry| entry.kind == ObjectKind::SessionKey);
    for batch in [keys, rest] {
        let results = futures::stream::iter(batch.iter().map(|entry| store.delete(&entry.path)))
            .buffer_unordered(CONCURRENCY)
            .inspect(|_| progress.advance(1))
            .collect::<Vec<_>>()
            .await;
        for result in results {
            result?;
        }
    }
    Ok(())
}

/// Runs `retention plan` or `retention apply`.
pub async fn retention(cli: &Cli, command: &RetentionCommand) -> anyhow::Result<Outcome> {
    let (args, apply) = match command {
        RetentionCommand::Plan(args) => (args, false),
        RetentionCommand::Apply(args) => (args, true),
    };
    let policy = Policy::load(&args.policy)?;
    let now = match &args.as_of {
        Some(text) => crate::time::parse_time(text)?,
        None => chrono::Utc::now().timestamp_micros(),
    };
    let mut lake = Lake::open(cli).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if apply {
            let swept = lake.sweep().await?;
            if swept > 0 {
                eprintln!("sessionlake: deleted {swept} objects an interrupted run had removed");
            }
        }
        let sessions = live_sessions(&lake.store, &lake.live).await?;
        let holds = live_holds(&lake.store, &lake.live).await?;
        let mut planned = plan(&policy, &sessions, &holds, now);
        let access = live_access_files(&lake.store, &lake.live).await?;
        planned.extend(plan_access(&policy, &access, &holds, now));
        let due: Vec<&Planned> = planned.iter().filter(|p| p.held_by.is_none()).collect();
        if !apply || due.is_empty() {
            report_plan(&planned, args.json, false)?;
            return Ok(if due.is_empty() { Outcome::NoMatch } else { Outcome::Matched });
        }
        if attempt == 1 && !args.json {
            report_plan(&planned, false, false)?;
        }
        let objects: usize = due.iter().map(|p| p.objects).sum();
        if !confirm(
            args.yes,
            &format!("delete or shred {objects} objects of {} sessions", due.len()),
        )? {
            anyhow::bail!("nothing changed");
        }
        let mut removed: Vec<ObjectEntry> =
            due.iter().flat_map(|p| p.remove.iter().cloned()).collect();
        // Compacted files holding expired sessions are rewritten without them in the same
        // commit; the old files (and older ones that held them) are deleted after it.
        let expired: BTreeSet<String> = due
            .iter()
            .filter(|p| p.expires == Expiry::Session)
            .map(|p| p.session_id.clone())
            .collect();
        let compacted: Vec<ObjectEntry> =
            due.iter().flat_map(|p| p.rewrite.iter().cloned()).collect();
        let added = lake.rewrite_without(&compacted, &expired).await?;
        let mut seen = BTreeSet::new();
        removed.extend(compacted.into_iter().filter(|entry| seen.insert(entry.path.clone())));
        let stale = lake.stale_compacted(&expired);
        let count = |expiry: Expiry| due.iter().filter(|p| p.expires == expiry).count();
        let reason = format!(
            "retention policy {} as of {} by {}: {} sessions expired, {} originals expired, {} \
             access files expired, {} shredded",
            args.policy.display(),
            crate::time::format_time(now),
            actor(),
            count(Expiry::Session),
            count(Expiry::Raw),
            count(Expiry::Access),
            due.iter().filter(|p| p.action == Action::Shred).count()
        );
        match lake.commit(CommitAction::Retention, reason, added.clone(), removed.clone()).await {
            Ok(link) => {
                delete_all(&lake.store, removed).await?;
                delete_stored(&lake.store, stale).await?;
                if args.json {
                    report_plan(&planned, true, true)?;
                } else {
                    eprintln!(
                        "sessionlake: applied: {} sessions, {objects} objects (manifest {})",
                        due.len(),
                        link.manifest.body.sequence
                    );
                }
                return Ok(Outcome::Matched);
            }
            Err(error)
                if error.kind() == sessionlake_lake::LakeErrorKind::AlreadyExists
                    && attempt < MAX_ATTEMPTS =>
            {
                tracing::info!(%error, "the lake moved on; planning again");
                lake.discard(&added).await;
                lake.reload().await?;
            }
            Err(error) => {
                lake.discard(&added).await;
                return Err(error.into());
            }
        }
    }
}

/// Deletes those of `entries` that are still stored (files no commit keeps live).
async fn delete_stored(store: &LakeStore, entries: Vec<ObjectEntry>) -> anyhow::Result<()> {
    for entry in entries {
        if store.exists(&entry.path).await? {
            store.delete(&entry.path).await?;
        }
    }
    Ok(())
}

fn report_plan(planned: &[Planned], json: bool, applied: bool) -> anyhow::Result<()> {
    let mut by_partition: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
    for item in planned.iter().filter(|p| p.held_by.is_none()) {
        for entry in &item.remove {
            let dt = paths::dt_of(&entry.path).unwrap_or("-").to_string();
            let totals = by_partition.entry(dt).or_default();
            totals.1 += 1;
            totals.2 += entry.size;
        }
        if let Some(dt) = item.remove.iter().find_map(|entry| paths::dt_of(&entry.path)) {
            by_partition.entry(dt.to_string()).or_default().0 += 1;
        }
    }
    let held = planned.iter().filter(|p| p.held_by.is_some()).count();
    let due = planned.len() - held;
    if json {
        for item in planned {
            let kind = if item.held_by.is_some() { "held" } else { "planned" };
            print(format_args!("{}", json_record(kind, &serde_json::to_value(item)?)))?;
        }
        let partitions: Vec<serde_json::Value> = by_partition
            .iter()
            .map(|(dt, (sessions, objects, bytes))| {
                serde_json::json!({"dt": dt, "sessions": sessions, "objects": objects, "bytes": bytes})
            })
            .collect();
        let summary = serde_json::json!({
            "sessions": due, "held": held, "applied": applied, "partitions": partitions,
        });
        return print(format_args!("{}", json_record("summary", &summary)));
    }
    for item in planned {
        let what = match (item.held_by.as_deref(), item.expires) {
            (Some(_), _) => "keep (held)".to_string(),
            (None, Expiry::Session) => item.action.as_str().to_string(),
            (None, Expiry::Raw) => "delete raw".to_string(),
            (None, Expiry::Access) => "delete".to_string(),
        };
        let why = match &item.held_by {
            Some(hold) => format!("{hold}; rule {} would remove it", item.rule),
            None => format!("rule {}", item.rule),
        };
        let conflicts = if item.conflicts.is_empty() {
            String::new()
        } else {
            format!("; also matched by {} (longest period wins)", item.conflicts.join(", "))
        };
        print(format_args!(
            "{what:<12} {}  age {}d > {}d  {why}{conflicts}  ({} objects, {} bytes)",
            item.session_id, item.age_days, item.keep_days, item.objects, item.bytes
        ))?;
    }
    for (dt, (sessions, objects, bytes)) in &by_partition {
        print(format_args!(
            "total dt={dt}: {sessions} sessions, {objects} objects, {bytes} bytes"
        ))?;
    }
    eprintln!("{due} sessions due, {held} kept by holds");
    Ok(())
}

/// Runs `hold add|list|release`.
pub async fn hold(cli: &Cli, command: &HoldCommand) -> anyhow::Result<Outcome> {
    let lake = Lake::open(cli).await?;
    match command {
        HoldCommand::Add(args) => {
            anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
            let id = format!(
                "hold-{}",
                &sessionlake_lake::store::sha256_hex(
                    format!(
                        "{}{:?}",
                        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                        args
                    )
                    .as_bytes(),
                )[..12]
            );
            let hold = Hold {
                id: id.clone(),
                created_at: chrono::Utc::now().to_rfc3339(),
                created_by: actor(),
                reason: args.reason.clone(),
                session: args.session.clone(),
                principal: args.principal.clone(),
                target: args.target.clone(),
            };
            ActiveHold::new(hold.clone())?;
            let path = hold_path(&id);
            let json = serde_json::to_vec_pretty(&hold)?;
            let stored = lake.store.put_new(&path, bytes::Bytes::from(json)).await?;
            let entry = ObjectEntry {
                path: stored.path,
                size: stored.size,
                sha256: stored.sha256,
                kind: ObjectKind::Hold,
                sessions: hold.session.clone().into_iter().collect(),
                key: None,
                note: None,
            };
            let reason =
                format!("hold {id} on {} by {}: {}", hold.scope(), hold.created_by, hold.reason);
            let link = manifest::commit(
                &lake.store,
                &lake.keyring.signer(),
                CommitAction::Hold,
                Some(reason),
                vec![entry],
                Vec::new(),
            )
            .await?;
            print(format_args!(
                "{id}  placed on {} (manifest {})",
                hold.scope(),
                link.manifest.body.sequence
            ))?;
            Ok(Outcome::Matched)
        }
        HoldCommand::List(args) => {
            let holds = live_holds(&lake.store, &lake.live).await?;
            for hold in holds.iter().map(|held| &held.hold) {
                if args.json {
                    print(format_args!("{}", json_record("hold", &serde_json::to_value(hold)?)))?;
                } else {
                    print(format_args!(
                        "{}  {}  since {} by {}: {}",
                        hold.id,
                        hold.scope(),
                        hold.created_at,
                        hold.created_by,
                        hold.reason
                    ))?;
                }
            }
            Ok(if holds.is_empty() { Outcome::NoMatch } else { Outcome::Matched })
        }
        HoldCommand::Release(args) => {
            anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
            let path = hold_path(&args.id);
            let Some(entry) = lake.live.get(&path).filter(|entry| entry.kind == ObjectKind::Hold)
            else {
                anyhow::bail!("no hold {} in force in {}", args.id, lake.store.location());
            };
            let reason = format!("release of hold {} by {}: {}", args.id, actor(), args.reason);
            let link = manifest::commit(
                &lake.store,
                &lake.keyring.signer(),
                CommitAction::Hold,
                Some(reason),
                Vec::new(),
                vec![entry.clone()],
            )
            .await?;
            // The hold's file goes; the commits that placed and released it stay in the chain.
            lake.store.delete(&path).await?;
            print(format_args!("{} released (manifest {})", args.id, link.manifest.body.sequence))?;
            Ok(Outcome::Matched)
        }
    }
}

/// Lists every stored object of `session` (any source, any version, live or not) in the
/// session folders: shred removes old versions' files too.
async fn stored_objects_of(store: &LakeStore, session: &str) -> anyhow::Result<Vec<ObjectEntry>> {
    let mut found = Vec::new();
    for (dir, kind) in [
        (format!("{}/sessions", paths::KEYS_DIR), ObjectKind::SessionKey),
        (paths::RAW_DIR.to_string(), ObjectKind::Raw),
        (paths::COMMANDS_DIR.to_string(), ObjectKind::Commands),
        (paths::SESSIONS_DIR.to_string(), ObjectKind::Sessions),
    ] {
        for (path, size) in store.list(&dir).await? {
            if SessionSource::ALL
                .iter()
                .any(|source| paths::is_session_object(&path, session, *source))
            {
                found.push(ObjectEntry {
                    path,
                    size,
                    sha256: String::new(),
                    kind,
                    sessions: vec![session.to_string()],
                    key: None,
                    note: None,
                });
            }
        }
    }
    Ok(found)
}

/// Runs `shred`.
pub async fn shred(cli: &Cli, args: &ShredArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
    let mut lake = Lake::open(cli).await?;
    for attempt in 1..=MAX_ATTEMPTS {
        let sessions = live_sessions(&lake.store, &lake.live).await?;
        let holds = live_holds(&lake.store, &lake.live).await?;
        let session = sessions.iter().find(|s| s.session_id == args.session);
        let is_compacted = |entry: &ObjectEntry| paths::is_compacted(&entry.path);
        let mut live: Vec<ObjectEntry> = lake
            .live
            .values()
            .filter(|entry| {
                entry.sessions == [args.session.clone()]
                    && entry.kind != ObjectKind::Hold
                    && !is_compacted(entry)
            })
            .cloned()
            .collect();
        let compacted: Vec<ObjectEntry> = lake
            .live
            .values()
            .filter(|entry| is_compacted(entry) && entry.sessions.contains(&args.session))
            .cloned()
            .collect();
        let subject = session.map(|s| s.subject.clone()).unwrap_or_default();
        if let Some(ActiveHold { hold, .. }) =
            holds.iter().find(|held| held.covers(&args.session, &subject))
        {
            anyhow::bail!(
                "{} is under legal hold {} ({}): release the hold first",
                args.session,
                hold.id,
                hold.reason
            );
        }
        let stored = stored_objects_of(&lake.store, &args.session).await?;
        if live.is_empty() && stored.is_empty() {
            anyhow::bail!("no session {} in {}", args.session, lake.store.location());
        }
        if !confirm(
            args.yes,
            &format!("shred {} ({} objects)", args.session, stored.len().max(live.len())),
        )? {
            anyhow::bail!("nothing changed");
        }
        let reason = format!("shred of {} by {}: {}", args.session, actor(), args.reason);
        let gone = BTreeSet::from([args.session.clone()]);
        // Its rows leave the compacted files that hold them (rewritten without it), in the
        // same commit; every compacted file that ever held them is deleted.
        let added = lake.rewrite_without(&compacted, &gone).await?;
        live.extend(compacted);
        let stale = lake.stale_compacted(&gone);
        let link = if live.is_empty() {
            None
        } else {
            match lake.commit(CommitAction::Shred, reason, added.clone(), live.clone()).await {
                Ok(link) => Some(link),
                Err(error)
                    if error.kind() == sessionlake_lake::LakeErrorKind::AlreadyExists
                        && attempt < MAX_ATTEMPTS =>
                {
                    lake.discard(&added).await;
                    lake.reload().await?;
                    continue;
                }
                Err(error) => {
                    lake.discard(&added).await;
                    return Err(error.into());
                }
            }
        };
        delete_stored(&lake.store, stale).await?;
        let mut doomed = live;
        doomed.extend(stored);
        delete_all(&lake.store, doomed).await?;
        match link {
            Some(link) => print(format_args!(
                "shredded {}: its session keys are destroyed (manifest {})",
                args.session, link.manifest.body.sequence
            ))?,
            None => print(format_args!("shredded the leftover files of {}", args.session))?,
        }
        return Ok(Outcome::Matched);
    }
    anyhow::bail!("{} kept changing; try again", lake.store.location())
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

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
version = 1
[default]
commands = "3y"
raw = "1y"

[[rules]]
name = "contractors"
principal = "arn:aws:iam::111122223333:user/contractor-*"
commands = "1y"
raw = "90d"
action = "shred"

[[rules]]
name = "prod"
target = "i-0prod*"
commands = "7y"
raw = "2y"
"#;

    fn subject(principal: &str, target: &str) -> Subject {
        Subject { principal: Some(principal.into()), target: Some(target.into()), account: None }
    }

    #[test]
    fn test_rules_apply_and_the_longest_period_wins() {
        let policy = Policy::parse(POLICY).expect("valid");
        let nobody = policy.decide(&subject("arn:aws:iam::111122223333:user/alice", "i-0dev"));
        assert_eq!(
            (nobody.rule.as_str(), nobody.commands, nobody.raw),
            ("default", Days(1095), Days(365))
        );
        let contractor =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0dev"));
        assert_eq!(
            (contractor.commands, contractor.raw, contractor.action),
            (Days(365), Days(90), Action::Shred)
        );
        // A contractor on prod: prod's periods (longer) and the contractor's shred; both named.
        let both =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0prod1"));
        assert_eq!(
            (both.rule.as_str(), both.commands, both.raw, both.action),
            ("prod", Days(2555), Days(730), Action::Shred)
        );
        assert_eq!(both.conflicts, vec!["contractors".to_string(), "prod".to_string()]);
    }

    #[test]
    fn test_bad_policies_name_the_field() {
        for (text, expected) in [
            ("version = 1\n[default]\ncommands = \"3x\"", "default.commands"),
            (
                "version = 1\n[default]\ncommands = \"1y\"\nraw = \"2y\"",
                "raw (2y) outlives commands (1y)",
            ),
            (
                "version = 1\n[default]\ncommands = \"1y\"\n[[rules]]\nname = \"a\"\ncommands = \"2y\"",
                "matches nothing",
            ),
            (
                "version = 1\n[default]\ncommands = \"1y\"\n[[rules]]\nname = \"a\"\ntarget = \"x\"\n[[rules]]\nname = \"a\"\ntarget = \"y\"",
                "a second rule named",
            ),
            ("version = 1\n[default]\ncommands = \"1y\"\nkeep = true", "unknown field"),
            ("version = 2\n[default]\ncommands = \"1y\"", "version 2"),
        ] {
            let error = format!("{:#}", Policy::parse(text).expect_err(text));
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
