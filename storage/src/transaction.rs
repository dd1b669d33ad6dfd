//! The one way a writer changes the lake.
//!
//! Every writer (ingest, compaction, retention, shred, rekey, holds) does the same five things,
//! here and nowhere else:
//!
//! 1. **Stage**: every object it writes for a commit is staged in a [`Transaction`] begun on the
//!    head its plan was computed from (the snapshot's newest manifest file).
//! 2. **Commit on the known head**: [`Transaction::commit`] links the commit right after that
//!    head, or fails with a conflict ([`LakeError::is_conflict`]) when another writer committed
//!    since. A commit whose response was lost but which landed is recognised as this one (the
//!    name holds these very bytes), never as a conflict.
//! 3. **Re-plan after a lost race**: the writer reads the chain again, plans again, and
//!    [`Transaction::replan_on`] the new head; what it staged for the lost plan stays staged.
//! 4. **Discard**: after a commit, whatever was staged and the commit does not name is deleted;
//!    on failure [`Transaction::discard`] deletes everything staged, unless the commit's outcome
//!    is unknown (the manifest may name them): then nothing is deleted, and the sweep settles it.
//! 5. **Sweep**: [`sweep`] deletes what a crashed writer left: objects no commit names, and
//!    objects commits removed but that are still stored. It acts only on a whole, trusted chain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::history::History;
use crate::manifest::{ChainLink, Committer};
use crate::store::{LakeStore, StoredObject};

/// Deletes run at once.
const DELETE_CONCURRENCY: usize = 16;

/// Attempts of a sweep's or discard's list or delete (both idempotent) before it gives up on
/// one: nothing else deletes what they leave.
const ATTEMPTS: u32 = 5;

/// One writer's change to the lake: the objects it staged and the head it commits on.
#[derive(Debug)]
pub struct Transaction {
    store: LakeStore,
    committer: Committer,
    head: Option<u64>,
    staged: BTreeSet<String>,
    /// A commit failed without telling whether it landed: staged objects are kept.
    uncertain: bool,
}

impl Transaction {
    /// Begins a change of `store` planned on the chain whose newest manifest file is `head`
    /// (`None`: an empty lake), committed by `committer`.
    pub fn begin(store: &LakeStore, committer: &Committer, head: Option<u64>) -> Self {
        Transaction {
            store: store.clone(),
            committer: committer.clone(),
            head,
            staged: BTreeSet::new(),
            uncertain: false,
        }
    }

    /// Returns the head the next commit goes right after.
    pub fn head(&self) -> Option<u64> {
        self.head
    }

    /// After a lost race: the change was planned again on the chain up to `head`.
    pub fn replan_on(&mut self, head: Option<u64>) {
        self.head = head;
    }

    /// Stages an object written for this change (by a writer that stores it itself).
    pub fn stage(&mut self, path: impl Into<String>) {
        self.staged.insert(path.into());
    }

    /// Stages the objects of `entries`.
    pub fn stage_entries<'e>(&mut self, entries: impl IntoIterator<Item = &'e ObjectEntry>) {
        self.staged.extend(entries.into_iter().map(|entry| entry.path.clone()));
    }

    /// Stores a new object (never replacing one) and stages it.
    pub async fn put_new(&mut self, path: &str, bytes: Bytes) -> LakeResult<StoredObject> {
        // Staged first: a put that fails after storing the bytes leaves nothing unstaged.
        self.stage(path);
        self.store.put_new(path, bytes).await
    }

    /// Returns the objects staged and not committed yet.
    pub fn staged(&self) -> impl Iterator<Item = &str> {
        self.staged.iter().map(String::as_str)
    }

    /// Commits `added` and `removed` right after [`Transaction::head`], signed by the
    /// committer (`stopping`: the last commit of a writer that stops; see [`Committer`]).
    ///
    /// On success, what was staged and the commit does not name is deleted (best effort,
    /// retried; `verify` names what stays), and the transaction goes on from the new head. On
    /// a conflict ([`LakeError::is_conflict`]) nothing is deleted: the writer plans again.
    pub async fn commit(
        &mut self,
        action: CommitAction,
        reason: Option<String>,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
        stopping: bool,
    ) -> LakeResult<ChainLink> {
        // An unleased writer's object staged longer ago than half its grace may already be a
        // sweep's to delete (a sweep reads the chain, then lists): a commit naming it could
        // name a file that is gone. The writer runs again, under fresh names.
        let now = chrono::Utc::now().timestamp_micros();
        let half_grace = i64::try_from(UNLEASED_GRACE.as_micros() / 2).unwrap_or(i64::MAX);
        if let Some(stale) = added.iter().find(|entry| {
            version_of(&entry.path).as_deref().is_some_and(is_unleased)
                && made_at(&entry.path).is_some_and(|made| now.saturating_sub(made) > half_grace)
        }) {
            return Err(LakeError::new(
                LakeErrorKind::Unavailable,
                format!(
                    "{} was staged more than {} hours ago, so a sweep may delete it: not \
                     committed; run the command again",
                    self.store.describe(&stale.path),
                    UNLEASED_GRACE.as_secs() / 7_200
                ),
            ));
        }
        let committed = self
            .committer
            .commit_on(&self.store, action, reason, added, removed, stopping, self.head)
            .await;
        let link = match committed {
            Ok(link) => link,
            Err(error) => {
                self.uncertain |= error.is_outcome_unknown();
                return Err(error);
            }
        };
        for entry in &link.manifest.body.added {
            self.staged.remove(&entry.path);
        }
        self.discard().await;
        self.head = Some(link.manifest.body.sequence);
        Ok(link)
    }

    /// Returns `result`, after discarding everything staged when it is an error: for the
    /// writes of a change, which go if any of them fails.
    pub async fn or_discard<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.discard().await;
        }
        result
    }

    /// Deletes everything staged (best effort, retried; `verify` names what stays). After a
    /// commit whose outcome is unknown, nothing: the manifest may name them, and the sweep of
    /// the next writer that finds them uncommitted deletes them. Returns how many were deleted.
    pub async fn discard(&mut self) -> usize {
        let staged = std::mem::take(&mut self.staged);
        if self.uncertain {
            if !staged.is_empty() {
                tracing::warn!(
                    objects = staged.len(),
                    "staged objects kept: the commit may have landed; a sweep settles them"
                );
            }
            return 0;
        }
        discard(&self.store, staged.into_iter().collect()).await
    }
}

/// Deletes objects written for a change that will not be committed, before a [`Transaction`]
/// staged them (a session whose later object failed to write): best effort, each delete
/// retried; `verify` names what stays. Returns how many were deleted.
pub async fn discard(store: &LakeStore, paths: Vec<String>) -> usize {
    delete_paths(store, paths, &|| {}).await.deleted
}

/// Deletes the committed objects at `paths` that a commit removed (session key records first,
/// so that a deletion interrupted half-way leaves no readable session), each delete retried;
/// the first failure is the error. `deleted` is called after each delete (a progress line).
pub async fn delete_removed(
    store: &LakeStore,
    paths: impl IntoIterator<Item = String>,
    deleted: &(dyn Fn() + Sync),
) -> LakeResult<usize> {
    delete_paths(store, paths.into_iter().collect(), deleted).await.into_result()
}

/// What a sweep or a discard deleted, and what it could not.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Objects deleted.
    pub deleted: usize,
    /// Why the objects (or folder listings) that failed did, one line each.
    pub failed: Vec<String>,
}

impl Deleted {
    /// Returns how many were deleted, or an error naming the first failure (and how many).
    pub fn into_result(self) -> LakeResult<usize> {
        match self.failed.first() {
            None => Ok(self.deleted),
            Some(first) => Err(LakeError::new(
                LakeErrorKind::Unavailable,
                format!("{first} ({} failures in all)", self.failed.len()),
            )),
        }
    }
}

/// Deletes `paths`, key records (of sessions and of files) first, each delete retried;
/// failures are logged and counted.
async fn delete_paths(store: &LakeStore, paths: Vec<String>, done: &(dyn Fn() + Sync)) -> Deleted {
    let (keys, rest): (Vec<String>, Vec<String>) = paths
        .into_iter()
        .partition(|path| paths::is_session_key_record(path) || paths::is_file_key_record(path));
    let mut outcome = Deleted::default();
    for batch in [keys, rest] {
        let results = futures::stream::iter(batch.iter().map(|path| async move {
            retrying(|| store.delete(path)).await.map_err(|error| (path, error))
        }))
        .buffer_unordered(DELETE_CONCURRENCY)
        .inspect(|_| done())
        .collect::<Vec<_>>()
        .await;
        for result in results {
            match result {
                Ok(()) => outcome.deleted += 1,
                Err((path, error)) => {
                    tracing::warn!(object = %path, %error, "object not deleted");
                    outcome.failed.push(error.to_string());
                }
            }
        }
    }
    outcome
}

/// Runs `call` until it succeeds, fails for good, or has failed [`ATTEMPTS`] times on errors
/// that may pass (a connection reset the store's client does not retry by itself), waiting
/// 100 ms, 200 ms, … between attempts.
async fn retrying<T, F, Fut>(mut call: F) -> LakeResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = LakeResult<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if error.is_retryable() && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 << (attempt - 1))).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// Which leftovers of a crashed writer a [`sweep`] deletes.
#[derive(Debug, Clone, Copy)]
pub struct Leftovers<'a> {
    /// Stored objects in these folders that no commit names (staged by a writer that never
    /// committed them), if `uncommitted` says so.
    pub folders: &'a [&'a str],
    /// Which of those: `None` leaves them.
    pub uncommitted: Option<Uncommitted>,
    /// Stored objects that commits of these actions removed (and that are not live again):
    /// the deletes of a writer interrupted after its commit.
    pub removed_by: &'a [CommitAction],
}

/// The uncommitted objects a sweep deletes.
#[derive(Debug, Clone, Copy)]
pub struct Uncommitted {
    /// Only objects made longer ago than this (by the time in their version name; an object
    /// without one counts as old); `None`: all that a leased writer made (no other leased
    /// writer can be staging them). An unleased writer's objects ([`new_unleased_version`])
    /// stay for [`UNLEASED_GRACE`] whatever this says.
    pub older_than: Option<Duration>,
    /// Only objects whose path this accepts.
    pub only: fn(&str) -> bool,
}

/// Deletes the leftovers `leftovers` names of a crashed writer.
///
/// `history` must be of the whole trusted chain up to `file_head` (the newest manifest file):
/// whether an object is uncommitted is only known from every commit, and a forged or damaged
/// manifest must never make objects look uncommitted. Anything else is an error and nothing is
/// deleted.
pub async fn sweep(
    store: &LakeStore,
    history: &History,
    live: &BTreeMap<String, ObjectEntry>,
    file_head: Option<u64>,
    leftovers: &Leftovers<'_>,
) -> LakeResult<Deleted> {
    if !history.is_whole_up_to(file_head) {
        return Err(LakeError::new(
            LakeErrorKind::Integrity,
            format!(
                "{} was not swept: the sweep needs the whole trusted chain up to the newest \
                 manifest, and it has a gap, an untrusted link or starts from a checkpoint",
                store.location()
            ),
        ));
    }
    let removed: BTreeSet<&str> =
        history.removed_by(leftovers.removed_by).filter(|path| !live.contains_key(*path)).collect();
    let mut folders: BTreeSet<&str> = BTreeSet::new();
    if leftovers.uncommitted.is_some() {
        folders.extend(leftovers.folders.iter().copied());
    }
    folders.extend(removed.iter().filter_map(|path| path.split('/').next()));
    let now = chrono::Utc::now().timestamp_micros();
    let mut outcome = Deleted::default();
    let mut doomed: BTreeSet<String> = BTreeSet::new();
    for folder in folders {
        let listed = match retrying(|| store.list(folder)).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(folder, %error, "leftovers not swept");
                outcome.failed.push(error.to_string());
                continue;
            }
        };
        let uncommitted_here =
            leftovers.uncommitted.filter(|_| leftovers.folders.contains(&folder));
        // A table's Delta log is derived from the chain, never named by it: not a leftover.
        for (path, _) in listed.into_iter().filter(|(path, _)| !paths::is_delta_log(path)) {
            let stale = uncommitted_here.is_some_and(|rule| {
                !history.was_added(&path) && (rule.only)(&path) && old_enough(&path, rule, now)
            });
            if stale || removed.contains(path.as_str()) {
                doomed.insert(path);
            }
        }
    }
    let deleted = delete_paths(store, doomed.into_iter().collect(), &|| {}).await;
    outcome.deleted = deleted.deleted;
    outcome.failed.extend(deleted.failed);
    // A local upload killed mid-way leaves a part file no listing shows.
    if let Some(rule) = leftovers.uncommitted {
        // A manifest or checkpoint whose put was killed leaves a part file too; the part is
        // never the commit (`N.json` is), so it goes whatever the folders swept.
        let commit_folders = [paths::MANIFEST_DIR, paths::CHECKPOINT_DIR];
        for folder in leftovers.folders.iter().chain(&commit_folders) {
            // A walk of the folder with a stat per file: off the async workers.
            let (walker, walked) = (store.clone(), folder.to_string());
            let parts = tokio::task::spawn_blocking(move || walker.upload_parts(&walked))
                .await
                .unwrap_or_default();
            for part in parts {
                let grace = grace_for(&part.object, rule);
                let old = grace.is_none_or(|grace| part.age.is_none_or(|age| age > grace));
                if !old || !(rule.only)(&part.object) || history.was_added(&part.object) {
                    continue;
                }
                match std::fs::remove_file(&part.file) {
                    Ok(()) => outcome.deleted += 1,
                    Err(error) => {
                        tracing::warn!(file = ?part.file, %error, "upload part file not deleted");
                        outcome.failed.push(format!("{}: {error}", part.file.display()));
                    }
                }
            }
        }
    }
    Ok(outcome)
}

fn old_enough(path: &str, rule: Uncommitted, now: i64) -> bool {
    let Some(grace) = grace_for(path, rule) else { return true };
    made_at(path).is_none_or(|made| now.saturating_sub(made) > grace)
}

/// Returns how long (µs) the uncommitted object at `path` must have been made before `rule`
/// deletes it: `rule`'s grace, and never less than [`UNLEASED_GRACE`] for an unleased
/// writer's object. `None`: no wait.
fn grace_for(path: &str, rule: Uncommitted) -> Option<i64> {
    let micros = |grace: Duration| i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let grace = rule.older_than.map(micros);
    if version_of(path).as_deref().is_some_and(is_unleased) {
        return Some(grace.unwrap_or(0).max(micros(UNLEASED_GRACE)));
    }
    grace
}

/// Returns a new version name: the time (µs, hex) and 8 random hex digits. Versions made later
/// sort later (within the same length), and no two writers make the same.
pub fn new_version() -> String {
    let micros = chrono::Utc::now().timestamp_micros();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{micros:x}{}", &random[..8])
}

/// Separates the time of an unleased writer's version from its random digits (see
/// [`new_unleased_version`]); never a hex digit.
const UNLEASED_MARK: char = 'u';

/// How long a sweep leaves an uncommitted object an unleased writer made, whatever it was
/// asked: shred and retention take no writer lease, so no sweep can tell whether the one
/// that made it is still at work (its commit may come later), even after taking over a
/// crashed holder's lease. Longer than any such run is expected to take.
pub const UNLEASED_GRACE: Duration = Duration::from_secs(6 * 60 * 60);

/// Returns a new version name for an object of a writer that holds no writer lease (shred,
/// retention): the time (µs, hex), [`UNLEASED_MARK`] and 7 random hex digits. Sweeps leave
/// such objects for [`UNLEASED_GRACE`] (see [`Uncommitted::older_than`]). Like
/// [`new_version`]'s, the time is all but the last 8 characters, so that a binary from before
/// unleased versions still reads their time (and keeps them for its own grace).
pub fn new_unleased_version() -> String {
    let micros = chrono::Utc::now().timestamp_micros();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{micros:x}{UNLEASED_MARK}{}", &random[..7])
}

/// Whether a writer holds the lake's writer lease, which decides the names it stages objects
/// under, and so how sweeps treat them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Ingest and compaction: a sweep after a crashed holder's lease deletes what they staged.
    Leased,
    /// Shred and retention: what they stage stays for [`UNLEASED_GRACE`].
    Unleased,
}

impl Writer {
    /// Returns a new version name for an object this writer stages.
    pub fn new_version(self) -> String {
        match self {
            Writer::Leased => new_version(),
            Writer::Unleased => new_unleased_version(),
        }
    }
}

/// Returns whether `version` is an unleased writer's ([`new_unleased_version`]).
pub fn is_unleased(version: &str) -> bool {
    let Some((time, suffix)) = version.len().checked_sub(8).map(|at| version.split_at(at)) else {
        return false;
    };
    let hex = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
    hex(time) && suffix.strip_prefix(UNLEASED_MARK).is_some_and(hex)
}

/// Separates the time of a version of a session from the tag of the source object it came
/// from (see [`new_version_of`]); never a hex digit.
const ORIGIN_MARK: char = 'o';

/// Returns a new version name for a session delivered by the source object `origin` (an S3
/// object's `s3://bucket/key`, a CloudWatch stream's `cwl://group/stream`): the time (µs, hex),
/// then [`ORIGIN_MARK`] and 16 hex digits of the SHA-256 of `origin`. A later delivery replaces
/// only versions of the same origin: another object claiming the same session id never hides
/// it (see [`origin_tag`]).
pub fn new_version_of(origin: &str) -> String {
    let micros = chrono::Utc::now().timestamp_micros();
    format!("{micros:x}{ORIGIN_MARK}{}", tag_of(origin))
}

/// Returns the origin tag [`new_version_of`] gives versions from the source object `origin`
/// (16 hex digits of its SHA-256): also the tag of a version written before versions carried
/// one, once its `source_ref` is read from its `sessions` file.
pub fn tag_of(origin: &str) -> String {
    let mut tag = crate::store::sha256_hex(origin.as_bytes());
    tag.truncate(16);
    tag
}

/// Returns the origin tag of a version from [`new_version_of`]; `None` for other versions
/// (made by [`new_version`], or before versions carried their origin).
pub fn origin_tag(version: &str) -> Option<&str> {
    version.split_once(ORIGIN_MARK).map(|(_, tag)| tag)
}

/// Returns the time (µs) a version name from [`new_version`], [`new_unleased_version`] or
/// [`new_version_of`] was made, if it is one.
pub fn version_time(version: &str) -> Option<i64> {
    let digits = match version.split_once(ORIGIN_MARK) {
        Some((time, _)) => time,
        // The last 8 characters: random hex digits, or the unleased mark and 7 of them.
        None => version.get(..version.len().checked_sub(8)?)?,
    };
    i64::from_str_radix(digits, 16).ok()
}

/// Returns the version in the name of the object at `path`, if it has one (a file key
/// record: its file's).
fn version_of(path: &str) -> Option<String> {
    if let Some(file) = paths::file_of_key_record(path) {
        return version_of(&file);
    }
    let version = paths::compacted_version(path)
        .or_else(|| paths::session_version(path).map(|(_, _, version)| version))
        .or_else(|| paths::access_version(path))?;
    Some(version.to_string())
}

/// Returns when the object at `path` was made, from the version in its name, if it has one
/// (a file key record: its file's).
fn made_at(path: &str) -> Option<i64> {
    version_of(path).as_deref().and_then(version_time)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use object_store::ObjectStore;
    use sessionlake_schemas::manifest::ObjectKind;

    use super::*;
    use crate::keys::LocalKeyring;
    use crate::signing::KeyringSigner;
    use crate::store::LakeLocation;
    use crate::test_store::Flaky;
    use crate::trust::{PinnedSigner, Snapshot};

    struct Fixture {
        _dir: tempfile::TempDir,
        flaky: Arc<Flaky>,
        store: LakeStore,
        committer: Committer,
        pinned: Vec<PinnedSigner>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let keyring = Arc::new(keyring);
        let flaky = Arc::new(Flaky::default());
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::clone(&flaky) as Arc<dyn ObjectStore>,
        );
        let pinned = vec![PinnedSigner::of(&keyring.signer(), "the keyring")];
        let committer = Committer::new(Arc::new(KeyringSigner(keyring)));
        Fixture { _dir: dir, flaky, store, committer, pinned }
    }

    /// Stores `path` in `transaction` and returns its entry.
    async fn staged(transaction: &mut Transaction, path: &str) -> ObjectEntry {
        let stored = transaction.put_new(path, Bytes::from_static(b"rows")).await.expect("put");
        ObjectEntry::new(
            stored.path,
            stored.size,
            stored.sha256,
            ObjectKind::Commands,
            vec!["s".into()],
        )
    }

    async fn stored(store: &LakeStore, folder: &str) -> Vec<String> {
        store.list(folder).await.expect("list").into_iter().map(|(path, _)| path).collect()
    }

    #[test]
    fn test_versions_tell_their_time_and_origin() {
        let plain = new_version();
        let tagged = new_version_of("s3://logs/ssm/kate-0123456789abcdef0.log");
        let other = new_version_of("s3://logs/ssm/zz-other/kate-0123456789abcdef0.log");
        let now = chrono::Utc::now().timestamp_micros();
        for version in [&plain, &tagged] {
            let made = version_time(version).expect("time");
            assert!((now - made).abs() < 60_000_000, "{version}");
            assert!(version.bytes().all(|b| b.is_ascii_alphanumeric()), "{version}");
        }
        assert_eq!(origin_tag(&plain), None);
        assert_eq!(origin_tag(&tagged).map(str::len), Some(16));
        assert_ne!(origin_tag(&tagged), origin_tag(&other));
    }

    #[tokio::test]
    async fn test_a_commit_keeps_what_it_names_and_deletes_the_rest_it_staged() {
        let lake = fixture();
        let mut transaction = Transaction::begin(&lake.store, &lake.committer, None);
        let kept = staged(&mut transaction, "commands/a.parquet").await;
        staged(&mut transaction, "commands/b.parquet").await;
        let link = transaction
            .commit(CommitAction::Ingest, None, vec![kept], vec![], false)
            .await
            .expect("commit");
        assert_eq!(stored(&lake.store, "commands").await, ["commands/a.parquet"]);
        assert_eq!(transaction.head(), Some(link.manifest.body.sequence));
        assert_eq!(transaction.staged().count(), 0);
    }

    #[tokio::test]
    async fn test_a_lost_race_keeps_what_was_staged_until_planned_again() {
        let lake = fixture();
        let mut first = Transaction::begin(&lake.store, &lake.committer, None);
        first.commit(CommitAction::Idle, None, vec![], vec![], false).await.expect("commit 0");
        let mut late = Transaction::begin(&lake.store, &lake.committer, None);
        let entry = staged(&mut late, "commands/a.parquet").await;
        let error = late
            .commit(CommitAction::Ingest, None, vec![entry.clone()], vec![], false)
            .await
            .expect_err("the head moved");
        assert!(error.is_conflict(), "{error}");
        assert_eq!(stored(&lake.store, "commands").await, ["commands/a.parquet"]);
        late.replan_on(Some(0));
        let link = late
            .commit(CommitAction::Ingest, None, vec![entry], vec![], false)
            .await
            .expect("planned again");
        assert_eq!(link.manifest.body.sequence, 1);
        assert_eq!(stored(&lake.store, "commands").await, ["commands/a.parquet"]);

        let mut failed = Transaction::begin(&lake.store, &lake.committer, Some(0));
        staged(&mut failed, "commands/b.parquet").await;
        assert_eq!(failed.discard().await, 1);
        assert_eq!(stored(&lake.store, "commands").await, ["commands/a.parquet"]);
    }

    /// A put whose response is lost but which landed is this commit, not a conflict; when the
    /// name cannot be read back either, the outcome is unknown and nothing staged is deleted.
    #[tokio::test]
    async fn test_a_commit_whose_response_was_lost_is_recognised_or_left_alone() {
        let lake = fixture();
        lake.flaky.lose_manifest_response.store(true, Ordering::SeqCst);
        let mut transaction = Transaction::begin(&lake.store, &lake.committer, None);
        let entry = staged(&mut transaction, "commands/a.parquet").await;
        let link = transaction
            .commit(CommitAction::Ingest, None, vec![entry], vec![], false)
            .await
            .expect("the landed put is this commit");
        assert_eq!(link.manifest.body.sequence, 0);
        let chain = crate::manifest::read_chain(&lake.store).await.expect("chain");
        assert_eq!(chain[0].sha256, link.sha256);

        let mut unknown = Transaction::begin(&lake.store, &lake.committer, Some(0));
        let entry = staged(&mut unknown, "commands/b.parquet").await;
        lake.flaky.then_fail_manifest_reads.store(true, Ordering::SeqCst);
        let error = unknown
            .commit(CommitAction::Ingest, None, vec![entry], vec![], false)
            .await
            .expect_err("cannot tell");
        lake.flaky.failing_manifest_reads.store(false, Ordering::SeqCst);
        assert!(error.is_outcome_unknown() && !error.is_conflict(), "{error}");
        assert_eq!(unknown.discard().await, 0, "the manifest may name it");
        let chain = crate::manifest::read_chain(&lake.store).await.expect("chain");
        assert_eq!(chain.len(), 2, "it did land");
        assert_eq!(
            stored(&lake.store, "commands").await,
            ["commands/a.parquet", "commands/b.parquet"]
        );
    }

    #[tokio::test]
    async fn test_the_sweep_deletes_leftovers_only_on_the_whole_trusted_chain() {
        let lake = fixture();
        let mut writer = Transaction::begin(&lake.store, &lake.committer, None);
        let compacted = staged(&mut writer, "commands/dt=2026-03-14/compact-1.parquet").await;
        let replaced = staged(&mut writer, "raw/dt=2026-03-14/s.local.1.zst.sle").await;
        writer
            .commit(
                CommitAction::Ingest,
                None,
                vec![compacted.clone(), replaced.clone()],
                vec![],
                false,
            )
            .await
            .expect("commit 0");
        let newer = staged(&mut writer, "raw/dt=2026-03-14/s.local.2.zst.sle").await;
        writer
            .commit(CommitAction::Ingest, None, vec![newer], vec![replaced], false)
            .await
            .expect("commit 1");
        writer
            .commit(CommitAction::Retention, None, vec![], vec![compacted], false)
            .await
            .expect("commit 2");
        // A crashed writer's objects: an uncommitted compacted file made now, one made long
        // ago, and a per-session file.
        let young = format!("commands/dt=2026-03-14/compact-{}.parquet", new_version());
        let old = "commands/dt=2026-03-14/compact-1000aaaaaaaa.parquet";
        let other = "commands/dt=2026-03-14/t.local.1.parquet";
        // And the key records of a young and an old file: a record is as old as its file.
        let young_key = paths::file_key_object(&young).expect("a file key");
        let old_key = paths::file_key_object(old).expect("a file key");
        let young_access = format!("access/dt=2026-03-14/0a1b.{}.parquet", new_version());
        let young_access_key = paths::file_key_object(&young_access).expect("a file key");
        for path in [young.as_str(), old, other, &young_key, &old_key, &young_access_key] {
            lake.store.put_new(path, Bytes::from_static(b"x")).await.expect("put");
        }
        let leftovers = Leftovers {
            folders: &[paths::COMMANDS_DIR, paths::FILE_KEYS_DIR],
            uncommitted: Some(Uncommitted {
                older_than: Some(Duration::from_secs(900)),
                only: |path| paths::is_compacted(path) || paths::is_file_key_record(path),
            }),
            removed_by: &[CommitAction::Retention],
        };
        let snapshot = Snapshot::open(&lake.store, &lake.pinned).await.expect("open");
        let (chain, live) = snapshot.into_parts();
        // A chain that stops short of the newest manifest file (untrusted, or read from a
        // checkpoint) makes nothing look uncommitted.
        let short = sweep(&lake.store, &History::of(&chain[1..]), &live, Some(2), &leftovers).await;
        assert!(short.is_err());
        let gap = sweep(&lake.store, &History::of(&chain), &live, Some(3), &leftovers).await;
        assert!(gap.is_err());

        let swept = sweep(&lake.store, &History::of(&chain), &live, Some(2), &leftovers)
            .await
            .expect("sweep");
        assert_eq!(swept.deleted, 3, "{swept:?}");
        assert!(swept.failed.is_empty());
        let mut left = stored(&lake.store, "commands").await;
        left.sort();
        assert_eq!(left, [young, other.to_string()], "the young file and the per-session one stay");
        let mut keys = stored(&lake.store, paths::FILE_KEYS_DIR).await;
        keys.sort();
        let mut young_keys = [young_access_key, young_key];
        young_keys.sort();
        assert_eq!(keys, young_keys, "the young files' keys stay");
        // The version a commit replaced is not a leftover of an ingest (its removals are kept).
        assert_eq!(stored(&lake.store, "raw").await.len(), 2);
    }

    #[tokio::test]
    async fn test_an_unleased_object_staged_longer_than_half_its_grace_is_not_committed() {
        let lake = fixture();
        let mut writer = Transaction::begin(&lake.store, &lake.committer, None);
        let half = i64::try_from(UNLEASED_GRACE.as_micros() / 2).expect("µs");
        let long_ago = chrono::Utc::now().timestamp_micros() - half - 60_000_000;
        let stale = staged(
            &mut writer,
            &format!("commands/dt=2026-03-14/compact-{long_ago:x}u0a1b2c3.parquet"),
        )
        .await;
        let error = writer
            .commit(CommitAction::Shred, None, vec![stale], vec![], false)
            .await
            .expect_err("too old to commit");
        assert!(error.to_string().contains("run the command again"), "{error}");
        assert!(crate::manifest::read_chain(&lake.store).await.expect("chain").is_empty());
        // Staged just now, it commits.
        let young = format!("commands/dt=2026-03-14/compact-{}.parquet", new_unleased_version());
        let young = staged(&mut writer, &young).await;
        writer.commit(CommitAction::Shred, None, vec![young], vec![], false).await.expect("commit");
    }

    #[tokio::test]
    async fn test_a_sweep_after_a_crash_leaves_what_an_unleased_writer_staged_for_its_grace() {
        let lake = fixture();
        let mut writer = Transaction::begin(&lake.store, &lake.committer, None);
        let live = staged(&mut writer, "commands/dt=2026-03-14/compact-1.parquet").await;
        writer.commit(CommitAction::Ingest, None, vec![live], vec![], false).await.expect("commit");
        // A crashed ingest's staged file, and what a shred or retention running beside it has
        // staged and not committed yet: a compacted file with its key record, an access file.
        let crashed = format!("commands/dt=2026-03-14/compact-{}.parquet", new_version());
        let unleased = Writer::Unleased.new_version();
        assert!(is_unleased(&unleased) && !is_unleased(&new_version()), "{unleased}");
        let rewrite = format!("commands/dt=2026-03-14/compact-{unleased}.parquet");
        let rewrite_key = paths::file_key_object(&rewrite).expect("a file key");
        let access =
            format!("access/dt=2026-03-14/0a1b.{}.parquet", Writer::Unleased.new_version());
        // An unleased writer's leftover older than the grace: nobody is at work on it.
        let long_ago = chrono::Utc::now().timestamp_micros()
            - i64::try_from(UNLEASED_GRACE.as_micros()).expect("µs")
            - 60_000_000;
        let stale = format!("commands/dt=2026-03-14/compact-{long_ago:x}u0a1b2c3.parquet");
        assert_eq!(version_time(&format!("{long_ago:x}u0a1b2c3")), Some(long_ago));
        // A binary from before unleased versions took the time as all but the last 8
        // characters: it still finds it.
        let before = |version: &str| i64::from_str_radix(&version[..version.len() - 8], 16).ok();
        let made = chrono::Utc::now().timestamp_micros();
        assert!(before(&unleased).is_some_and(|time| (made - time).abs() < 60_000_000));
        assert!(
            !is_unleased("u0a1b2c3") && !is_unleased("1234u0a1b2c") && !is_unleased("12u0a1b2cx")
        );
        for path in [&crashed, &rewrite, &rewrite_key, &access, &stale] {
            lake.store.put_new(path, Bytes::from_static(b"x")).await.expect("put");
        }
        // Ingest's sweep after taking over a crashed holder's lease: no grace asked.
        let leftovers = Leftovers {
            folders: &[paths::COMMANDS_DIR, paths::ACCESS_DIR, paths::FILE_KEYS_DIR],
            uncommitted: Some(Uncommitted { older_than: None, only: |_| true }),
            removed_by: &[],
        };
        let snapshot = Snapshot::open(&lake.store, &lake.pinned).await.expect("open");
        let (chain, live) = snapshot.into_parts();
        let swept = sweep(&lake.store, &History::of(&chain), &live, Some(0), &leftovers)
            .await
            .expect("sweep");
        assert_eq!(swept.deleted, 2, "{swept:?}");
        let mut left = stored(&lake.store, "commands").await;
        left.sort();
        let mut expected = vec!["commands/dt=2026-03-14/compact-1.parquet".to_string(), rewrite];
        expected.sort();
        assert_eq!(left, expected, "the crashed writer's file and the stale one go");
        assert_eq!(stored(&lake.store, paths::FILE_KEYS_DIR).await, [rewrite_key]);
        assert_eq!(stored(&lake.store, "access").await, [access]);
    }
}
