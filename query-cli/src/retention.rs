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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use arrow::array::{Array, AsArray as _};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::Datelike as _;
use clap::{Args as ClapArgs, Subcommand};
use futures::StreamExt as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use sessionlake_indexer::compact::{LakeFiles, Table, new_version};
use sessionlake_indexer::parquet_out;
use sessionlake_lake::keys::{KeyProvider, Keys};
use sessionlake_lake::manifest::{self, ChainLink, Committer};
use sessionlake_lake::object_lock::ObjectLockSettings;
use sessionlake_lake::signing::ManifestSigner;
use sessionlake_lake::store::LakeStore;
use sessionlake_lake::transaction::{self, Leftovers, Transaction};
use sessionlake_lake::trust::{PinnedSigner, Snapshot};
use sessionlake_lake::{LakeError, LakeErrorKind};
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::{SessionSource, paths};

use crate::{Cli, Outcome, json_record, read_committed};

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
    /// The targets' tags for `tag` rules: the JSON `aws ec2 describe-tags` prints, relative
    /// to the policy file.
    tags_file: Option<String>,
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
    /// `Key=Value` of a tag of the target (`*` patterns), from `tags_file`.
    tag: Option<String>,
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

/// How long a rule keeps something: days (`90d`, `12w`) or calendar years (`7y`: until the same
/// date seven years on, leap days included, never a day short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Days(i64),
    Years(i64),
}

impl Period {
    /// Length in quarter days, a year counting 365.25 days: orders periods of either unit.
    fn quarter_days(self) -> i64 {
        match self {
            Period::Days(days) => days * 4,
            Period::Years(years) => years * 1461,
        }
    }

    /// The end of this period from `start` (µs): the first instant something that began at
    /// `start` may go. A year from 29 February ends on 1 March.
    fn end(self, start: i64) -> i64 {
        match self {
            Period::Days(days) => start.saturating_add(days.saturating_mul(DAY_MICROS)),
            Period::Years(years) => {
                let Some(begin) = chrono::DateTime::from_timestamp_micros(start) else {
                    return i64::MAX;
                };
                let months = u32::try_from(years.saturating_mul(12)).unwrap_or(u32::MAX);
                match begin.checked_add_months(chrono::Months::new(months)) {
                    // Clamped to the month's last day (29 February to 28 February): one more day.
                    Some(end) if end.day() != begin.day() => {
                        (end + chrono::Days::new(1)).timestamp_micros()
                    }
                    Some(end) => end.timestamp_micros(),
                    None => i64::MAX,
                }
            }
        }
    }

    /// Whole days from `start` to the end of this period.
    fn days_from(self, start: i64) -> i64 {
        (self.end(start).saturating_sub(start)).div_euclid(DAY_MICROS)
    }
}

impl PartialOrd for Period {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Period {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.quarter_days().cmp(&other.quarter_days())
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Days(days) => write!(f, "{days}d"),
            Period::Years(years) => write!(f, "{years}y"),
        }
    }
}

fn parse_period(field: &str, text: &str) -> anyhow::Result<Period> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let not_a_period = || {
        anyhow::anyhow!("{field}: {text:?} is not a period (a number and d, w or y: 90d, 12w, 7y)")
    };
    let number: i64 = number.parse().map_err(|_| not_a_period())?;
    let period = match unit {
        "d" => Period::Days(number),
        "w" => Period::Days(number.saturating_mul(7)),
        "y" => Period::Years(number),
        _ => return Err(not_a_period()),
    };
    anyhow::ensure!(
        number > 0 && period <= Period::Years(100),
        "{field}: {text:?} must be 1d to 100y"
    );
    Ok(period)
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    principal: Option<Glob>,
    target: Option<Glob>,
    account: Option<Glob>,
    tag: Option<Glob>,
    commands: Period,
    raw: Period,
    action: Action,
}

/// A validated retention policy.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Rule,
    rules: Vec<Rule>,
    tags_file: Option<String>,
    /// Each target's tags as `Key=Value`, from the policy's `tags_file`.
    tags: HashMap<String, Vec<String>>,
    /// SHA-256 (hex) of the policy file, recorded in the commits it makes.
    sha256: String,
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
    commands: Period,
    raw: Period,
    action: Action,
    /// Other rules that applied with different terms (the longest period wins).
    conflicts: Vec<String>,
}

impl Policy {
    /// Returns the longest period any rule keeps anything, in whole days (a year counts 365.25
    /// days, rounded up): how long the commits this policy makes are locked on an S3 bucket
    /// with Object Lock, unless `--object-lock-days` says otherwise.
    pub fn longest_days(&self) -> u32 {
        let longest = std::iter::once(&self.default)
            .chain(&self.rules)
            .flat_map(|rule| [rule.commands, rule.raw])
            .max()
            .unwrap_or(self.default.commands);
        u32::try_from(longest.quarter_days().saturating_add(3) / 4).unwrap_or(u32::MAX)
    }

    /// Reads and validates a policy file; errors name the file and the field.
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read policy {}", path.display()))?;
        let mut policy = Policy::parse(&text)
            .with_context(|| format!("policy {} is not valid", path.display()))?;
        if let Some(tags_file) = &policy.tags_file {
            let tags_path = path.parent().unwrap_or(Path::new(".")).join(tags_file);
            policy.tags = read_tags(&tags_path).with_context(|| {
                format!(
                    "policy {}: tags_file {} is not usable",
                    path.display(),
                    tags_path.display()
                )
            })?;
        }
        Ok(policy)
    }

    fn parse(text: &str) -> anyhow::Result<Policy> {
        let file: PolicyFile = toml::from_str(text)?;
        anyhow::ensure!(file.version == 1, "version {}: this build reads version 1", file.version);
        let commands = parse_period("default.commands", &file.default.commands)?;
        let raw = match &file.default.raw {
            Some(raw) => parse_period("default.raw", raw)?,
            None => commands,
        };
        let default = Rule {
            name: "default".to_string(),
            principal: None,
            target: None,
            account: None,
            tag: None,
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
                rule.principal.is_some()
                    || rule.target.is_some()
                    || rule.account.is_some()
                    || rule.tag.is_some(),
                "rules[{index}] ({}) matches nothing: give principal, target, account or tag",
                rule.name
            );
            anyhow::ensure!(
                rule.tag.is_none() || file.tags_file.is_some(),
                "rules[{index}] ({}).tag needs tags_file (the targets' tags)",
                rule.name
            );
            if let Some(tag) = &rule.tag {
                anyhow::ensure!(
                    tag.contains('='),
                    "rules[{index}] ({}).tag: {tag:?} is not Key=Value",
                    rule.name
                );
            }
            let glob = |value: &Option<String>, name: &str| -> anyhow::Result<Option<Glob>> {
                value.as_deref().map(Glob::new).transpose().with_context(|| field(name))
            };
            let commands = match &rule.commands {
                Some(text) => parse_period(&field("commands"), text)?,
                None => default.commands,
            };
            let raw = match &rule.raw {
                Some(text) => parse_period(&field("raw"), text)?,
                None => default.raw.min(commands),
            };
            let parsed = Rule {
                principal: glob(&rule.principal, "principal")?,
                target: glob(&rule.target, "target")?,
                account: glob(&rule.account, "account")?,
                tag: glob(&rule.tag, "tag")?,
                name: rule.name,
                commands,
                raw,
                action: rule.action.unwrap_or(default.action),
            };
            check_raw(&parsed)?;
            rules.push(parsed);
        }
        Ok(Policy {
            default,
            rules,
            tags: HashMap::new(),
            tags_file: file.tags_file,
            sha256: sessionlake_lake::store::sha256_hex(text.as_bytes()),
        })
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
                }) && rule.tag.as_ref().is_none_or(|glob| {
                    let tags = subject.target.as_ref().and_then(|target| self.tags.get(target));
                    tags.is_some_and(|tags| tags.iter().any(|tag| glob.matches(Some(tag))))
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

/// Reads `aws ec2 describe-tags --output json`: each resource's tags as `Key=Value`.
fn read_tags(path: &Path) -> anyhow::Result<HashMap<String, Vec<String>>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tags {
        tags: Vec<Tag>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        resource_id: String,
        #[serde(default)]
        value: String,
    }
    let text = std::fs::read_to_string(path)?;
    let tags: Tags = serde_json::from_str(&text)
        .context("not the JSON of `aws ec2 describe-tags` ({\"Tags\": [{\"Key\", \"ResourceId\", \"Value\"}]})")?;
    let mut by_resource: HashMap<String, Vec<String>> = HashMap::new();
    for tag in tags.tags {
        by_resource.entry(tag.resource_id).or_default().push(format!("{}={}", tag.key, tag.value));
    }
    Ok(by_resource)
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

/// One session as retention sees it: who, when, its live objects, and the earlier versions of
/// them that ingest replaced (a grown stream, a re-delivered transcript) and that are still
/// stored: they expire with the session.
#[derive(Debug, Clone)]
struct LiveSession {
    session_id: String,
    subject: Subject,
    /// Start (else end) time, µs; else the partition date.
    time: i64,
    objects: Vec<ObjectEntry>,
    superseded: Vec<ObjectEntry>,
    /// Live compacted files holding its rows (with other sessions' rows): rewritten without it.
    compacted: Vec<ObjectEntry>,
}

/// The objects of earlier session versions, by session: removed from the live set by an ingest
/// commit (replaced), not by retention, shred or anything else since. They are kept as history
/// until their session expires or is shredded.
fn superseded_versions(
    chain: &[ChainLink],
    live: &BTreeMap<String, ObjectEntry>,
) -> BTreeMap<String, Vec<ObjectEntry>> {
    let mut last_removed: BTreeMap<&str, (&ObjectEntry, CommitAction)> = BTreeMap::new();
    for link in chain {
        for entry in &link.manifest.body.removed {
            last_removed.insert(entry.path.as_str(), (entry, link.manifest.body.action));
        }
        for entry in &link.manifest.body.added {
            last_removed.remove(entry.path.as_str());
        }
    }
    let mut by_session: BTreeMap<String, Vec<ObjectEntry>> = BTreeMap::new();
    for (path, (entry, action)) in last_removed {
        if action == CommitAction::Ingest
            && !live.contains_key(path)
            && let [session] = entry.sessions.as_slice()
        {
            by_session.entry(session.clone()).or_default().push(entry.clone());
        }
    }
    by_session
}

/// Reads the `sessions` rows of every session in the lake (plaintext columns only: no key
/// needed): the live ones, and those left only as replaced versions (read from the newest
/// version's `sessions` file still stored; one that cannot be read is reported and skipped).
async fn live_sessions(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    superseded: &BTreeMap<String, Vec<ObjectEntry>>,
) -> anyhow::Result<Vec<LiveSession>> {
    let live_files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Sessions).collect();
    let with_live: BTreeSet<&str> =
        live_files.iter().flat_map(|entry| entry.sessions.iter().map(String::as_str)).collect();
    let orphans: Vec<&ObjectEntry> = superseded
        .iter()
        .filter(|(session, _)| !with_live.contains(session.as_str()))
        .filter_map(|(_, entries)| entries.iter().rfind(|entry| entry.kind == ObjectKind::Sessions))
        .collect();
    let reads = live_files
        .into_iter()
        .map(|entry| (entry, true))
        .chain(orphans.into_iter().map(|entry| (entry, false)));
    let rows = futures::stream::iter(reads.map(|(entry, required)| async move {
        let read = async {
            let bytes = read_committed(store, entry).await?;
            session_rows(&entry.path, bytes)
        };
        match read.await {
            Ok(rows) => Ok(rows),
            Err(error) if !required => {
                tracing::warn!(
                    object = %store.describe(&entry.path),
                    error = %format!("{error:#}"),
                    "a replaced version's sessions file is unreadable; its session is skipped"
                );
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
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
                superseded: superseded.get(&session_id).cloned().unwrap_or_default(),
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

/// One CloudTrail event of an `access` file as retention sees it.
#[derive(Debug, Clone)]
struct AccessEvent {
    event_id: String,
    session: Option<String>,
    /// One subject per target (one without a target when it names none).
    subjects: Vec<Subject>,
    time: i64,
}

/// An `access` file as retention sees it: its events, who each is about and when.
#[derive(Debug, Clone)]
struct LiveAccessFile {
    entry: ObjectEntry,
    events: Vec<AccessEvent>,
}

/// Reads who every live `access` file's events are about (plaintext columns only: no key).
async fn live_access_files(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<Vec<LiveAccessFile>> {
    let files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Access).collect();
    futures::stream::iter(files.into_iter().map(|entry| async move {
        let bytes = read_committed(store, entry).await?;
        let object = store.describe(&entry.path);
        let records = parquet_out::read_access_plaintext(bytes, &object)?;
        let events = records
            .into_iter()
            .map(|record| {
                let subject = |target: Option<String>| Subject {
                    principal: record.principal.clone(),
                    target,
                    account: record.account.clone(),
                };
                let mut subjects: Vec<Subject> =
                    record.targets.iter().map(|target| subject(Some(target.clone()))).collect();
                if subjects.is_empty() {
                    subjects.push(subject(None));
                }
                AccessEvent {
                    event_id: record.event_id,
                    session: record.session_id,
                    subjects,
                    time: record.event_time,
                }
            })
            .collect();
        anyhow::Ok(LiveAccessFile { entry: entry.clone(), events })
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

/// Plans the `access` files event by event: an event goes when it is older than the longest
/// period its subjects get (their rows' period), unless a hold covers it. A file all of whose
/// events go is deleted; one that keeps some is rewritten without the others.
fn plan_access(
    policy: &Policy,
    files: &[LiveAccessFile],
    holds: &[ActiveHold],
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for file in files {
        let mut due: Vec<(&AccessEvent, Decision)> = Vec::new();
        let mut held: Option<String> = None;
        let mut kept = Vec::new();
        for event in &file.events {
            let decision = event
                .subjects
                .iter()
                .map(|subject| policy.decide(subject))
                .max_by_key(|decision| decision.commands)
                .unwrap_or_else(|| policy.decide(&Subject::default()));
            if now < decision.commands.end(event.time) {
                kept.push(event.event_id.clone());
                continue;
            }
            let hold = holds.iter().find(|hold| {
                event.subjects.iter().any(|subject| {
                    hold.covers(event.session.as_deref().unwrap_or_default(), subject)
                })
            });
            match hold {
                Some(hold) => {
                    held.get_or_insert_with(|| hold.hold.id.clone());
                    kept.push(event.event_id.clone());
                }
                None => due.push((event, decision)),
            }
        }
        // The line names the newest due event's rule and age: the last to become due.
        let Some((newest, decision)) = due.iter().max_by_key(|(event, _)| event.time).cloned()
        else {
            if let Some(hold) = held {
                let mut line = Planned::object(&file.entry, Expiry::Access, file.events.len());
                line.held_by = Some(hold);
                planned.push(line);
            }
            continue;
        };
        let removed = due.len();
        let (expires, keep) = if kept.is_empty() {
            (Expiry::Access, None)
        } else {
            (Expiry::AccessEvents, Some(kept))
        };
        let mut line = Planned::object(&file.entry, expires, file.events.len());
        line.rule = decision.rule.clone();
        line.age_days = (now - newest.time).div_euclid(DAY_MICROS);
        line.keep_days = decision.commands.days_from(newest.time);
        line.events_removed = Some(removed);
        line.keep_events = keep;
        line.events_held_by = held;
        planned.push(line);
    }
    planned
}

/// Plans quarantined inputs: nobody can say whose they are, so they keep the default rule's
/// period for originals, counted from the commit that added them.
fn plan_quarantine(
    policy: &Policy,
    chain: &[ChainLink],
    live: &BTreeMap<String, ObjectEntry>,
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for link in chain {
        let Ok(committed) = chrono::DateTime::parse_from_rfc3339(&link.manifest.body.committed_at)
        else {
            continue;
        };
        let time = committed.timestamp_micros();
        for entry in &link.manifest.body.added {
            let still_live =
                live.get(&entry.path).is_some_and(|found| found.sha256 == entry.sha256);
            if entry.kind != ObjectKind::Quarantine || !still_live {
                continue;
            }
            if now < policy.default.raw.end(time) {
                continue;
            }
            let mut line = Planned::object(entry, Expiry::Quarantine, 0);
            line.rule = policy.default.name.clone();
            line.age_days = (now - time).div_euclid(DAY_MICROS);
            line.keep_days = policy.default.raw.days_from(time);
            line.events_total = None;
            planned.push(line);
        }
    }
    planned
}

// ---------------------------------------------------------------------------------------------
// Plans

/// What expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Expiry {
    /// The whole session: rows, original, keys, and its replaced versions.
    Session,
    /// Only the original transcript (and replaced versions' originals).
    Raw,
    /// An `access` file, every event of it (`session_id` holds its path).
    Access,
    /// Some events of an `access` file: it is rewritten without them.
    AccessEvents,
    /// A quarantined input (`session_id` holds its path).
    Quarantine,
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
    /// Events of an `access` file that go, and how many it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    events_removed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events_total: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conflicts: Vec<String>,
    /// The hold that keeps it (nothing is done then).
    #[serde(skip_serializing_if = "Option::is_none")]
    held_by: Option<String>,
    /// For an access file rewritten: a hold that keeps some of its due events.
    #[serde(skip_serializing_if = "Option::is_none")]
    events_held_by: Option<String>,
    /// Every object that goes, by path.
    #[serde(serialize_with = "paths_of")]
    remove: Vec<ObjectEntry>,
    /// Compacted files to rewrite without the session (whole-session expiry only).
    #[serde(skip)]
    rewrite: Vec<ObjectEntry>,
    /// For an access file rewritten: the events it keeps.
    #[serde(skip)]
    keep_events: Option<Vec<String>>,
}

fn paths_of<S: serde::Serializer>(
    entries: &[ObjectEntry],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(entries.iter().map(|entry| entry.path.as_str()))
}

impl Planned {
    /// A line about a single object (an access file, a quarantined input) with `events`.
    fn object(entry: &ObjectEntry, expires: Expiry, events: usize) -> Planned {
        Planned {
            session_id: entry.path.clone(),
            expires,
            action: Action::Delete,
            rule: String::new(),
            age_days: 0,
            keep_days: 0,
            principal: None,
            target: None,
            objects: 1,
            bytes: entry.size,
            events_removed: None,
            events_total: Some(events),
            conflicts: Vec::new(),
            remove: vec![entry.clone()],
            held_by: None,
            events_held_by: None,
            keep_events: None,
            rewrite: Vec::new(),
        }
    }

    /// What the line does, in words: the plan's first column and each removed object's note.
    fn what(&self) -> String {
        match (self.held_by.as_deref(), &self.expires) {
            (Some(_), _) => "keep (held)".to_string(),
            (None, Expiry::Session) => self.action.as_str().to_string(),
            (None, Expiry::Raw) => "delete raw".to_string(),
            (None, Expiry::Access | Expiry::Quarantine) => "delete".to_string(),
            (None, Expiry::AccessEvents) => "rewrite".to_string(),
        }
    }
}

fn plan(policy: &Policy, sessions: &[LiveSession], holds: &[ActiveHold], now: i64) -> Vec<Planned> {
    let mut planned = Vec::new();
    for session in sessions {
        let decision = policy.decide(&session.subject);
        let age_days = (now - session.time).div_euclid(DAY_MICROS);
        let (expires, keep) = if now >= decision.commands.end(session.time) {
            (Expiry::Session, decision.commands)
        } else if now >= decision.raw.end(session.time) {
            (Expiry::Raw, decision.raw)
        } else {
            continue;
        };
        let remove: Vec<ObjectEntry> = session
            .objects
            .iter()
            .chain(&session.superseded)
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
            action: if expires == Expiry::Session { decision.action } else { Action::Delete },
            expires,
            rule: decision.rule,
            age_days,
            keep_days: keep.days_from(session.time),
            principal: session.subject.principal.clone(),
            target: session.subject.target.clone(),
            objects: remove.len() + rewrite.len(),
            bytes: remove.iter().map(|entry| entry.size).sum(),
            events_removed: None,
            events_total: None,
            conflicts: decision.conflicts,
            held_by,
            events_held_by: None,
            remove,
            keep_events: None,
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
    /// JSON Lines: one record per line of the plan, then a summary.
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
    /// A JSON record of what was done.
    #[arg(long)]
    pub json: bool,
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
    /// A JSON record of what was done.
    #[arg(long)]
    pub json: bool,
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
    /// A JSON record of what was done.
    #[arg(long)]
    pub json: bool,
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
/// set, the keys that open files, and the signer of its commits.
pub(crate) struct Lake {
    pub(crate) store: LakeStore,
    pub(crate) keys: Keys,
    /// The local keyring, when there is one: it wraps new data keys unless a KMS key does.
    keyring: Option<std::sync::Arc<sessionlake_lake::keys::LocalKeyring>>,
    /// Signs the commits: the keyring's key, or the KMS key of `--signing-key`.
    committer: Committer,
    /// The signers it trusts.
    pinned: Vec<PinnedSigner>,
    /// The command, for messages.
    command: &'static str,
    /// The trusted chain, in order.
    pub(crate) chain: Vec<ChainLink>,
    pub(crate) live: BTreeMap<String, ObjectEntry>,
    /// The sequence of the newest manifest file: commits go right after it.
    file_head: Option<u64>,
    /// Why the chain is not wholly trusted, if it is not.
    untrusted: Option<String>,
    /// Why the newest manifest may not be committed after, if it may not.
    head_untrusted: Option<String>,
}

impl Lake {
    /// Opens the lake for `command`, its commits signed by the first KMS key of
    /// `--signing-key` or else the keyring's key; it trusts only manifests the pinned signers
    /// signed (the keyring's key and `--signing-key`).
    pub(crate) async fn open(cli: &Cli, command: &'static str) -> anyhow::Result<Lake> {
        let keyring = crate::open_keyring_if_present(cli)?.map(std::sync::Arc::new);
        let (store, keys) = crate::open_lake_with(cli, keyring.clone()).await?;
        let signing_key = cli.signing_key.first().map(String::as_str);
        let signer = crate::signer(cli, signing_key, keyring.clone(), command).await?;
        let pinned = crate::pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
        let mut lake = Lake {
            store,
            keys,
            keyring,
            committer: Committer::new(std::sync::Arc::from(signer)),
            pinned,
            command,
            chain: Vec::new(),
            live: BTreeMap::new(),
            file_head: None,
            untrusted: None,
            head_untrusted: None,
        };
        lake.reload().await?;
        Ok(lake)
    }

    /// Fails unless the whole chain is trusted: what deletes or rewrites objects never acts on
    /// a chain with a forged, missing or damaged manifest (the error names each).
    pub(crate) fn ensure_trusted(&self) -> sessionlake_lake::LakeResult<()> {
        match &self.untrusted {
            Some(why) => Err(LakeError::new(LakeErrorKind::Integrity, why.clone())),
            None => Ok(()),
        }
    }

    /// Fails when the newest manifest is not trusted: a commit would link to it.
    pub(crate) fn ensure_head_trusted(&self) -> sessionlake_lake::LakeResult<()> {
        match &self.head_untrusted {
            Some(why) => Err(LakeError::new(LakeErrorKind::Integrity, why.clone())),
            None => Ok(()),
        }
    }

    /// Returns the signer of this lake's commits.
    pub(crate) fn signer(&self) -> &dyn ManifestSigner {
        self.committer.signer()
    }

    /// The keyring as the provider of new data keys; an error names the missing keyring.
    pub(crate) fn keyring_provider(&self) -> anyhow::Result<std::sync::Arc<dyn KeyProvider>> {
        match &self.keyring {
            Some(keyring) => Ok(keyring.clone()),
            None => anyhow::bail!(
                "new data keys are wrapped by the keyring or a KMS key, and there is no keyring: \
                 give --keyring or a KMS key"
            ),
        }
    }

    /// Rewrites each compacted file of `files` without the sessions of `gone` (each file under
    /// a fresh data key from the provider that wrapped its current one), staged in
    /// `transaction`; returns the new files' entries (a file left with no row has none).
    pub(crate) async fn rewrite_without(
        &self,
        transaction: &mut Transaction,
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
            if let Some(new) = self.rewrite_one(entry, gone, &lake_id).await? {
                transaction.stage(new.path.clone());
                written.push(new);
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
            _ => self.keyring_provider(),
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

    /// Reads the chain again: the trusted chain, its live set, and the head commits go after.
    /// What is not trusted is said on stderr (once) and makes [`Lake::ensure_trusted`] fail.
    pub(crate) async fn reload(&mut self) -> anyhow::Result<()> {
        let snapshot = Snapshot::open(&self.store, &self.pinned).await?;
        let untrusted = snapshot.ensure_trusted(self.command).err().map(|error| error.to_string());
        if untrusted.is_some() && self.untrusted.is_none() {
            for line in snapshot.ignored() {
                eprintln!("sessionlake: warning: {line}");
            }
        }
        self.untrusted = untrusted;
        self.head_untrusted =
            snapshot.ensure_head_trusted(self.command).err().map(|error| error.to_string());
        self.file_head = snapshot.file_head();
        (self.chain, self.live) = snapshot.into_parts();
        Ok(())
    }

    /// Begins a change of the lake as read, committed on its newest manifest: only on a trusted
    /// newest manifest, and for what deletes or rewrites (retention, shred, compaction) only on
    /// a wholly trusted chain.
    pub(crate) fn begin(&self, action: CommitAction) -> sessionlake_lake::LakeResult<Transaction> {
        if matches!(action, CommitAction::Retention | CommitAction::Shred | CommitAction::Compact) {
            self.ensure_trusted()?;
        }
        self.ensure_head_trusted()?;
        Ok(Transaction::begin(&self.store, &self.committer, self.file_head))
    }

    /// Commits a hold placed or released, which no other change of the lake invalidates, on
    /// the newest manifest: after a lost race the chain is read again and, unless what it
    /// removes is gone meanwhile, the commit tried on the new head. Discards on failure.
    pub(crate) async fn commit_hold(
        &mut self,
        transaction: &mut Transaction,
        reason: Option<String>,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
    ) -> anyhow::Result<ChainLink> {
        let mut attempt = 0;
        let error = loop {
            attempt += 1;
            let committed = transaction
                .commit(CommitAction::Hold, reason.clone(), added.clone(), removed.clone(), false)
                .await;
            match committed {
                Ok(link) => return Ok(link),
                Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
                    self.reload().await?;
                    if let Err(error) = self.ensure_head_trusted() {
                        break error;
                    }
                    if let Some(gone) = removed.iter().find(|e| !self.live.contains_key(&e.path)) {
                        break LakeError::new(
                            LakeErrorKind::AlreadyExists,
                            format!("{} was removed by another commit meanwhile", gone.path),
                        );
                    }
                    transaction.replan_on(self.file_head);
                }
                Err(error) => break error,
            }
        };
        transaction.discard().await;
        Err(error.into())
    }

    /// Deletes the leftovers `leftovers` names of an interrupted writer (see
    /// [`transaction::sweep`]); only on a wholly trusted chain. Returns how many it deleted.
    pub(crate) async fn sweep(&self, leftovers: &Leftovers<'_>) -> anyhow::Result<usize> {
        self.ensure_trusted()?;
        let swept =
            transaction::sweep(&self.store, &self.chain, &self.live, self.file_head, leftovers)
                .await?;
        Ok(swept.into_result()?)
    }

    /// Writes `entry` (an `access` file) again with only the events `keep` accepts, under the
    /// same data key, as a new version of the same CloudTrail file's day. Returns the new
    /// file's entry, or `None` when no event is kept (the file just goes). Not committed.
    async fn rewrite_access(
        &self,
        entry: &ObjectEntry,
        keep: impl Fn(&sessionlake_schemas::AccessRecord) -> bool,
    ) -> anyhow::Result<Option<ObjectEntry>> {
        let object = self.store.describe(&entry.path);
        let wrapped = entry.key.clone().with_context(|| format!("{object} names no data key"))?;
        let key = self
            .keys
            .decrypt(&wrapped)
            .await
            .with_context(|| format!("failed to open {object}"))?;
        let bytes = read_committed(&self.store, entry).await?;
        let records = {
            let (key, object) = (key.clone(), object.clone());
            tokio::task::spawn_blocking(move || {
                parquet_out::read_access(bytes, &object, Some(&key))
            })
            .await
            .context("access reader task failed")??
        };
        let kept: Vec<_> = records.into_iter().filter(|record| keep(record)).collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let (Some(dt), Some(trail_file_id)) =
            (paths::dt_of(&entry.path), paths::trail_file_id_of(&entry.path))
        else {
            anyhow::bail!("{object} is not named like an access file");
        };
        let path = paths::access_object(dt, trail_file_id, &new_version());
        let metadata = serde_json::to_vec(&wrapped).context("failed to encode key metadata")?;
        let written =
            tokio::task::spawn_blocking(move || parquet_out::write_access(&kept, &key, metadata))
                .await
                .context("access writer task failed")??;
        let stored = self.store.put(&path, bytes::Bytes::from(written)).await?;
        let blocks = stored.blocks_for(ObjectKind::Access);
        Ok(Some(ObjectEntry {
            path: stored.path,
            size: stored.size,
            sha256: stored.sha256,
            kind: ObjectKind::Access,
            sessions: entry.sessions.clone(),
            key: Some(wrapped),
            note: None,
            blocks,
        }))
    }

    /// Plans the rewrite of every live `access` file that holds events of `session`.
    async fn access_of_session(&self, session: &str) -> anyhow::Result<Vec<Planned>> {
        let files = live_access_files(&self.store, &self.live).await?;
        Ok(files
            .iter()
            .filter_map(|file| {
                let (of_session, kept): (Vec<&AccessEvent>, Vec<&AccessEvent>) =
                    file.events.iter().partition(|event| event.session.as_deref() == Some(session));
                if of_session.is_empty() {
                    return None;
                }
                let expires = if kept.is_empty() { Expiry::Access } else { Expiry::AccessEvents };
                let mut line = Planned::object(&file.entry, expires, file.events.len());
                line.rule = "shred".to_string();
                line.events_removed = Some(of_session.len());
                line.keep_events = (!kept.is_empty())
                    .then(|| kept.iter().map(|event| event.event_id.clone()).collect());
                Some(line)
            })
            .collect())
    }

    /// Writes the rewritten `access` files the plan asks for. Returns them, to be added by the
    /// same commit that removes the files they replace.
    async fn write_rewrites(
        &self,
        transaction: &mut Transaction,
        due: &[&Planned],
    ) -> anyhow::Result<Vec<ObjectEntry>> {
        let mut added = Vec::new();
        for line in due {
            let Some(keep) = &line.keep_events else { continue };
            let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
            for entry in &line.remove {
                let rewritten =
                    self.rewrite_access(entry, |record| keep.contains(record.event_id.as_str()));
                if let Some(written) = rewritten.await? {
                    transaction.stage(written.path.clone());
                    added.push(written);
                }
            }
        }
        Ok(added)
    }
}

/// Each removed object with a note of why: the line's action, rule and ages.
fn noted(line: &Planned) -> impl Iterator<Item = ObjectEntry> + '_ {
    line.remove.iter().map(move |entry| {
        let events = match (line.events_removed, line.events_total) {
            (Some(removed), Some(total)) if removed < total => {
                format!(", {removed} of {total} events")
            }
            _ => String::new(),
        };
        let note = if line.rule == "shred" {
            format!("{}{events}", line.what())
        } else {
            format!(
                "{}: rule {}, {}d old, kept {}d{events}",
                line.what(),
                line.rule,
                line.age_days,
                line.keep_days
            )
        };
        ObjectEntry { note: Some(note), ..entry.clone() }
    })
}

/// What an interrupted retention, shred or compaction leaves: objects its commit removed that
/// are still stored.
pub(crate) const REMOVED_LEFTOVERS: Leftovers<'static> = Leftovers {
    folders: &[],
    uncommitted: None,
    removed_by: &[CommitAction::Retention, CommitAction::Shred, CommitAction::Compact],
};

/// Deletes `paths`, session key records first (a crash in between leaves only ciphertext),
/// counting on a spinner when stderr is a terminal.
pub(crate) async fn delete_all(store: &LakeStore, entries: Vec<ObjectEntry>) -> anyhow::Result<()> {
    let progress = crate::progress::Progress::counting(true, "deleting", "objects");
    transaction::delete_removed(store, entries, &|| progress.advance(1)).await?;
    Ok(())
}

/// Runs `retention plan` or `retention apply`. Both exit 0 when they did their job, whether
/// or not anything was due (a job runner must not see a quiet day as a failure).
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
    let mut lake = Lake::open(cli, "retention apply").await?;
    if apply {
        lake.ensure_trusted()?;
        // Its commit is locked for the policy's longest period (on a bucket with Object Lock).
        if cli.object_lock_days.is_none() {
            let days = Some(policy.longest_days());
            let settings = ObjectLockSettings::from_options(cli.object_lock_mode, days)?;
            lake.store = lake.store.clone().with_object_lock(settings);
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        if apply {
            let swept = lake.sweep(&REMOVED_LEFTOVERS).await?;
            if swept > 0 {
                eprintln!("sessionlake: deleted {swept} objects an interrupted run had removed");
            }
        }
        let superseded = superseded_versions(&lake.chain, &lake.live);
        let sessions = live_sessions(&lake.store, &lake.live, &superseded).await?;
        let holds = live_holds(&lake.store, &lake.live).await?;
        let mut planned = plan(&policy, &sessions, &holds, now);
        let access = live_access_files(&lake.store, &lake.live).await?;
        planned.extend(plan_access(&policy, &access, &holds, now));
        planned.extend(plan_quarantine(&policy, &lake.chain, &lake.live, now));
        let due: Vec<&Planned> = planned.iter().filter(|p| p.held_by.is_none()).collect();
        if !apply || due.is_empty() {
            report_plan(&planned, args.json, None)?;
            return Ok(Outcome::Matched);
        }
        if attempt == 1 && !args.json {
            report_plan(&planned, false, None)?;
        }
        let objects: usize = due.iter().map(|p| p.objects).sum();
        if attempt == 1
            && !confirm(
                args.yes,
                &format!("delete or shred {objects} objects of {} sessions", due.len()),
            )?
        {
            anyhow::bail!("nothing changed");
        }
        let mut removed: Vec<ObjectEntry> = due.iter().flat_map(|line| noted(line)).collect();
        let expired: BTreeSet<String> = due
            .iter()
            .filter(|p| p.expires == Expiry::Session)
            .map(|p| p.session_id.clone())
            .collect();
        let compacted: Vec<ObjectEntry> =
            due.iter().flat_map(|p| p.rewrite.iter().cloned()).collect();
        let mut transaction = lake.begin(CommitAction::Retention)?;
        let written = async {
            let mut added = lake.write_rewrites(&mut transaction, &due).await?;
            // Compacted files holding expired sessions are rewritten without them in the same
            // commit; the old files (and older ones that held them) are deleted after it.
            added.extend(lake.rewrite_without(&mut transaction, &compacted, &expired).await?);
            anyhow::Ok(added)
        };
        let written = written.await;
        let added = transaction.or_discard(written).await?;
        let mut seen = BTreeSet::new();
        removed.extend(compacted.into_iter().filter(|entry| seen.insert(entry.path.clone())).map(
            |entry| {
                let gone = entry.sessions.iter().filter(|id| expired.contains(*id)).count();
                let note = format!("rewrite: without {gone} expired sessions");
                ObjectEntry { note: Some(note), ..entry }
            },
        ));
        let stale = lake.stale_compacted(&expired);
        let count = |expiry: Expiry| due.iter().filter(|p| p.expires == expiry).count();
        let reason = format!(
            "retention policy {} (sha256 {}) as of {} by {}: {} sessions expired, {} originals \
             expired, {} access files expired, {} rewritten, {} quarantined inputs expired, {} \
             shredded",
            args.policy.display(),
            policy.sha256,
            crate::time::format_time(now),
            actor(),
            count(Expiry::Session),
            count(Expiry::Raw),
            count(Expiry::Access),
            count(Expiry::AccessEvents),
            count(Expiry::Quarantine),
            due.iter().filter(|p| p.action == Action::Shred).count()
        );
        let committed = transaction
            .commit(CommitAction::Retention, Some(reason), added.clone(), removed.clone(), false)
            .await;
        match committed {
            Ok(link) => {
                delete_all(&lake.store, removed).await?;
                delete_all(&lake.store, stale).await?;
                if args.json {
                    report_plan(&planned, true, Some(&link.head()))?;
                } else {
                    eprintln!(
                        "sessionlake: applied: {} lines, {objects} objects removed, {} rewritten \
                         (manifest {})\nhead: {}",
                        due.len(),
                        added.len(),
                        link.manifest.body.sequence,
                        link.head()
                    );
                }
                return Ok(Outcome::Matched);
            }
            Err(error) => {
                transaction.discard().await;
                if error.is_conflict() && attempt < MAX_ATTEMPTS {
                    eprintln!("sessionlake: another writer committed first; planning again");
                    lake.reload().await?;
                } else {
                    return Err(error.into());
                }
            }
        }
    }
}

/// Prints the plan: a line (or JSON record) per session or object, totals by partition, and a
/// summary; `applied` is the head of the commit that applied it.
fn report_plan(
    planned: &[Planned],
    json: bool,
    applied: Option<&manifest::Head>,
) -> anyhow::Result<()> {
    let mut by_partition: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
    for item in planned.iter().filter(|p| p.held_by.is_none()) {
        for entry in &item.remove {
            let dt = paths::dt_of(&entry.path).unwrap_or(match entry.kind {
                ObjectKind::SessionKey => "keys",
                _ => "-",
            });
            let totals = by_partition.entry(dt.to_string()).or_default();
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
            .map(|(dt, (lines, objects, bytes))| {
                serde_json::json!({"dt": dt, "lines": lines, "objects": objects, "bytes": bytes})
            })
            .collect();
        let summary = serde_json::json!({
            "due": due,
            "held": held,
            "objects": planned.iter().filter(|p| p.held_by.is_none()).map(|p| p.objects).sum::<usize>(),
            "applied": applied.is_some(),
            "manifest": applied.map(|head| head.sequence),
            "head": applied,
            "partitions": partitions,
        });
        return print(format_args!("{}", json_record("summary", &summary)));
    }
    for item in planned {
        let why = match &item.held_by {
            Some(hold) => format!("{hold}; rule {} would remove it", item.rule),
            None => format!("rule {}", item.rule),
        };
        let conflicts = if item.conflicts.is_empty() {
            String::new()
        } else {
            format!("; also matched by {} (longest period wins)", item.conflicts.join(", "))
        };
        let held_events = match &item.events_held_by {
            Some(hold) => format!(", due events of {hold} kept"),
            None => String::new(),
        };
        let events = match (item.events_removed, item.events_total) {
            (Some(removed), Some(total)) => format!(", {removed} of {total} events{held_events}"),
            (None, Some(total)) => format!(", {total} events"),
            _ => String::new(),
        };
        print(format_args!(
            "{:<12} {}  age {}d >= {}d  {why}{conflicts}  ({} objects, {} bytes{events})",
            item.what(),
            item.session_id,
            item.age_days,
            item.keep_days,
            item.objects,
            item.bytes
        ))?;
    }
    for (dt, (lines, objects, bytes)) in &by_partition {
        print(format_args!("total dt={dt}: {lines} lines, {objects} objects, {bytes} bytes"))?;
    }
    eprintln!("{due} due, {held} kept by holds");
    Ok(())
}

/// Prints what a one-shot change did: a JSON record with `--json`, else `text`.
fn report_change(
    json: bool,
    kind: &str,
    mut data: serde_json::Value,
    text: &str,
    head: &manifest::Head,
) -> anyhow::Result<()> {
    if json {
        data["head"] = serde_json::to_value(head)?;
        print(format_args!("{}", json_record(kind, &data)))
    } else {
        print(format_args!("{text}\nhead: {head}"))
    }
}

/// Runs `hold add|list|release`.
pub async fn hold(cli: &Cli, command: &HoldCommand) -> anyhow::Result<Outcome> {
    let mut lake = Lake::open(cli, "hold").await?;
    if !matches!(command, HoldCommand::List(_)) {
        // Before anything is written: a hold's file would otherwise stay uncommitted.
        lake.ensure_head_trusted()?;
    }
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
            let mut transaction = lake.begin(CommitAction::Hold)?;
            let stored = transaction.put_new(&path, bytes::Bytes::from(json)).await;
            let stored = transaction.or_discard(stored).await?;
            let entry = ObjectEntry {
                path: stored.path,
                size: stored.size,
                sha256: stored.sha256,
                kind: ObjectKind::Hold,
                sessions: hold.session.clone().into_iter().collect(),
                key: None,
                note: None,
                blocks: None,
            };
            let reason =
                format!("hold {id} on {} by {}: {}", hold.scope(), hold.created_by, hold.reason);
            let link = lake.commit_hold(&mut transaction, Some(reason), vec![entry], vec![]);
            let link = link.await?;
            let sequence = link.manifest.body.sequence;
            let mut data = serde_json::to_value(&hold)?;
            data["manifest"] = sequence.into();
            report_change(
                args.json,
                "hold",
                data,
                &format!("{id}  placed on {} (manifest {sequence})", hold.scope()),
                &link.head(),
            )?;
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
            let Some(entry) =
                lake.live.get(&path).filter(|entry| entry.kind == ObjectKind::Hold).cloned()
            else {
                anyhow::bail!("no hold {} in force in {}", args.id, lake.store.location());
            };
            let reason = format!("release of hold {} by {}: {}", args.id, actor(), args.reason);
            let mut transaction = lake.begin(CommitAction::Hold)?;
            let removed = vec![entry.clone()];
            let link = lake.commit_hold(&mut transaction, Some(reason), vec![], removed);
            let link = link.await?;
            // The hold's file goes; the commits that placed and released it stay in the chain.
            delete_all(&lake.store, vec![entry]).await?;
            let sequence = link.manifest.body.sequence;
            report_change(
                args.json,
                "release",
                serde_json::json!({"id": args.id, "reason": args.reason, "manifest": sequence}),
                &format!("{} released (manifest {sequence})", args.id),
                &link.head(),
            )?;
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
                    blocks: None,
                });
            }
        }
    }
    Ok(found)
}

/// Runs `shred`: destroys the session's key records (every copy of its original becomes
/// unreadable), removes its rows and every stored version, and rewrites the `access` files
/// that hold its CloudTrail events without them; one commit says so.
pub async fn shred(cli: &Cli, args: &ShredArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
    let mut lake = Lake::open(cli, "shred").await?;
    lake.ensure_trusted()?;
    for attempt in 1..=MAX_ATTEMPTS {
        let superseded = superseded_versions(&lake.chain, &lake.live);
        let sessions = live_sessions(&lake.store, &lake.live, &superseded).await?;
        let holds = live_holds(&lake.store, &lake.live).await?;
        let session = sessions.iter().find(|s| s.session_id == args.session);
        let is_compacted = |entry: &ObjectEntry| paths::is_compacted(&entry.path);
        let live: Vec<ObjectEntry> = lake
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
        let access = lake.access_of_session(&args.session).await?;
        if live.is_empty() && stored.is_empty() && access.is_empty() {
            anyhow::bail!("no session {} in {}", args.session, lake.store.location());
        }
        if attempt == 1
            && !confirm(
                args.yes,
                &format!(
                    "shred {} ({} objects, {} access files)",
                    args.session,
                    stored.len().max(live.len()),
                    access.len()
                ),
            )?
        {
            anyhow::bail!("nothing changed");
        }
        let reason = format!("shred of {} by {}: {}", args.session, actor(), args.reason);
        // Live objects, and stored ones no commit removed yet (replaced versions, leftovers):
        // the commit names everything this shred deletes.
        let mut removed = live;
        for entry in &stored {
            if !removed.iter().any(|known| known.path == entry.path) {
                let committed = superseded
                    .get(&args.session)
                    .and_then(|kept| kept.iter().find(|known| known.path == entry.path));
                removed.push(committed.cloned().unwrap_or_else(|| entry.clone()));
            }
        }
        let gone = BTreeSet::from([args.session.clone()]);
        // Its rows leave the compacted files that hold them (rewritten without it), and its
        // events the access files, in the same commit; every compacted file that ever held
        // them is deleted after it.
        let stale = lake.stale_compacted(&gone);
        let due: Vec<&Planned> = access.iter().collect();
        let mut transaction = lake.begin(CommitAction::Shred)?;
        let written = async {
            let added = lake.rewrite_without(&mut transaction, &compacted, &gone).await?;
            let access = lake.write_rewrites(&mut transaction, &due).await?;
            anyhow::Ok((added, access))
        };
        let written = written.await;
        let (mut added, added_access) = transaction.or_discard(written).await?;
        let rewritten_compacted = added.len();
        added.extend(added_access);
        removed.extend(compacted);
        removed.extend(access.iter().flat_map(noted));
        let committed = transaction
            .commit(CommitAction::Shred, Some(reason), added.clone(), removed.clone(), false)
            .await;
        let link = match committed {
            Ok(link) => link,
            Err(error) => {
                transaction.discard().await;
                if error.is_conflict() && attempt < MAX_ATTEMPTS {
                    lake.reload().await?;
                    continue;
                }
                return Err(error.into());
            }
        };
        delete_all(&lake.store, stale).await?;
        let added_access = added.len() - rewritten_compacted;
        delete_all(&lake.store, removed.clone()).await?;
        let sequence = link.manifest.body.sequence;
        report_change(
            args.json,
            "shred",
            serde_json::json!({
                "session": args.session,
                "reason": args.reason,
                "objects": removed.len(),
                "access_rewritten": added_access,
                "compacted_rewritten": rewritten_compacted,
                "manifest": sequence,
            }),
            &format!(
                "shredded {}: its session keys are destroyed, {} objects removed, {} access \
                 files and {rewritten_compacted} compacted files rewritten (manifest {sequence})",
                args.session,
                removed.len(),
                added_access
            ),
            &link.head(),
        )?;
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

    fn micros(time: &str) -> i64 {
        crate::time::parse_time(time).expect("time")
    }

    #[test]
    fn test_years_are_calendar_years() {
        // A year from 2023-03-01 ends on 2024-03-01: 366 days, never 365.
        let start = micros("2023-03-01T10:00:00Z");
        let year = Period::Years(1);
        assert_eq!(year.end(start), micros("2024-03-01T10:00:00Z"));
        assert_eq!(year.days_from(start), 366);
        assert!(micros("2024-02-29T10:00:00Z") < year.end(start), "a day short");
        // From 29 February, a year ends on 1 March (no 29 February to land on).
        assert_eq!(year.end(micros("2024-02-29T00:00:00Z")), micros("2025-03-01T00:00:00Z"));
        assert_eq!(
            Period::Years(4).end(micros("2024-02-29T00:00:00Z")),
            micros("2028-02-29T00:00:00Z")
        );
        assert_eq!(Period::Days(90).days_from(start), 90);
        // Ordering across units: 365 days is shorter than a year, 366 longer.
        assert!(Period::Days(365) < year && year < Period::Days(366));
        assert_eq!(parse_period("f", "12w").expect("weeks"), Period::Days(84));
        assert!(parse_period("f", "101y").is_err() && parse_period("f", "0d").is_err());
    }

    #[test]
    fn test_tag_rules_match_the_targets_tags() {
        let text = r#"
version = 1
tags_file = "tags.json"
[default]
commands = "1y"
[[rules]]
name = "pci"
tag = "Compliance=pci*"
commands = "7y"
"#;
        let mut policy = Policy::parse(text).expect("valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let tags = dir.path().join("tags.json");
        std::fs::write(
            &tags,
            r#"{"Tags": [
                {"Key": "Compliance", "ResourceId": "i-0pci", "ResourceType": "instance", "Value": "pci-dss"},
                {"Key": "Env", "ResourceId": "i-0dev", "ResourceType": "instance", "Value": "dev"}
            ]}"#,
        )
        .expect("write");
        policy.tags = read_tags(&tags).expect("tags");
        let pci = policy.decide(&subject("arn:aws:iam::1:user/a", "i-0pci"));
        assert_eq!((pci.rule.as_str(), pci.commands), ("pci", Period::Years(7)));
        let dev = policy.decide(&subject("arn:aws:iam::1:user/a", "i-0dev"));
        assert_eq!(dev.rule, "default");
        // A tag rule without the tags file, or a tag that is not Key=Value, is refused.
        let without = text.replace("tags_file = \"tags.json\"\n", "");
        let error = format!("{:#}", Policy::parse(&without).expect_err("no tags file"));
        assert!(error.contains("needs tags_file"), "{error}");
        let bad = text.replace("Compliance=pci*", "pci");
        let error = format!("{:#}", Policy::parse(&bad).expect_err("bad tag"));
        assert!(error.contains("is not Key=Value"), "{error}");
        std::fs::write(&tags, "[]").expect("write");
        let error = format!("{:#}", read_tags(&tags).expect_err("not tags"));
        assert!(error.contains("describe-tags"), "{error}");
    }

    #[test]
    fn test_rules_apply_and_the_longest_period_wins() {
        let policy = Policy::parse(POLICY).expect("valid");
        // Seven years of 365.25 days, rounded up: how long its commits are locked.
        assert_eq!(policy.longest_days(), 2557);
        let nobody = policy.decide(&subject("arn:aws:iam::111122223333:user/alice", "i-0dev"));
        assert_eq!(
            (nobody.rule.as_str(), nobody.commands, nobody.raw),
            ("default", Period::Years(3), Period::Years(1))
        );
        let contractor =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0dev"));
        assert_eq!(
            (contractor.commands, contractor.raw, contractor.action),
            (Period::Years(1), Period::Days(90), Action::Shred)
        );
        // A contractor on prod: prod's periods (longer) and the contractor's shred; both named.
        let both =
            policy.decide(&subject("arn:aws:iam::111122223333:user/contractor-bob", "i-0prod1"));
        assert_eq!(
            (both.rule.as_str(), both.commands, both.raw, both.action),
            ("prod", Period::Years(7), Period::Years(2), Action::Shred)
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
