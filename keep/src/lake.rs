//! The one-shot lake writer of retention, holds, shred and compaction: [`Lake`] reads the
//! trusted chain, begins transactions on its head, rewrites compacted and `access` files
//! without what goes, and sweeps what an interrupted run left.

use std::collections::{BTreeMap, BTreeSet};

use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind, SessionKeyRecord};
use sessionlake_schemas::{SessionSource, paths};
use sessionlake_storage::history::History;
use sessionlake_storage::keys::{KeyProvider, Keys, LocalKeyring};
use sessionlake_storage::manifest::{self, ChainLink, Committer};
use sessionlake_storage::session_keys::PROVIDER_SESSION;
use sessionlake_storage::signing::ManifestSigner;
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::transaction::{self, Leftovers, Transaction};
use sessionlake_storage::trust::{PinnedSigner, Snapshot};
use sessionlake_storage::{LakeError, LakeErrorKind};
use sessionlake_tables::merge::{Compacted, LakeFiles, MergedTable, Writer, write_access_file};
use sessionlake_tables::parquet_io;

use sessionlake_storage::bail;

use crate::error::{Context as _, ErrorKind as _, KeepError, KeepErrorKind, KeepResult};
use crate::live::{AccessEvent, live_access_files};
use crate::plan::{Expiry, Planned};

/// Times a commit is tried when another writer commits first.
pub const MAX_ATTEMPTS: usize = 5;

/// How one attempt at a commit ended, when another writer may commit first.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Committed.
    Done(T),
    /// Another writer committed first: nothing changed (what was written is discarded). Read
    /// the lake again ([`Lake::reload`]) and plan again, or give up with the error.
    Conflict(LakeError),
}

/// What a writer job opens a lake with; the CLI builds it from its flags.
pub struct LakeParts {
    /// The lake's store.
    pub store: LakeStore,
    /// The key providers that open its files.
    pub keys: Keys,
    /// The local keyring, when there is one: it wraps new data keys unless a KMS key does.
    pub keyring: Option<std::sync::Arc<LocalKeyring>>,
    /// Signs the commits.
    pub signer: Box<dyn ManifestSigner>,
    /// The signers whose manifests are trusted.
    pub pinned: Vec<PinnedSigner>,
    /// The command, for messages (`retention apply`, `shred`, `compact`…).
    pub command: &'static str,
    /// Says one thing the job goes on despite: what the chain's snapshot left out (when the
    /// chain turns untrusted), Delta logs not brought up to date.
    pub warn: fn(&str),
}

/// A lake opened by a one-shot writer job (retention, hold, shred, compact): its live set, what
/// it needs of its chain's past ([`History`]: not the manifests, as large as the live set at
/// 10 M commands), the keys that open files, and the signer of its commits.
pub struct Lake {
    /// The lake's store.
    pub store: LakeStore,
    /// The key providers that open its files.
    pub keys: Keys,
    /// The local keyring, when there is one: it wraps new data keys unless a KMS key does.
    keyring: Option<std::sync::Arc<sessionlake_storage::keys::LocalKeyring>>,
    /// Signs the commits: the keyring's key, or the KMS key of `--signing-key`.
    committer: Committer,
    /// The signers it trusts.
    pinned: Vec<PinnedSigner>,
    /// The command, for messages.
    command: &'static str,
    /// Says what the job goes on despite.
    warn: fn(&str),
    /// What the writer needs of the trusted chain besides its live set (not the manifests).
    pub history: History,
    /// The live set of the trusted chain.
    pub live: BTreeMap<String, ObjectEntry>,
    /// The sequence of the newest manifest file: commits go right after it.
    file_head: Option<u64>,
    /// Why the chain is not wholly trusted, if it is not.
    untrusted: Option<String>,
    /// Why the newest manifest may not be committed after, if it may not.
    head_untrusted: Option<String>,
}

impl Lake {
    /// Opens the lake from `parts` and reads its trusted chain: commits are signed by
    /// `parts.signer`, and only manifests `parts.pinned` signed are trusted.
    pub async fn open(parts: LakeParts) -> KeepResult<Lake> {
        let LakeParts { store, keys, keyring, signer, pinned, command, warn } = parts;
        let mut lake = Lake {
            store,
            keys,
            keyring,
            committer: Committer::new(std::sync::Arc::from(signer)),
            pinned,
            command,
            warn,
            history: History::default(),
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
    pub fn ensure_trusted(&self) -> KeepResult<()> {
        match &self.untrusted {
            Some(why) => Err(KeepErrorKind::Integrity.message(why.clone())),
            None => Ok(()),
        }
    }

    /// Fails when the newest manifest is not trusted: a commit would link to it.
    pub fn ensure_head_trusted(&self) -> KeepResult<()> {
        match &self.head_untrusted {
            Some(why) => Err(KeepErrorKind::Integrity.message(why.clone())),
            None => Ok(()),
        }
    }

    /// Returns the signer of this lake's commits.
    pub fn signer(&self) -> &dyn ManifestSigner {
        self.committer.signer()
    }

    /// The keyring as the provider of new data keys; an error names the missing keyring.
    pub fn keyring_provider(&self) -> KeepResult<std::sync::Arc<dyn KeyProvider>> {
        match &self.keyring {
            Some(keyring) => Ok(keyring.clone()),
            None => bail!(
                KeepErrorKind::Invalid,
                "new data keys are wrapped by the keyring or a KMS key, and there is no keyring: \
                 give --keyring or a KMS key"
            ),
        }
    }

    /// Rewrites each compacted file of `files` without the sessions of `gone` (each file under
    /// a fresh data key, its file key from the provider that wrapped its current one), staged
    /// in `transaction`; returns the new files' entries and their key records' (a file left
    /// with no row has none).
    pub async fn rewrite_without(
        &self,
        transaction: &mut Transaction,
        files: &[ObjectEntry],
        gone: &BTreeSet<String>,
    ) -> KeepResult<Vec<ObjectEntry>> {
        let mut unique: BTreeMap<&str, &ObjectEntry> = BTreeMap::new();
        for entry in files {
            unique.insert(&entry.path, entry);
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let lake_id = manifest::committed_lake_id(&self.store, &self.live).await?;
        let lake_id = lake_id.unwrap_or_default();
        let mut written: Vec<ObjectEntry> = Vec::new();
        for entry in unique.into_values() {
            let rewritten = self.rewrite_one(entry, gone, &lake_id).await?;
            for new in rewritten.into_iter().flat_map(Compacted::entries) {
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
    ) -> KeepResult<Option<Compacted>> {
        let (Some(table), true, Some(dt)) = (
            MergedTable::of(entry.kind),
            paths::is_compacted(&entry.path),
            paths::dt_of(&entry.path),
        ) else {
            bail!(
                KeepErrorKind::Format,
                "{} is not a compacted commands or sessions file",
                entry.path
            );
        };
        let without: BTreeSet<String> =
            entry.sessions.iter().filter(|id| gone.contains(*id)).cloned().collect();
        let provider = self.provider_like(entry.key.as_deref()).await?;
        let files = LakeFiles {
            store: &self.store,
            keys: &self.keys,
            provider: provider.as_ref(),
            lake_id,
            // Shred and retention take no writer lease (see `UNLEASED_GRACE`).
            writer: Writer::Unleased,
        };
        let rewritten = files.write_compacted(table, dt, std::slice::from_ref(entry), &without);
        rewritten
            .await
            .with_context_kind(KeepErrorKind::Lake, || format!("failed to rewrite {}", entry.path))
    }

    /// Returns the provider to wrap a new data key (or file key) with: the one that wrapped
    /// `current` (the same KMS key; for a key wrapped under a file key, the one that wrapped
    /// the file key's committed record), else the keyring.
    pub async fn provider_like(
        &self,
        current: Option<&WrappedKey>,
    ) -> KeepResult<std::sync::Arc<dyn KeyProvider>> {
        let record;
        let current = match current {
            Some(wrapped)
                if wrapped.provider == PROVIDER_SESSION
                    && paths::is_file_key_record(&wrapped.key_id) =>
            {
                let entry = self.live.get(&wrapped.key_id).with_context_kind(
                    KeepErrorKind::Integrity,
                    || {
                        format!(
                            "the file key {} is not committed by the trusted chain",
                            wrapped.key_id
                        )
                    },
                )?;
                let bytes = self.store.get_committed(entry).await?;
                record = serde_json::from_slice::<SessionKeyRecord>(&bytes)
                    .with_context_kind(KeepErrorKind::Format, || {
                        format!("{} is not a file key record", entry.path)
                    })?;
                Some(&record.key)
            }
            other => other,
        };
        match current {
            Some(wrapped) if wrapped.provider == sessionlake_storage::keys::PROVIDER_KMS => {
                Ok(std::sync::Arc::new(self.keys.kms_provider(&wrapped.key_id)?))
            }
            _ => self.keyring_provider(),
        }
    }

    /// Returns the compacted files that once held any of `sessions` and are no longer live,
    /// as committed, with their key records: a shred or an expiry deletes them too (whatever
    /// an earlier delete left stored: a file whose key is not under a file key, as compacted
    /// files were written before file keys, opens until it is deleted).
    pub fn stale_compacted(&self, sessions: &BTreeSet<String>) -> Vec<ObjectEntry> {
        let added = self.history.compacted();
        let mut stale: BTreeMap<&str, &ObjectEntry> = added
            .iter()
            .filter(|(path, entry)| {
                paths::is_compacted(path)
                    && !self.live.contains_key(*path)
                    && entry.sessions.iter().any(|id| sessions.contains(id))
            })
            .map(|(path, entry)| (path.as_str(), entry))
            .collect();
        let records: BTreeSet<&str> = stale
            .values()
            .filter_map(|entry| entry.key.as_ref())
            .map(|wrapped| wrapped.key_id.as_str())
            .filter(|path| paths::is_file_key_record(path) && !self.live.contains_key(*path))
            .collect();
        for path in records {
            if let Some((path, entry)) = added.get_key_value(path) {
                stale.insert(path, entry);
            }
        }
        stale.into_values().cloned().collect()
    }

    /// Reads the chain again: its history, its live set, and the head commits go after.
    /// What is not trusted is said on stderr (once) and makes [`Lake::ensure_trusted`] fail.
    pub async fn reload(&mut self) -> KeepResult<()> {
        let (snapshot, history) = Snapshot::open_with_history(&self.store, &self.pinned).await?;
        let untrusted = snapshot.ensure_trusted(self.command).err().map(|error| error.to_string());
        if untrusted.is_some() && self.untrusted.is_none() {
            for line in snapshot.ignored() {
                (self.warn)(&line);
            }
        }
        self.untrusted = untrusted;
        self.head_untrusted =
            snapshot.ensure_head_trusted(self.command).err().map(|error| error.to_string());
        self.file_head = snapshot.file_head();
        // The manifests went as they were read: only what the writer asks of the past stays.
        self.live = snapshot.into_live();
        self.history = history;
        Ok(())
    }

    /// Takes `link`, this job's commit on the newest manifest it knew, into the chain and the
    /// live set, as reading the chain again would.
    pub fn committed(&mut self, link: ChainLink) {
        manifest::apply_links(&mut self.live, std::iter::once(&link));
        self.file_head = Some(link.manifest.body.sequence);
        self.history.push(link);
    }

    /// Brings the tables' Delta logs to the live set of the newest trusted commit. A failure is
    /// a warning (`warn`), not an error: the chain is the truth, `verify` names a log that lags,
    /// and the next commit catches up.
    pub async fn sync_delta(&self) {
        let Some(head) = self.history.head() else { return };
        let sequence = head.manifest.body.sequence;
        if let Err(error) = sessionlake_delta::sync(&self.store, &self.live, sequence).await {
            (self.warn)(&format!("the tables' Delta logs were not brought up to date: {error}"));
            return;
        }
        // Another writer (ingest) may have committed and synced while this sync ran.
        let again = sessionlake_delta::sync_again_if_raced(
            &self.store,
            &self.pinned,
            sequence,
            self.command,
        )
        .await;
        if let Err(error) = again {
            (self.warn)(&format!("the tables' Delta logs were not brought up to date: {error}"));
        }
    }

    /// Begins a change of the lake as read, committed on its newest manifest: only on a trusted
    /// newest manifest, and for what deletes or rewrites (retention, shred, compaction) only on
    /// a wholly trusted chain.
    pub fn begin(&self, action: CommitAction) -> KeepResult<Transaction> {
        if matches!(action, CommitAction::Retention | CommitAction::Shred | CommitAction::Compact) {
            self.ensure_trusted()?;
        }
        self.ensure_head_trusted()?;
        Ok(Transaction::begin(&self.store, &self.committer, self.file_head))
    }

    /// Commits a hold placed or released, which no other change of the lake invalidates, on
    /// the newest manifest: after a lost race the chain is read again and, unless what it
    /// removes is gone meanwhile, the commit tried on the new head. Discards on failure.
    pub async fn commit_hold(
        &mut self,
        transaction: &mut Transaction,
        reason: Option<String>,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
    ) -> KeepResult<ChainLink> {
        let mut attempt = 0;
        let error: KeepError = loop {
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
                        )
                        .into();
                    }
                    transaction.replan_on(self.file_head);
                }
                Err(error) => break error.into(),
            }
        };
        transaction.discard().await;
        Err(error)
    }

    /// Deletes `entries` (committed as removed), session key records first (a crash in
    /// between leaves only ciphertext), calling `deleted` for each object deleted.
    pub async fn delete(
        &self,
        entries: Vec<ObjectEntry>,
        deleted: &(dyn Fn() + Sync),
    ) -> KeepResult<()> {
        self.delete_paths(entries.into_iter().map(|entry| entry.path), deleted).await
    }

    /// Deletes the objects at `paths` (committed as removed), as [`Lake::delete`] does.
    pub async fn delete_paths(
        &self,
        paths: impl IntoIterator<Item = String>,
        deleted: &(dyn Fn() + Sync),
    ) -> KeepResult<()> {
        transaction::delete_removed(&self.store, paths, deleted).await?;
        Ok(())
    }

    /// Deletes the leftovers `leftovers` names of an interrupted writer (see
    /// [`transaction::sweep`]); only on a wholly trusted chain. Returns how many it deleted.
    pub async fn sweep(&self, leftovers: &Leftovers<'_>) -> KeepResult<usize> {
        self.ensure_trusted()?;
        let swept =
            transaction::sweep(&self.store, &self.history, &self.live, self.file_head, leftovers)
                .await?;
        Ok(swept.into_result()?)
    }

    /// Writes `entry` (an `access` file) again with only the events `keep` accepts, as a new
    /// version of the same CloudTrail file's day, under a fresh data key and file key (from the
    /// provider that wrapped the old one: the old file's copies go with its key record).
    /// Returns the new file's entry and its key record's, or nothing when no event is kept (the
    /// file just goes). Not committed.
    pub async fn rewrite_access(
        &self,
        entry: &ObjectEntry,
        keep: impl Fn(&sessionlake_schemas::AccessRecord) -> bool,
    ) -> KeepResult<Vec<ObjectEntry>> {
        let object = self.store.describe(&entry.path);
        let no_key = || format!("{object} names no data key");
        let wrapped = entry.key.clone().with_context_kind(KeepErrorKind::Format, no_key)?;
        let key = self
            .keys
            .decrypt(&wrapped)
            .await
            .with_context_kind(KeepErrorKind::Lake, || format!("failed to open {object}"))?;
        let bytes = self.store.get_committed(entry).await?;
        let file = {
            let (key, object) = (key.clone(), object.clone());
            let read = move || parquet_io::read_access_file(bytes, &object, Some(&key));
            tokio::task::spawn_blocking(read)
                .await
                .context_kind(KeepErrorKind::Lake, "access reader task failed")??
        };
        // When ingest first read the CloudTrail file: the rewrite's name has its own time, so
        // the file's footer carries the first one on (of two disagreeing `StartSession`
        // events, the one read first stands).
        let first_read_at = file
            .first_read_at
            .or_else(|| paths::access_version(&entry.path).and_then(transaction::version_time));
        let kept: Vec<_> = file.records.into_iter().filter(|record| keep(record)).collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let (Some(dt), Some(trail_file_id)) =
            (paths::dt_of(&entry.path), paths::trail_file_id_of(&entry.path))
        else {
            bail!(KeepErrorKind::Format, "{object} is not named like an access file");
        };
        let path = paths::access_object(dt, trail_file_id, &Writer::Unleased.new_version());
        let provider = self.provider_like(Some(&wrapped)).await?;
        // The same binding as the old key's: this lake, this CloudTrail file, role `access`.
        let context = wrapped.context.clone();
        let sessions = entry.sessions.clone();
        let written = write_access_file(
            &self.store,
            provider.as_ref(),
            &path,
            kept,
            context,
            sessions,
            first_read_at,
        );
        let written = written.await;
        Ok(written
            .with_context_kind(KeepErrorKind::Lake, || format!("failed to rewrite {object}"))?
            .into())
    }

    /// Plans the rewrite of every live `access` file that holds events of `session`.
    pub async fn access_of_session(&self, session: &str) -> KeepResult<Vec<Planned>> {
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

    /// Writes the rewritten `access` files the plan asks for. Returns them with their key
    /// records, to be added by the same commit that removes the files they replace.
    pub async fn write_rewrites(
        &self,
        transaction: &mut Transaction,
        due: &[&Planned],
    ) -> KeepResult<Vec<ObjectEntry>> {
        let mut added = Vec::new();
        for line in due {
            let Some(keep) = &line.keep_events else { continue };
            let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
            for entry in &line.remove {
                let rewritten =
                    self.rewrite_access(entry, |record| keep.contains(record.event_id.as_str()));
                for written in rewritten.await? {
                    transaction.stage(written.path.clone());
                    added.push(written);
                }
            }
        }
        Ok(added)
    }
}

/// What an interrupted retention, shred or compaction leaves: objects its commit removed that
/// are still stored.
pub const REMOVED_LEFTOVERS: Leftovers<'static> = Leftovers {
    folders: &[],
    uncommitted: None,
    removed_by: &[CommitAction::Retention, CommitAction::Shred, CommitAction::Compact],
};

/// Lists every stored object of `session` (any source, any version, live or not) in the
/// session folders: shred removes old versions' files too.
pub async fn stored_objects_of(store: &LakeStore, session: &str) -> KeepResult<Vec<ObjectEntry>> {
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
                found.push(ObjectEntry::new(
                    path,
                    size,
                    String::new(),
                    kind,
                    vec![session.to_string()],
                ));
            }
        }
    }
    Ok(found)
}
