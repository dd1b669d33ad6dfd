//! Shredding one session now: [`plan`] finds everything of it (live objects, every stored
//! version, its rows in compacted files, its events in `access` files) and refuses a held
//! session; [`apply`] destroys it in one `shred` commit. Its session key records are deleted
//! first, so every copy of its original, wherever it is, becomes unreadable.

use std::collections::BTreeSet;

use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::paths;
use sessionlake_storage::manifest::ChainLink;
use sessionlake_storage::session_keys::file_key_records;

use sessionlake_storage::bail;

use crate::error::{KeepError, KeepErrorKind, KeepResult};
use crate::holds::{ActiveHold, actor, live_holds};
use crate::lake::{Attempt, Lake, stored_objects_of};
use crate::live::{live_sessions, superseded_versions};
use crate::plan::{Planned, noted};

/// What shredding one session removes and rewrites, as planned on the lake as read.
#[derive(Debug, Clone)]
pub struct ShredPlan {
    /// The session.
    pub session: String,
    /// Its live objects of its own.
    live: Vec<ObjectEntry>,
    /// Live compacted files holding its rows: rewritten without them.
    compacted: Vec<ObjectEntry>,
    /// Every stored object of it in the session folders, live or not.
    stored: Vec<ObjectEntry>,
    /// Its replaced versions' objects, as committed.
    superseded: Vec<ObjectEntry>,
    /// The `access` files holding its events: deleted, or rewritten without them.
    pub access: Vec<Planned>,
}

impl ShredPlan {
    /// Returns how many objects of its own go (stored or live, whichever is more).
    pub fn objects(&self) -> usize {
        self.stored.len().max(self.live.len())
    }
}

/// Plans the shred of `session`; fails when a hold covers it or the lake has nothing of it.
pub async fn plan(lake: &Lake, session: &str) -> KeepResult<ShredPlan> {
    let superseded = superseded_versions(&lake.history, &lake.live);
    let sessions = live_sessions(&lake.store, &lake.live, &superseded).await?;
    let holds = live_holds(&lake.store, &lake.live).await?;
    let found = sessions.iter().find(|s| s.session_id == session);
    let is_compacted = |entry: &ObjectEntry| paths::is_compacted(&entry.path);
    let live: Vec<ObjectEntry> = lake
        .live
        .values()
        .filter(|entry| {
            entry.sessions == [session] && entry.kind != ObjectKind::Hold && !is_compacted(entry)
        })
        .cloned()
        .collect();
    let compacted: Vec<ObjectEntry> = lake
        .live
        .values()
        .filter(|entry| is_compacted(entry) && entry.sessions.iter().any(|id| id == session))
        .cloned()
        .collect();
    let subject = found.map(|s| s.subject.clone()).unwrap_or_default();
    if let Some(ActiveHold { hold, .. }) = holds.iter().find(|held| held.covers(session, &subject))
    {
        bail!(
            KeepErrorKind::Held,
            "{session} is under legal hold {} ({}): release the hold first",
            hold.id,
            hold.reason
        );
    }
    let stored = stored_objects_of(&lake.store, session).await?;
    let access = lake.access_of_session(session).await?;
    if live.is_empty() && stored.is_empty() && access.is_empty() {
        bail!(KeepErrorKind::NotFound, "no session {session} in {}", lake.store.location());
    }
    Ok(ShredPlan {
        session: session.to_string(),
        live,
        compacted,
        stored,
        superseded: superseded.get(session).cloned().unwrap_or_default(),
        access,
    })
}

/// What a shred did.
#[derive(Debug, Clone)]
pub struct Shredded {
    /// The commit.
    pub link: ChainLink,
    /// Objects removed (its own, compacted files and `access` files).
    pub objects: usize,
    /// `access` files rewritten without its events.
    pub access_rewritten: usize,
    /// Compacted files rewritten without its rows.
    pub compacted_rewritten: usize,
}

/// Shreds as `plan` says in one `shred` commit (recording `reason` and who asked) on the head
/// the lake was read at, then deletes what it removed (and every compacted file that ever held
/// the session's rows), calling `deleted` for each object deleted. A lost race discards what
/// was written and returns [`Attempt::Conflict`].
pub async fn apply(
    lake: &mut Lake,
    plan: ShredPlan,
    reason: &str,
    deleted: &(dyn Fn() + Sync),
) -> KeepResult<Attempt<Shredded>> {
    let ShredPlan { session, live, compacted, stored, superseded, access } = plan;
    let reason = format!("shred of {session} by {}: {reason}", actor());
    // Live objects, and stored ones no commit removed yet (replaced versions, leftovers):
    // the commit names everything this shred deletes.
    let mut removed = live;
    for entry in &stored {
        if !removed.iter().any(|known| known.path == entry.path) {
            let committed = superseded.iter().find(|known| known.path == entry.path);
            removed.push(committed.cloned().unwrap_or_else(|| entry.clone()));
        }
    }
    let gone = BTreeSet::from([session]);
    // Its rows leave the compacted files that hold them (rewritten without it), and its
    // events the access files, in the same commit; every compacted file that ever held
    // them is deleted after it.
    let stale = lake.stale_compacted(&gone);
    let due: Vec<&Planned> = access.iter().collect();
    let mut transaction = lake.begin(CommitAction::Shred)?;
    let written = async {
        let added = lake.rewrite_without(&mut transaction, &compacted, &gone).await?;
        let access = lake.write_rewrites(&mut transaction, &due).await?;
        Ok::<_, KeepError>((added, access))
    };
    let written = written.await;
    let (mut added, added_access) = transaction.or_discard(written).await?;
    let files = |entries: &[ObjectEntry]| entries.iter().filter(|e| e.kind.is_table()).count();
    let compacted_rewritten = files(&added);
    let access_rewritten = files(&added_access);
    added.extend(added_access);
    removed.extend(compacted);
    removed.extend(access.iter().flat_map(noted));
    // The removed files' keys go with them: their old copies open no more.
    removed.extend(file_key_records(&removed, &lake.live));
    let committed = transaction
        .commit(CommitAction::Shred, Some(reason), added.clone(), removed.clone(), false)
        .await;
    let link = match committed {
        Ok(link) => link,
        Err(error) => {
            transaction.discard().await;
            if error.is_conflict() {
                return Ok(Attempt::Conflict(error));
            }
            return Err(error.into());
        }
    };
    lake.committed(link.clone());
    lake.sync_delta().await;
    lake.delete(stale, deleted).await?;
    let objects = removed.len();
    lake.delete(removed, deleted).await?;
    Ok(Attempt::Done(Shredded { link, objects, access_rewritten, compacted_rewritten }))
}
