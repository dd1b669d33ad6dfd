//! Legal holds (`holds/<id>.json`): a hold on a session, a principal or a target keeps what it
//! covers whatever the policy says; retention and shred never touch it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::paths;
use sessionlake_storage::manifest::ChainLink;
use sessionlake_storage::store::LakeStore;

use sessionlake_storage::{bail, ensure};

use crate::error::{Context as _, ErrorKind as _, KeepErrorKind, KeepResult};
use crate::lake::Lake;
use crate::policy::{Glob, Subject};

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
pub struct ActiveHold {
    /// The hold as stored.
    pub hold: Hold,
    principal: Option<Glob>,
    target: Option<Glob>,
}

impl ActiveHold {
    /// Compiles the hold's patterns; an error names the bad one.
    pub fn new(hold: Hold) -> KeepResult<ActiveHold> {
        let glob = |pattern: &Option<String>| pattern.as_deref().map(Glob::new).transpose();
        let (principal, target) = (glob(&hold.principal)?, glob(&hold.target)?);
        Ok(ActiveHold { hold, principal, target })
    }

    /// Returns whether the hold covers `session`, whose rows are about `subject`.
    pub fn covers(&self, session: &str, subject: &Subject) -> bool {
        let matches = |glob: &Option<Glob>, value: &Option<String>| {
            glob.as_ref().is_some_and(|glob| glob.matches(value.as_deref()))
        };
        self.hold.session.as_deref() == Some(session)
            || matches(&self.principal, &subject.principal)
            || matches(&self.target, &subject.target)
    }
}

impl Hold {
    /// Returns a new hold on `session`, `principal` or `target` placed now by [`actor`], with
    /// a fresh id; fails when `reason` is empty or a pattern is bad.
    pub fn new(
        reason: &str,
        session: Option<String>,
        principal: Option<String>,
        target: Option<String>,
    ) -> KeepResult<Hold> {
        ensure!(!reason.trim().is_empty(), KeepErrorKind::Invalid, "--reason is empty");
        let now = chrono::Utc::now();
        let seed = format!(
            "{}{:?}",
            now.timestamp_nanos_opt().unwrap_or_default(),
            (&session, &principal, &target, reason)
        );
        let id = format!("hold-{}", &sessionlake_storage::store::sha256_hex(seed.as_bytes())[..12]);
        let hold = Hold {
            id,
            created_at: now.to_rfc3339(),
            created_by: actor(),
            reason: reason.to_string(),
            session,
            principal,
            target,
        };
        ActiveHold::new(hold.clone())?;
        Ok(hold)
    }

    /// Returns what the hold covers, in words (`session …`, `principal …`, `target …`).
    pub fn scope(&self) -> String {
        match (&self.session, &self.principal, &self.target) {
            (Some(session), _, _) => format!("session {session}"),
            (_, Some(principal), _) => format!("principal {principal}"),
            (_, _, Some(target)) => format!("target {target}"),
            _ => "nothing".to_string(),
        }
    }
}

/// Returns the path of hold `id` in the lake.
pub fn hold_path(id: &str) -> String {
    format!("{}/{id}.json", paths::HOLDS_DIR)
}

/// Reads the holds in force: every live `holds/` object (each checked against its commit).
pub async fn live_holds(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> KeepResult<Vec<ActiveHold>> {
    let mut holds = Vec::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Hold) {
        let bytes = store.get_committed(entry).await?;
        let object = || store.describe(&entry.path);
        let hold: Hold = serde_json::from_slice(&bytes)
            .with_context_kind(KeepErrorKind::Format, || {
                format!("{} is not a legal hold", object())
            })?;
        holds.push(ActiveHold::new(hold).with_context_kind(KeepErrorKind::Format, || {
            format!("{} has a bad pattern", object())
        })?);
    }
    Ok(holds)
}

/// Returns who is acting, for commits and holds: `$USER@host`.
pub fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    format!("{user}@{}", sessionlake_storage::lease::host_name())
}

/// Places `hold` in one `hold` commit on the newest manifest (tried again on a new head after a
/// lost race); returns the commit.
pub async fn place(lake: &mut Lake, hold: &Hold) -> KeepResult<ChainLink> {
    // Before anything is written: a hold's file would otherwise stay uncommitted.
    lake.ensure_head_trusted()?;
    let json =
        serde_json::to_vec_pretty(hold).map_err(|error| KeepErrorKind::Format.passing(error))?;
    let mut transaction = lake.begin(CommitAction::Hold)?;
    let stored = transaction.put_new(&hold_path(&hold.id), bytes::Bytes::from(json)).await;
    let stored = transaction.or_discard(stored).await?;
    let entry = stored.into_entry(ObjectKind::Hold, hold.session.clone().into_iter().collect());
    let reason =
        format!("hold {} on {} by {}: {}", hold.id, hold.scope(), hold.created_by, hold.reason);
    lake.commit_hold(&mut transaction, Some(reason), vec![entry], vec![]).await
}

/// Releases hold `id` in one `hold` commit recording `reason` and who asked, then deletes its
/// file (calling `deleted`); the commits that placed and released it stay in the chain.
pub async fn release(
    lake: &mut Lake,
    id: &str,
    reason: &str,
    deleted: &(dyn Fn() + Sync),
) -> KeepResult<ChainLink> {
    lake.ensure_head_trusted()?;
    ensure!(!reason.trim().is_empty(), KeepErrorKind::Invalid, "--reason is empty");
    let path = hold_path(id);
    let Some(entry) = lake.live.get(&path).filter(|entry| entry.kind == ObjectKind::Hold).cloned()
    else {
        bail!(KeepErrorKind::NotFound, "no hold {id} in force in {}", lake.store.location());
    };
    let reason = format!("release of hold {id} by {}: {reason}", actor());
    let mut transaction = lake.begin(CommitAction::Hold)?;
    let removed = vec![entry.clone()];
    let link = lake.commit_hold(&mut transaction, Some(reason), vec![], removed).await?;
    lake.delete(vec![entry], deleted).await?;
    Ok(link)
}
