//! `sessionlake verify`: walks the manifest chain and checks that nothing was altered, removed
//! or slipped in.
//!
//! Reported, each naming the object or manifest (the `kind` of a [`Finding`]):
//! - `unreadable-manifest`: a manifest file that is not a manifest;
//! - `missing-manifest`: sequence numbers missing from the chain;
//! - `broken-link`: a manifest whose `previous_sha256` is not the hash of the one before it;
//! - `fork`: a manifest that continues the chain from a point another manifest already
//!   continues it from (the same sequence number, or the same previous hash);
//! - `replayed-manifest`: a byte-for-byte copy of an earlier manifest stored under a later
//!   sequence number;
//! - `reordered-manifest`: a manifest stored under another sequence number than the one it
//!   holds (two swapped manifests are both reported, each naming the other);
//! - `gap`: two consecutive commits further apart than the idle period the earlier one
//!   promised (plus [`idle_grace_secs`]), or a newest commit older than its promise allows
//!   (the newest manifests deleted, or the writer stopped without a clean shutdown). A clean
//!   stop of `sessionlake-ingest --follow` promises its restart (`--restart-within`, default
//!   the idle period): a follow-mode lake cut back to an older clean stop, or a service left
//!   stopped longer than it promised, is a `gap` too;
//! - `bad-signature`, `unknown-signer` (a key other than a pinned one: the local keyring's,
//!   or the KMS key given with `--signing-key`; a key an attacker adds to the lake's `keys/`
//!   does not help them), `signature-outside-validity` (signed before the key's `valid_from`
//!   or after its `valid_until`);
//! - `missing-object`, `altered-object` (size or SHA-256 differs from the commit),
//!   `uncommitted-object` (in the lake, named by no commit: a write that never committed, or
//!   a plant), `not-deleted` (removed by a retention or shred commit, still stored: an
//!   interrupted apply, or a shred whose keys survive);
//! - `backdated-manifest`: a manifest committed before a manifest that precedes it in the
//!   chain (commit times never go backwards);
//! - `hidden-manifest`, `overwritten-manifest` (an S3 lake whose bucket has Object Lock, where
//!   every manifest is written locked): a delete marker hides a manifest (the chain reads as
//!   cut back there), or a newer version was written over one; the locked commit is still
//!   stored, and the finding names its version;
//! - `unexpected-head` (only with `--expect-head SEQ:SHA256`): the trusted chain does not hold
//!   manifest SEQ with that SHA-256, a head recorded outside the lake (every commit prints its
//!   head: ingest, retention apply, hold, shred, compact and rekey, in their `--json` output as
//!   `"head": {"sequence": N, "sha256": "…"}`, in text as `head: manifest N sha256 …`, and at
//!   INFO in the log). It names what the lake holds instead: no manifest SEQ (the chain was cut
//!   back or rolled back; the detail names the trusted chain's newest manifest), or a manifest
//!   SEQ with another hash, or one that is not trusted (rewritten). A lake written only by
//!   once-mode commits promises no idle period, so its newest manifests can be deleted without
//!   a `gap`: recording the head outside the lake and checking it here is what detects that.
//! - `bad-checkpoint`: a checkpoint (`checkpoint/<sequence>.json`) not signed by a trusted
//!   signer, naming a manifest that is not the trusted one of its sequence, or whose live set
//!   is not the replay of the trusted chain up to that manifest.
//!
//! Only *trusted* manifests (in the chain, signature verified, link intact) make the live set
//! and the set of committed objects: an object named only by an untrusted manifest is
//! `uncommitted-object` (the detail names the manifest), and an object an untrusted manifest
//! removes is still expected (`missing-object` when deleted).
//!
//! With a time range (`--since`/`--until`) the whole chain is still read (the live set and the
//! links need it), but only trusted manifests committed in the range are reported on and only
//! the live objects they added are hashed; uncommitted objects, which have no commit time,
//! untrusted manifests, whose commit time nobody vouches for, and the live objects those name
//! are always reported and checked.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry};
use sessionlake_schemas::paths;
use sessionlake_storage::checkpoint::Scope;
use sessionlake_storage::manifest::{self, ChainLink, Head};
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::trust::{ChainTrust, StartingPoint, committed_at, finding};
pub use sessionlake_storage::trust::{Finding, PinnedSigner, idle_grace_secs};

use sessionlake_storage::{bail, ensure};

use crate::error::{Context as _, ReadErrorKind, ReadResult};

/// Objects hashed at once (each on its own task, so hashing spreads over the runtime's threads).
const CHECK_CONCURRENCY: usize = 16;

/// Folders whose every object must be named by a commit.
const COMMITTED_FOLDERS: [&str; 8] = [
    paths::RAW_DIR,
    paths::HOLDS_DIR,
    paths::COMMANDS_DIR,
    paths::SESSIONS_DIR,
    paths::ACCESS_DIR,
    paths::QUARANTINE_DIR,
    paths::KEYS_DIR,
    paths::MANIFEST_DIR,
];

/// What `verify` checked and found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Manifests read (in the time range, when one is given).
    pub manifests: usize,
    /// Live objects checked.
    pub objects: usize,
    /// Problems, in a stable order.
    pub findings: Vec<Finding>,
    /// The newest trusted manifest: the head to record outside the lake.
    pub head: Option<Head>,
}

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Trusted signers; none: any key the lake holds a record of.
    pub pinned: Vec<PinnedSigner>,
    /// Report only on manifests committed at or after this time (µs since the epoch).
    pub since: Option<i64>,
    /// Report only on manifests committed before this time (µs since the epoch).
    pub until: Option<i64>,
    /// The time now (µs since the epoch), against which the newest commit's promise is checked.
    pub now: i64,
    /// Told how the hashing of objects goes (a progress bar), if anyone listens.
    pub progress: Option<std::sync::Arc<dyn HashingProgress>>,
    /// Heads the trusted chain must hold (`--expect-head`), whatever the range.
    pub expect_heads: Vec<Head>,
    /// Resume from the newest checkpoint a pinned signer made (a full verify checked it
    /// before): only the manifests from it on are read, the objects they added hashed.
    pub since_checkpoint: bool,
}

impl VerifyOptions {
    fn in_range(&self, at: Option<i64>) -> bool {
        at.is_none_or(|at| {
            self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
        })
    }
}

/// Listens to the hashing of the lake's objects, the long part of a verify.
pub trait HashingProgress: Send + Sync + std::fmt::Debug {
    /// `total` objects are about to be hashed.
    fn start(&self, total: u64);
    /// One more object is hashed.
    fn advance(&self);
    /// Hashing is over.
    fn finish(&self);
}

/// Hashes `entries` (several at once, each on its own task) and returns the findings.
async fn check_objects(
    store: &LakeStore,
    entries: Vec<sessionlake_schemas::manifest::ObjectEntry>,
    progress: Option<&dyn HashingProgress>,
) -> Vec<Finding> {
    if let Some(progress) = progress {
        progress.start(u64::try_from(entries.len()).unwrap_or(u64::MAX));
    }
    let checks = entries.into_iter().map(|entry| {
        let store = store.clone();
        // Spawned: hashing runs on the runtime's threads in parallel, not on this one.
        tokio::spawn(async move {
            let hashed = store.hash(&entry.path).await;
            (entry, hashed)
        })
    });
    let mut results = futures::stream::iter(checks).buffer_unordered(CHECK_CONCURRENCY);
    let mut found = Vec::new();
    while let Some(result) = results.next().await {
        if let Some(progress) = progress {
            progress.advance();
        }
        let (entry, hashed) = match result {
            Ok(done) => done,
            Err(join) => {
                found.push(finding("missing-object", "", format!("check task failed: {join}")));
                continue;
            }
        };
        match hashed {
            Ok(None) => found.push(finding(
                "missing-object",
                &entry.path,
                format!("committed as {} bytes, not in the lake", entry.size),
            )),
            Ok(Some((size, sha))) if sha != entry.sha256 || size != entry.size => {
                found.push(finding(
                    "altered-object",
                    &entry.path,
                    format!(
                        "committed {} bytes sha256 {}, found {size} bytes sha256 {sha}",
                        entry.size, entry.sha256
                    ),
                ))
            }
            Ok(Some(_)) => {}
            Err(error) => found.push(finding(
                "missing-object",
                &entry.path,
                format!("cannot be read: {error}"),
            )),
        }
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    found
}

/// Verifies the lake (or the part of the chain in the options' time range).
///
/// Only *trusted* manifests — accepted into the chain, signature verified, link to the one
/// before intact, no fork — make the live set and the set of committed objects. Any other manifest is
/// reported whatever the range (its commit time is its author's claim, not a fact), and the
/// trusted live objects it names (removes, or adds again with other bytes) are hashed
/// whatever the range: a forged manifest that removes a transcript does not hide its deletion.
pub async fn verify(store: &LakeStore, options: &VerifyOptions) -> ReadResult<Report> {
    // List before reading the chain: an ingest committing meanwhile adds objects the chain
    // names, never objects it does not.
    let mut stored = Vec::new();
    for folder in COMMITTED_FOLDERS {
        stored.extend(store.list(folder).await?.into_iter().map(|(path, _)| path));
    }
    // A local file the store cannot name is in no listing: named here, whatever its name.
    let unnameable: Vec<Finding> = {
        let listed: BTreeSet<&str> = stored.iter().map(String::as_str).collect();
        COMMITTED_FOLDERS
            .iter()
            .flat_map(|folder| store.unnameable_files(folder, &listed))
            .map(|name| {
                // Escaped, in quotes: `"raw/…#1"`.
                let unquoted = name.trim_matches('"');
                if sessionlake_storage::store::upload_part_of(unquoted).is_some() {
                    let detail = "the part file of an interrupted upload: the next ingest after \
                                  a crash, or compact, deletes it"
                        .to_string();
                    return finding("uncommitted-object", unquoted, detail);
                }
                let detail = "a file no listing shows (its name is not UTF-8, or one the store \
                              skips): no command reads it; delete or rename it"
                    .to_string();
                finding("unnameable-object", &name, detail)
            })
            .collect()
    };
    // The tables' Delta logs are derived from the chain, never named by it: compared with the
    // live set below.
    stored.retain(|path| !paths::is_delta_log(path));
    let tail_checked = options.until.is_none_or(|until| until > options.now);
    let now = tail_checked.then_some(options.now);
    let (resumed, skipped) = if options.since_checkpoint {
        ensure!(
            !options.pinned.is_empty(),
            ReadErrorKind::Invalid,
            "--since-checkpoint needs a pinned signer (the keyring, or --signing-key)"
        );
        sessionlake_storage::trust::latest_checkpoint(store, &options.pinned, Scope::Whole).await?
    } else {
        (None, Vec::new())
    };
    let from = resumed.as_ref().map(|start| (start.sequence, start.manifest_sha256.clone()));
    let (files, first, mut live) = match resumed {
        Some(StartingPoint { sequence, live, files, .. }) => (files, Some(sequence), live),
        None if options.since_checkpoint => {
            bail!(
                ReadErrorKind::Invalid,
                "--since-checkpoint: the lake has no checkpoint a pinned signer made"
            )
        }
        None => {
            let files = manifest::read_manifest_files(store)
                .await
                .context_kind(ReadErrorKind::Lake, "failed to read the manifest chain")?;
            (files, None, BTreeMap::new())
        }
    };
    let mut trust = ChainTrust::judge_from(
        store,
        &files,
        &options.pinned,
        now,
        from.as_ref().map(|(sequence, sha256)| (*sequence, sha256.as_str())),
        first.map(|_| &live),
    )
    .await?;
    let findings = std::mem::take(&mut trust.findings);
    let analysis = &trust.analysis;
    let trusted_indexes = &trust.trusted;
    let trusted: Vec<ChainLink> = trust.trusted_links();
    // Manifests that parsed but are not trusted, by index into `parsed`.
    let untrusted: Vec<usize> = trust.untrusted();
    let untrusted_paths: BTreeSet<&str> =
        untrusted.iter().map(|&index| analysis.parsed[index].path.as_str()).collect();

    let mut report = Report {
        head: trusted.last().map(ChainLink::head),
        manifests: analysis
            .parsed
            .iter()
            .enumerate()
            .filter(|(index, link)| {
                !trusted_indexes.contains(index) || options.in_range(committed_at(link))
            })
            .count(),
        ..Report::default()
    };
    // On a bucket with Object Lock, the versions behind the manifests: a delete marker or a
    // newer version over a locked commit is a cut-back or a rewrite, whatever the range.
    // A verify resumed from a checkpoint lists only the versions from it on.
    let listed_after =
        first.and_then(|sequence| sequence.checked_sub(1)).map(paths::manifest_object);
    let versions = store.commit_versions(paths::MANIFEST_DIR, listed_after.as_deref()).await?;
    if let Some(versions) = versions {
        report.findings.extend(version_findings(&versions));
    }
    // A head recorded elsewhere is checked whatever the range: it is about the whole chain.
    report.findings.extend(options.expect_heads.iter().filter_map(|head| trust.expect_head(head)));
    for mut scoped in findings {
        // A finding about an untrusted manifest is dated by nothing anyone vouches for.
        if untrusted_paths.contains(scoped.finding.path.as_str()) {
            scoped.at = None;
        }
        if options.in_range(scoped.at) {
            report.findings.push(scoped.finding);
        }
    }

    // The live set comes from the trusted chain; with a range, only what trusted commits in
    // the range added is hashed, and every live object an untrusted manifest names.
    // Resumed from a checkpoint: the checkpoint's manifest was checked by the verify that
    // checked the checkpoint; what came after it is checked now.
    let after_checkpoint =
        |link: &&ChainLink| first.is_none_or(|first| link.manifest.body.sequence > first);
    manifest::apply_links(&mut live, trusted.iter().filter(after_checkpoint));
    let mut to_hash: BTreeSet<&str> = trusted
        .iter()
        .filter(after_checkpoint)
        .filter(|link| options.in_range(committed_at(link)))
        .flat_map(|link| link.manifest.body.added.iter().map(|entry| entry.path.as_str()))
        .collect();
    for &index in &untrusted {
        let body = &analysis.parsed[index].manifest.body;
        to_hash.extend(body.added.iter().chain(&body.removed).map(|entry| entry.path.as_str()));
    }
    let to_check: Vec<_> =
        live.values().filter(|entry| to_hash.contains(entry.path.as_str())).cloned().collect();
    report.objects = to_check.len();
    report.findings.extend(check_objects(store, to_check, options.progress.as_deref()).await);
    report.findings.extend(conflicting_deliveries(&live));

    // Everything a trusted commit ever named, live or removed since, plus the manifest files.
    let mut named: BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
    for link in &trusted {
        named.extend(link.manifest.body.added.iter().map(|entry| entry.path.as_str()));
    }
    // Objects only untrusted manifests name, and the first such manifest.
    let mut named_untrusted: BTreeMap<&str, usize> = BTreeMap::new();
    for &index in &untrusted {
        for entry in &analysis.parsed[index].manifest.body.added {
            named_untrusted.entry(entry.path.as_str()).or_insert(index);
        }
    }
    // An object a retention, shred or compaction commit removed must be gone (for a session
    // key record: else the session is not shredded; for a compacted file a retention rewrote:
    // else the expired rows are still stored). Objects other commits removed (a replaced version)
    // may stay until deleted.
    let mut must_be_gone: BTreeMap<&str, &ChainLink> = BTreeMap::new();
    for link in &trusted {
        for entry in &link.manifest.body.added {
            must_be_gone.remove(entry.path.as_str());
        }
        if matches!(
            link.manifest.body.action,
            CommitAction::Retention | CommitAction::Shred | CommitAction::Compact
        ) {
            for entry in &link.manifest.body.removed {
                must_be_gone.insert(entry.path.as_str(), link);
            }
        }
    }
    report.findings.extend(skipped);
    report.findings.extend(unnameable);
    // Resumed, the objects named before the checkpoint are not known: stored objects are
    // checked against the whole chain only.
    let stored = if first.is_some() { Vec::new() } else { stored };
    for path in stored.iter() {
        if !named.contains(path.as_str()) {
            let detail = match named_untrusted.get(path.as_str()) {
                Some(&index) => format!(
                    "named only by {}, which is not trusted: {}",
                    analysis.parsed[index].path,
                    trust.reason(index)
                ),
                None => "no commit names it".into(),
            };
            report.findings.push(finding("uncommitted-object", path, detail));
        } else if let Some(link) = must_be_gone.get(path.as_str()) {
            report.findings.push(finding(
                "not-deleted",
                path,
                format!(
                    "removed by {} ({:?}) but still stored: re-run the retention apply, shred or \
                     compact",
                    link.path, link.manifest.body.action
                ),
            ));
        }
    }
    let signers = if options.pinned.is_empty() {
        // No pin: the keys the lake's own records hold, as for the manifests.
        let mut ignored = Vec::new();
        sessionlake_storage::trust::read_key_records(store, &mut ignored)
            .await?
            .into_iter()
            .map(|(key_id, key)| PinnedSigner {
                key_id,
                public_key: key.public_key,
                origin: "the lake's key record".into(),
            })
            .collect()
    } else {
        options.pinned.clone()
    };
    if first.is_none() {
        report.findings.extend(check_checkpoints(store, &trusted, &signers).await?);
    }
    // Each table's Delta log lists the live set of the head (what other engines read), so
    // only a verify that reaches the head compares them.
    if tail_checked {
        let head = trusted.last().map(|link| link.manifest.body.sequence);
        report.findings.extend(delta_findings(store, &live, head).await);
    }
    report.findings.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    report.findings.dedup();
    Ok(report)
}

/// Findings about the tables' Delta logs: one per table whose log does not list exactly the
/// live set of the head (`delta-log-differs`), or that cannot be read (`delta-log-unreadable`).
async fn delta_findings(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    head: Option<u64>,
) -> Vec<Finding> {
    let differences = match sessionlake_delta::differences(store, live).await {
        Ok(differences) => differences,
        Err(error) => {
            let detail = format!("{error}: engines that read Delta may not see the live lake");
            return vec![finding("delta-log-unreadable", paths::DELTA_LOG_DIR, detail)];
        }
    };
    let head = head.map_or("no commit".to_string(), |sequence| format!("commit {sequence}"));
    differences
        .into_iter()
        .map(|(table, difference)| {
            let path = format!("{}/{}", table.dir(), paths::DELTA_LOG_DIR);
            let sample = |paths: &[String]| match paths {
                [] => String::new(),
                [one] => format!(" ({one})"),
                [one, rest @ ..] => format!(" ({one} and {} more)", rest.len()),
            };
            let mut detail = if difference.absent {
                format!("no Delta log, and the table has {} live files", difference.missing.len())
            } else {
                format!(
                    "the Delta log lists {} files the chain's live set ({head}) does not{}, \
                     and lacks {} live files{}",
                    difference.extra.len(),
                    sample(&difference.extra),
                    difference.missing.len(),
                    sample(&difference.missing)
                )
            };
            if let Some(synced) = difference.synced_to {
                detail.push_str(&format!("; it says it was brought to chain commit {synced}"));
            }
            detail.push_str(
                ": engines that read Delta see other rows than sessionlake; the next ingest \
                 poll that commits (its end: during a poll the logs follow its commits once, \
                 at the end), compact, shred or retention apply rewrites it from the chain",
            );
            finding("delta-log-differs", &path, detail)
        })
        .collect()
}

/// Findings about the stored versions of the manifests on a bucket with Object Lock: a
/// manifest hidden by a delete marker (`hidden-manifest`: the chain reads as cut back, the
/// locked commit is still in the bucket) and one with a newer version over the commit
/// (`overwritten-manifest`). Both name the locked first version, from which it can be
/// restored.
fn version_findings(versions: &[sessionlake_storage::object_lock::CommitVersions]) -> Vec<Finding> {
    let mut found = Vec::new();
    for object in versions {
        let Some(first) = object.versions.first() else {
            continue;
        };
        if object.deleted {
            found.push(finding(
                "hidden-manifest",
                &object.path,
                format!(
                    "a delete marker hides it (the chain reads as cut back here); its commit is \
                     still stored as version {first}: remove the delete marker to restore it"
                ),
            ));
        } else if object.versions.len() > 1 {
            found.push(finding(
                "overwritten-manifest",
                &object.path,
                format!(
                    "{} versions: a newer one was written over the commit, version {first} \
                     (still stored, locked): restore it by deleting the newer versions",
                    object.versions.len()
                ),
            ));
        }
    }
    found
}

/// Checks every checkpoint: signed by a trusted signer, naming the trusted manifest of its
/// sequence, and holding exactly the live set the trusted chain has right after it.
async fn check_checkpoints(
    store: &LakeStore,
    trusted: &[ChainLink],
    signers: &[PinnedSigner],
) -> ReadResult<Vec<Finding>> {
    let mut checkpoints = sessionlake_storage::checkpoint::list(store).await?;
    checkpoints.reverse();
    let mut found = Vec::new();
    let mut live: BTreeMap<String, sessionlake_schemas::manifest::ObjectEntry> = BTreeMap::new();
    let mut replayed = 0;
    for (sequence, path) in checkpoints {
        let bytes = store.get(&path).await?;
        let checkpoint = match sessionlake_storage::checkpoint::check(&bytes, sequence, signers) {
            Ok(checkpoint) => checkpoint,
            Err(why) => {
                found.push(finding("bad-checkpoint", &path, why));
                continue;
            }
        };
        let named = checkpoint.body.manifest_sha256.clone();
        let carried = checkpoint.body.head.clone();
        let theirs =
            match sessionlake_storage::checkpoint::load(store, checkpoint, Scope::Whole).await? {
                Ok(theirs) => theirs,
                Err(why) => {
                    found.push(finding("bad-checkpoint", &path, why));
                    continue;
                }
            };
        let upto = trusted[replayed..]
            .iter()
            .take_while(|link| link.manifest.body.sequence <= sequence)
            .count();
        manifest::apply_links(&mut live, &trusted[replayed..replayed + upto]);
        replayed += upto;
        match trusted.iter().find(|link| link.manifest.body.sequence == sequence) {
            Some(link) if link.sha256 == named => {
                let differs = carried.as_ref().is_some_and(|head| {
                    head.size != link.size || head.manifest != link.manifest.without_objects()
                });
                if differs {
                    found.push(finding(
                        "bad-checkpoint",
                        &path,
                        format!("carries {} otherwise than it is", link.path),
                    ));
                }
            }
            Some(link) => found.push(finding(
                "bad-checkpoint",
                &path,
                format!("names {} with sha256 {named}, which hashes to {}", link.path, link.sha256),
            )),
            None => found.push(finding(
                "bad-checkpoint",
                &path,
                format!(
                    "names {}, which is not a trusted manifest",
                    paths::manifest_object(sequence)
                ),
            )),
        }
        let missing = live.keys().filter(|path| !theirs.contains_key(*path)).count();
        let extra = theirs.keys().filter(|path| !live.contains_key(*path)).count();
        let differ = theirs
            .iter()
            .filter(|(path, entry)| live.get(*path).is_some_and(|ours| ours != *entry))
            .count();
        if missing + extra + differ > 0 {
            found.push(finding(
                "bad-checkpoint",
                &path,
                format!(
                    "is not the replay of the chain up to manifest {sequence}: {missing} live \
                     objects left out, {extra} not live added, {differ} described otherwise"
                ),
            ));
        }
    }
    Ok(found)
}

/// Names each session that one source delivered from two source objects: both versions stay
/// live (neither replaces the other), and one of the objects claims a session it did not
/// record, or two sessions share an id.
fn conflicting_deliveries(live: &BTreeMap<String, ObjectEntry>) -> Vec<Finding> {
    sessionlake_schemas::manifest::conflicting_deliveries(live)
        .into_iter()
        .map(|((id, source), paths)| {
            let detail = format!(
                "session {id} is live {} times from {}, delivered by different source objects \
                 ({}): see `sessionlake sessions --session {id}`",
                paths.len(),
                source.as_str(),
                paths.join(", ")
            );
            finding("conflicting-delivery", paths[paths.len() - 1], detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_version_findings_name_hidden_and_overwritten_manifests() {
        use sessionlake_storage::object_lock::CommitVersions;
        let versions = |path: &str, ids: &[&str], deleted| CommitVersions {
            path: path.into(),
            versions: ids.iter().map(|id| id.to_string()).collect(),
            deleted,
        };
        let found = version_findings(&[
            versions("manifest/0.json", &["a"], false),
            versions("manifest/1.json", &["b", "c"], false),
            versions("manifest/2.json", &["d"], true),
            versions("manifest/3.json", &[], true),
        ]);
        let kinds: Vec<(&str, &str)> =
            found.iter().map(|found| (found.kind, found.path.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                ("overwritten-manifest", "manifest/1.json"),
                ("hidden-manifest", "manifest/2.json")
            ]
        );
        assert!(found[0].detail.contains("version b"), "{}", found[0].detail);
        assert!(found[1].detail.contains("version d"), "{}", found[1].detail);
    }

    #[test]
    fn test_range_filter_keeps_undated_findings() {
        let options = VerifyOptions { since: Some(10), until: Some(20), ..Default::default() };
        let cases = [(None, true), (Some(9), false), (Some(10), true), (Some(20), false)];
        for (at, expected) in cases {
            assert_eq!(options.in_range(at), expected, "{at:?}");
        }
    }
}
