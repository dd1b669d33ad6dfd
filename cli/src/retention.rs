//! `retention plan|apply`, `hold add|list|release` and `shred`: their flags, prompts and
//! printing. What they decide and do lives in the keep library (`sessionlake_keep`): the
//! policy and the planner, holds, and the lake writer [`sessionlake_keep::Lake`]; these
//! handlers turn flags into its calls.
//!
//! Every change is a manifest commit (action `retention`, `hold` or `shred`) naming the objects
//! removed, the reason and who asked, so `verify` tells a deletion by policy from one by an
//! attacker. Objects are removed from the live set by the commit first and deleted after, so an
//! interrupted run leaves nothing half-visible: a re-run deletes what an earlier commit removed
//! and finishes the plan (which it recomputes from what is still live).

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use sessionlake_keep::holds::{self, Hold, live_holds};
use sessionlake_keep::lake::MAX_ATTEMPTS;
use sessionlake_keep::plan::Planned;
use sessionlake_keep::policy::Policy;
use sessionlake_keep::{Attempt, retention, shred};
use sessionlake_schemas::manifest::ObjectKind;
use sessionlake_schemas::paths;
use sessionlake_storage::manifest;
use sessionlake_storage::object_lock::ObjectLockSettings;

use crate::{Cli, Outcome, json_record, open_writer};

/// Examples of `retention` and its subcommands' `--help`.
pub const RETENTION_EXAMPLES: &str = "Examples:\n  \
    sessionlake retention plan --policy retention.toml\n  \
    sessionlake retention apply --policy retention.toml --yes";

/// Examples of `hold` and its subcommands' `--help`.
pub const HOLD_EXAMPLES: &str = "Examples:\n  \
    sessionlake hold add alice-0123456789abcdef0 --reason \"case 2026-18\"\n  \
    sessionlake hold add --principal arn:aws:iam::111122223333:user/bob --reason \"case 2026-17\"\n  \
    sessionlake hold list\n  \
    sessionlake hold release hold-3f2a9c0d1e4b --reason \"case closed\"";

/// `retention`: plan or apply a policy.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Lists what the policy would delete or shred and why (rule, age), and what holds keep;
    /// changes nothing.
    #[command(after_help = RETENTION_EXAMPLES)]
    Plan(RetentionArgs),
    /// Does what `plan` lists (asks first on a terminal; `--yes` otherwise). Safe to interrupt
    /// and run again.
    #[command(after_help = RETENTION_EXAMPLES)]
    Apply(RetentionArgs),
}

/// Options of `retention plan` and `retention apply`.
#[derive(Debug, ClapArgs)]
pub struct RetentionArgs {
    /// The policy file (TOML; see config/retention.example.toml).
    #[arg(long, env = "SESSIONLAKE_POLICY")]
    pub policy: PathBuf,
    /// Judge ages as of this time (default: now): 2026-03-14, 2026-03-14T09:30:00Z.
    #[arg(long, value_name = "TIME", env = "SESSIONLAKE_AS_OF")]
    pub as_of: Option<String>,
    /// Apply without asking.
    #[arg(long, env = "SESSIONLAKE_YES")]
    pub yes: bool,
    /// JSON Lines: one record per line of the plan, then a summary.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// `hold`: legal holds.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Places a hold on a session, a principal or a target.
    #[command(after_help = HOLD_EXAMPLES)]
    Add(HoldAddArgs),
    /// Lists the holds in force.
    #[command(after_help = HOLD_EXAMPLES)]
    List(HoldListArgs),
    /// Releases a hold.
    #[command(after_help = HOLD_EXAMPLES)]
    Release(HoldReleaseArgs),
}

/// Options of `hold add`.
#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["session", "principal", "target"])))]
pub struct HoldAddArgs {
    /// The session to hold.
    pub session: Option<String>,
    /// Hold every session of this principal (exact ARN, or `*` patterns).
    #[arg(long, env = "SESSIONLAKE_PRINCIPAL")]
    pub principal: Option<String>,
    /// Hold every session on this target (exact, or `*` patterns).
    #[arg(long, env = "SESSIONLAKE_TARGET")]
    pub target: Option<String>,
    /// Why (recorded in the hold and the commit).
    #[arg(long, env = "SESSIONLAKE_REASON")]
    pub reason: String,
    /// Hold a session the lake holds nothing of yet (its transcript not delivered or not
    /// ingested): without it, an unknown session id is refused, as a mistyped one would protect
    /// nothing.
    #[arg(long, requires = "session", env = "SESSIONLAKE_BEFORE_INGEST")]
    pub before_ingest: bool,
    /// A JSON record of what was done.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Options of `hold list`.
#[derive(Debug, ClapArgs)]
pub struct HoldListArgs {
    /// JSON Lines.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Options of `hold release`.
#[derive(Debug, ClapArgs)]
pub struct HoldReleaseArgs {
    /// The hold's id (`hold list`).
    pub id: String,
    /// Why (recorded in the commit).
    #[arg(long, env = "SESSIONLAKE_REASON")]
    pub reason: String,
    /// A JSON record of what was done.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Options of `shred`.
#[derive(Debug, ClapArgs)]
pub struct ShredArgs {
    /// The session to destroy.
    pub session: String,
    /// Why (recorded in the commit).
    #[arg(long, env = "SESSIONLAKE_REASON")]
    pub reason: String,
    /// Shred without asking.
    #[arg(long, env = "SESSIONLAKE_YES")]
    pub yes: bool,
    /// A JSON record of what was done.
    #[arg(long, env = "SESSIONLAKE_JSON")]
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

/// A spinner counting deleted objects on stderr (a terminal), drawn from the first delete on.
#[derive(Default)]
pub(crate) struct Deleting(std::sync::OnceLock<crate::progress::Progress>);

impl Deleting {
    /// Counts one object deleted.
    pub(crate) fn deleted(&self) {
        let start = || crate::progress::Progress::counting(true, "deleting", "objects");
        self.0.get_or_init(start).advance(1);
    }
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
    let mut lake = open_writer(cli, "retention apply").await?;
    if apply {
        lake.ensure_trusted()?;
        // Its commit is locked for the policy's longest period (on a bucket with Object Lock).
        if cli.object_lock_days.is_none() {
            let days = Some(policy.longest_days());
            let settings = ObjectLockSettings::from_options(cli.object_lock_mode, days)?;
            lake.store = lake.store.clone().with_object_lock(settings);
        }
    }
    if !apply {
        let planned = retention::plan_lake(&lake, &policy, now).await?;
        report_plan(&planned, args.json, None)?;
        return Ok(Outcome::Matched);
    }
    let provenance = retention::Provenance {
        policy: &policy,
        policy_file: &args.policy.display().to_string(),
        as_of: &crate::time::format_time(now),
    };
    let asking = Asking { yes: args.yes, json: args.json, deleting: Deleting::default() };
    let done = retention::apply_due(&mut lake, provenance, now, &asking).await?;
    let due: Vec<&Planned> = done.planned.iter().filter(|p| p.held_by.is_none()).collect();
    let Some(applied) = done.applied else {
        anyhow::ensure!(due.is_empty(), "nothing changed");
        report_plan(&done.planned, args.json, None)?;
        return Ok(Outcome::Matched);
    };
    let link = &applied.link;
    if args.json {
        report_plan(&done.planned, true, Some(&link.head()))?;
    } else {
        eprintln!(
            "sessionlake: applied: {} lines, {} objects removed, {} rewritten (manifest {})\nhead: {}",
            due.len(),
            due_objects(&due),
            applied.added,
            link.manifest.body.sequence,
            link.head()
        );
    }
    Ok(Outcome::Matched)
}

/// Objects the due lines `due` delete or shred.
fn due_objects(due: &[&Planned]) -> usize {
    due.iter().map(|p| p.objects).sum()
}

/// `retention apply` at a terminal: shows the first plan and asks before applying it (unless
/// `--yes`), says what an interrupted run left and when it plans again, counts deletes.
struct Asking {
    yes: bool,
    json: bool,
    deleting: Deleting,
}

impl retention::Supervisor for Asking {
    type Error = anyhow::Error;

    fn swept(&self, count: usize) {
        eprintln!("sessionlake: deleted {count} objects an interrupted run had removed");
    }

    fn approve(&self, planned: &[Planned], attempt: usize) -> anyhow::Result<bool> {
        // A plan made again after another writer's commit is applied as the first was.
        if attempt > 1 {
            return Ok(true);
        }
        if !self.json {
            report_plan(planned, false, None)?;
        }
        let due: Vec<&Planned> = planned.iter().filter(|p| p.held_by.is_none()).collect();
        let question =
            format!("delete or shred {} objects of {} sessions", due_objects(&due), due.len());
        confirm(self.yes, &question)
    }

    fn replanning(&self) {
        eprintln!("sessionlake: another writer committed first; planning again");
    }

    fn deleted(&self) {
        self.deleting.deleted();
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
    let mut lake = open_writer(cli, "hold").await?;
    if !matches!(command, HoldCommand::List(_)) {
        // Before anything is written: a hold's file would otherwise stay uncommitted.
        lake.ensure_head_trusted()?;
    }
    match command {
        HoldCommand::Add(args) => {
            if let Some(session) = args.session.as_deref()
                && !args.before_ingest
                && !lake.live.values().any(|entry| entry.sessions.iter().any(|id| id == session))
            {
                anyhow::bail!(
                    "no session {} in {}: nothing held (check the id with `sessionlake \
                     sessions`; to hold a session not ingested yet, add --before-ingest)",
                    sessionlake_schemas::session_id::escaped(session),
                    lake.store.location()
                );
            }
            let hold = Hold::new(
                &args.reason,
                args.session.clone(),
                args.principal.clone(),
                args.target.clone(),
            )?;
            let link = holds::place(&mut lake, &hold).await?;
            let sequence = link.manifest.body.sequence;
            let mut data = serde_json::to_value(&hold)?;
            data["manifest"] = sequence.into();
            report_change(
                args.json,
                "hold",
                data,
                &format!("{}  placed on {} (manifest {sequence})", hold.id, hold.scope()),
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
            let deleting = Deleting::default();
            let deleted = || deleting.deleted();
            let link = holds::release(&mut lake, &args.id, &args.reason, &deleted).await?;
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

/// Runs `shred`: destroys the session's key records (every copy of its original becomes
/// unreadable), removes its rows and every stored version, and rewrites the `access` files
/// that hold its CloudTrail events without them; one commit says so.
pub async fn shred(cli: &Cli, args: &ShredArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
    let mut lake = open_writer(cli, "shred").await?;
    lake.ensure_trusted()?;
    for attempt in 1..=MAX_ATTEMPTS {
        let plan = shred::plan(&lake, &args.session).await?;
        if attempt == 1
            && !confirm(
                args.yes,
                &format!(
                    "shred {} ({} objects, {} access files)",
                    args.session,
                    plan.objects(),
                    plan.access.len()
                ),
            )?
        {
            anyhow::bail!("nothing changed");
        }
        let deleting = Deleting::default();
        let shredded =
            match shred::apply(&mut lake, plan, &args.reason, &|| deleting.deleted()).await? {
                Attempt::Done(shredded) => shredded,
                Attempt::Conflict(_) if attempt < MAX_ATTEMPTS => {
                    lake.reload().await?;
                    continue;
                }
                Attempt::Conflict(error) => return Err(error.into()),
            };
        let sequence = shredded.link.manifest.body.sequence;
        report_change(
            args.json,
            "shred",
            serde_json::json!({
                "session": args.session,
                "reason": args.reason,
                "objects": shredded.objects,
                "access_rewritten": shredded.access_rewritten,
                "compacted_rewritten": shredded.compacted_rewritten,
                "manifest": sequence,
            }),
            &format!(
                "shredded {}: its session keys are destroyed, {} objects removed, {} access \
                 files and {} compacted files rewritten (manifest {sequence})",
                args.session,
                shredded.objects,
                shredded.access_rewritten,
                shredded.compacted_rewritten
            ),
            &shredded.link.head(),
        )?;
        return Ok(Outcome::Matched);
    }
    anyhow::bail!("{} kept changing; try again", lake.store.location())
}
