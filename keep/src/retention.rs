//! Retention of a whole lake: [`plan_lake`] plans a policy on what a [`Lake`] read, [`apply`]
//! makes the plan's due lines one `retention` commit on the head it was planned from, then
//! deletes what the commit removed.

use std::collections::BTreeSet;

use sessionlake_schemas::manifest::{CommitAction, ObjectEntry};
use sessionlake_storage::manifest::ChainLink;
use sessionlake_storage::session_keys::file_key_records;

use crate::error::{KeepError, KeepResult};
use crate::holds::{actor, live_holds};
use crate::lake::{Attempt, Lake, MAX_ATTEMPTS, REMOVED_LEFTOVERS};
use crate::live::{live_access_files, live_sessions, superseded_versions};
use crate::plan::{Expiry, Planned, noted, plan, plan_access, plan_quarantine};
use crate::policy::{Action, Policy};

/// Plans `policy` on the lake as read, as of `now` (µs): the sessions, then the `access`
/// files, then the quarantined inputs.
pub async fn plan_lake(lake: &Lake, policy: &Policy, now: i64) -> KeepResult<Vec<Planned>> {
    let superseded = superseded_versions(&lake.history, &lake.live);
    let sessions = live_sessions(&lake.store, &lake.live, &superseded).await?;
    let holds = live_holds(&lake.store, &lake.live).await?;
    let mut planned = plan(policy, &sessions, &holds, now);
    let access = live_access_files(&lake.store, &lake.live).await?;
    planned.extend(plan_access(policy, &access, &holds, now));
    planned.extend(plan_quarantine(policy, &lake.history, &lake.live, now));
    Ok(planned)
}

/// What a retention commit records of where its plan came from.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// The policy applied.
    pub policy: &'a Policy,
    /// Its file, as the operator named it.
    pub policy_file: &'a str,
    /// The time ages were judged at, as text.
    pub as_of: &'a str,
}

/// What an applied retention did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The commit.
    pub link: ChainLink,
    /// Files written (rewritten `access` and compacted files).
    pub added: usize,
}

/// Applies the due lines of `planned` (those no hold keeps) in one `retention` commit on the
/// head the lake was read at: rewrites the `access` files that keep some events and the
/// compacted files holding expired sessions, commits, then deletes what the commit removed
/// (and every compacted file that ever held an expired session), calling `deleted` for each
/// object deleted. A lost race discards what was written and returns [`Attempt::Conflict`].
pub async fn apply(
    lake: &mut Lake,
    planned: &[Planned],
    provenance: Provenance<'_>,
    deleted: &(dyn Fn() + Sync),
) -> KeepResult<Attempt<Applied>> {
    let due: Vec<&Planned> = planned.iter().filter(|p| p.held_by.is_none()).collect();
    let mut removed: Vec<ObjectEntry> = due.iter().flat_map(|line| noted(line)).collect();
    let expired: BTreeSet<String> =
        due.iter().filter(|p| p.expires == Expiry::Session).map(|p| p.session_id.clone()).collect();
    let compacted: Vec<ObjectEntry> = due.iter().flat_map(|p| p.rewrite.iter().cloned()).collect();
    let mut transaction = lake.begin(CommitAction::Retention)?;
    let written = async {
        let mut added = lake.write_rewrites(&mut transaction, &due).await?;
        // Compacted files holding expired sessions are rewritten without them in the same
        // commit; the old files (and older ones that held them) are deleted after it.
        added.extend(lake.rewrite_without(&mut transaction, &compacted, &expired).await?);
        Ok::<_, KeepError>(added)
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
    // The removed files' keys go with them: their old copies open no more.
    removed.extend(file_key_records(&removed, &lake.live));
    let stale = lake.stale_compacted(&expired);
    let count = |expiry: Expiry| due.iter().filter(|p| p.expires == expiry).count();
    let reason = format!(
        "retention policy {} (sha256 {}) as of {} by {}: {} sessions expired, {} originals \
         expired, {} access files expired, {} rewritten, {} quarantined inputs expired, {} \
         shredded",
        provenance.policy_file,
        provenance.policy.sha256(),
        provenance.as_of,
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
            lake.committed(link.clone());
            // Delta readers move to the new files before the old ones go.
            lake.sync_delta().await;
            lake.delete(removed, deleted).await?;
            lake.delete(stale, deleted).await?;
            let added = added.iter().filter(|entry| entry.kind.is_table()).count();
            Ok(Attempt::Done(Applied { link, added }))
        }
        Err(error) => {
            transaction.discard().await;
            if error.is_conflict() {
                return Ok(Attempt::Conflict(error));
            }
            Err(error.into())
        }
    }
}

/// What [`apply_due`] did.
#[derive(Debug)]
pub struct AppliedPolicy {
    /// Every line of the last plan (held ones too).
    pub planned: Vec<Planned>,
    /// The commit, when anything was due and the supervisor approved it.
    pub applied: Option<Applied>,
}

/// Whoever runs [`apply_due`]: told what happens, and asked before anything changes. A
/// scheduled job approves everything ([`Unattended`]); the CLI shows the plan and asks.
pub trait Supervisor: Sync {
    /// What its answers fail with; a [`KeepError`] becomes one.
    type Error: From<KeepError>;

    /// `count` objects an interrupted run had removed were deleted.
    fn swept(&self, count: usize) {
        let _ = count;
    }

    /// Whether to apply the due lines of `planned`, the `attempt`th plan (from 1: after another
    /// writer committed first the lake is planned again). Asked only when a line is due.
    fn approve(&self, planned: &[Planned], attempt: usize) -> Result<bool, Self::Error> {
        let _ = (planned, attempt);
        Ok(true)
    }

    /// Another writer committed first: the chain is read and the lake planned again.
    fn replanning(&self) {}

    /// One object was deleted.
    fn deleted(&self) {}
}

/// A scheduled job's [`Supervisor`]: approves every plan, says nothing.
pub struct Unattended;

impl Supervisor for Unattended {
    type Error = KeepError;
}

/// Applies `provenance`'s policy as of `now` (µs): deletes what an interrupted run removed,
/// plans, asks `supervisor` to approve what is due and not held, applies it in one commit,
/// and plans again when another writer committed first (at most [`MAX_ATTEMPTS`] plans).
pub async fn apply_due<S: Supervisor>(
    lake: &mut Lake,
    provenance: Provenance<'_>,
    now: i64,
    supervisor: &S,
) -> Result<AppliedPolicy, S::Error> {
    lake.ensure_trusted()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let swept = lake.sweep(&REMOVED_LEFTOVERS).await?;
        if swept > 0 {
            supervisor.swept(swept);
        }
        let planned = plan_lake(lake, provenance.policy, now).await?;
        if planned.iter().all(|line| line.held_by.is_some())
            || !supervisor.approve(&planned, attempt)?
        {
            return Ok(AppliedPolicy { planned, applied: None });
        }
        match apply(lake, &planned, provenance, &|| supervisor.deleted()).await? {
            Attempt::Done(applied) => {
                return Ok(AppliedPolicy { planned, applied: Some(applied) });
            }
            Attempt::Conflict(_) if attempt < MAX_ATTEMPTS => {
                supervisor.replanning();
                lake.reload().await?;
            }
            Attempt::Conflict(error) => return Err(KeepError::from(error).into()),
        }
    }
}
