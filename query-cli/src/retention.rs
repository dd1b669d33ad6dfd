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

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use sessionlake_keep::holds::{ActiveHold, Hold, actor, hold_path, live_holds};
use sessionlake_keep::lake::{MAX_ATTEMPTS, REMOVED_LEFTOVERS, stored_objects_of};
use sessionlake_keep::live::{live_access_files, live_sessions, superseded_versions};
use sessionlake_keep::plan::{Expiry, Planned, noted, plan, plan_access, plan_quarantine};
use sessionlake_keep::policy::{Action, Policy};
use sessionlake_lake::manifest;
use sessionlake_lake::object_lock::ObjectLockSettings;
use sessionlake_lake::store::LakeStore;
use sessionlake_lake::transaction;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::paths;

use crate::{Cli, Outcome, json_record, open_writer};

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
            policy.sha256(),
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
    let mut lake = open_writer(cli, "hold").await?;
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

/// Runs `shred`: destroys the session's key records (every copy of its original becomes
/// unreadable), removes its rows and every stored version, and rewrites the `access` files
/// that hold its CloudTrail events without them; one commit says so.
pub async fn shred(cli: &Cli, args: &ShredArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason is empty");
    let mut lake = open_writer(cli, "shred").await?;
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
