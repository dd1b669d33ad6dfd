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
//!   (the newest manifests deleted, or the writer stopped without a clean shutdown);
//! - `bad-signature`, `unknown-signer` (a key other than a pinned one: the local keyring's,
//!   or the KMS key given with `--signing-key`; a key an attacker adds to the lake's `keys/`
//!   does not help them), `signature-outside-validity` (signed before the key's `valid_from`
//!   or after its `valid_until`);
//! - `missing-object`, `altered-object` (size or SHA-256 differs from the commit),
//!   `uncommitted-object` (in the lake, named by no commit: a write that never committed, or
//!   a plant), `not-deleted` (removed by a retention or shred commit, still stored: an
//!   interrupted apply, or a shred whose keys survive);
//! - `backdated-manifest`: a manifest committed before a manifest that precedes it in the
//!   chain (commit times never go backwards).
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal as _;

use anyhow::Context as _;
use futures::StreamExt as _;
use sessionlake_lake::manifest::{self, ChainLink, KeyValidity, ManifestFile, SignatureProblem};
use sessionlake_lake::store::LakeStore;
use sessionlake_schemas::manifest::{CommitAction, PublicKeyRecord};
use sessionlake_schemas::paths;

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

/// Returns the slack allowed past a promised idle period before a `gap` is reported: a minute
/// plus a tenth of the period (a poll or a batch in progress delays the idle commit).
pub fn idle_grace_secs(idle_period_secs: u64) -> u64 {
    60 + idle_period_secs / 10
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What is wrong: see the module documentation for the kinds.
    pub kind: &'static str,
    /// The manifest or object.
    pub path: String,
    /// What exactly.
    pub detail: String,
}

/// What `verify` checked and found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Manifests read (in the time range, when one is given).
    pub manifests: usize,
    /// Live objects checked.
    pub objects: usize,
    /// Problems, in a stable order.
    pub findings: Vec<Finding>,
}

/// A signer `verify` trusts, whatever the lake's `keys/` says.
#[derive(Debug, Clone)]
pub struct PinnedSigner {
    /// Key id, as signatures name it.
    pub key_id: String,
    /// Public key bytes, as the lake's record stores them.
    pub public_key: Vec<u8>,
    /// Where the pin comes from, for messages: `the keyring`, `--signing-key`.
    pub origin: String,
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
    /// Draw a progress line on stderr.
    pub progress: bool,
}

impl VerifyOptions {
    fn in_range(&self, at: Option<i64>) -> bool {
        at.is_none_or(|at| {
            self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
        })
    }
}

fn finding(kind: &'static str, path: &str, detail: String) -> Finding {
    Finding { kind, path: path.to_string(), detail }
}

/// A finding and the commit time it is about (`None`: reported whatever the range).
struct Scoped {
    finding: Finding,
    at: Option<i64>,
}

fn committed_at(link: &ChainLink) -> Option<i64> {
    manifest::parse_rfc3339_micros(&link.manifest.body.committed_at)
}

fn show_secs(micros: i64) -> String {
    format!("{}s", micros.div_euclid(1_000_000))
}

/// The chain as `verify` understands it.
struct ChainAnalysis {
    /// Indexes into `parsed` of the manifests that make up the chain, by the sequence they hold.
    accepted: Vec<usize>,
    /// Indexes into `parsed` of accepted manifests whose link to the one before is broken.
    broken: BTreeSet<usize>,
    /// Indexes into `parsed` of manifests that fork the chain.
    forked: BTreeSet<usize>,
    /// Every manifest that parsed, replays and forks included.
    parsed: Vec<ChainLink>,
    /// Indexes into `parsed` of byte-for-byte replays (their signatures are not checked again).
    replays: BTreeSet<usize>,
    findings: Vec<Scoped>,
}

/// Classifies the manifest files: which make up the chain, which are replays, forks or
/// reordered, which sequence numbers are missing, which links are broken, and where the
/// commits are further apart than their idle promise allows.
fn analyse_chain(files: &[ManifestFile], now: Option<i64>) -> ChainAnalysis {
    let mut findings = Vec::new();
    let mut parsed: Vec<ChainLink> = Vec::new();
    let mut name_sequences: Vec<u64> = Vec::new();
    let mut unreadable: BTreeSet<u64> = BTreeSet::new();
    for file in files {
        match file.link() {
            Some(link) => {
                parsed.push(link);
                name_sequences.push(file.name_sequence);
            }
            None if unreadable.insert(file.name_sequence) => findings.push(Scoped {
                finding: finding(
                    "unreadable-manifest",
                    &file.path,
                    file.manifest.as_ref().err().cloned().unwrap_or_default(),
                ),
                at: None,
            }),
            None => {}
        }
    }
    let sequence_of = |index: usize| parsed[index].manifest.body.sequence;
    let mut by_sha: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_name: BTreeMap<u64, usize> = BTreeMap::new();
    // Manifests stored under the sequence they hold, by that sequence.
    let mut placed: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, link) in parsed.iter().enumerate() {
        by_sha.entry(link.sha256.as_str()).or_default().push(index);
        by_name.insert(name_sequences[index], index);
        if sequence_of(index) == name_sequences[index] {
            placed.insert(sequence_of(index), index);
        }
    }
    let mut by_previous: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for &index in placed.values() {
        let previous = parsed[index].manifest.body.previous_sha256.as_deref();
        by_previous.entry(previous).or_default().push(index);
    }

    let mut accepted: BTreeMap<u64, usize> = placed.clone();
    let mut replays = BTreeSet::new();
    let mut forked = BTreeSet::new();
    for (index, link) in parsed.iter().enumerate() {
        let (held, stored_as) = (sequence_of(index), name_sequences[index]);
        let at = committed_at(link);
        if held == stored_as {
            continue;
        }
        let copy_of = by_sha[link.sha256.as_str()].iter().copied().find(|&other| other != index);
        if let Some(original) = copy_of {
            replays.insert(index);
            findings.push(Scoped {
                finding: finding(
                    "replayed-manifest",
                    &link.path,
                    format!(
                        "a copy of {} (sequence {held}, committed {}) stored as sequence \
                         {stored_as}",
                        parsed[original].path, link.manifest.body.committed_at
                    ),
                ),
                at,
            });
            continue;
        }
        let previous = link.manifest.body.previous_sha256.as_deref();
        let rival = placed
            .get(&held)
            .or_else(|| by_previous.get(&previous).and_then(|list| list.first()))
            .copied();
        if let Some(rival) = rival {
            forked.insert(index);
            findings.push(Scoped {
                finding: finding(
                    "fork",
                    &link.path,
                    format!(
                        "holds sequence {held} after previous {}, as {} does: the chain forks \
                         there",
                        previous.unwrap_or("(none)"),
                        parsed[rival].path
                    ),
                ),
                at,
            });
            continue;
        }
        let swapped = by_name
            .get(&held)
            .filter(|&&other| sequence_of(other) == stored_as)
            .map(|&other| format!(" (swapped with {})", parsed[other].path))
            .unwrap_or_default();
        findings.push(Scoped {
            finding: finding(
                "reordered-manifest",
                &link.path,
                format!("stored as sequence {stored_as} but holds sequence {held}{swapped}"),
            ),
            at,
        });
        accepted.entry(held).or_insert(index);
    }
    // Two manifests each stored under its own sequence but naming the same previous manifest.
    for list in by_previous.values().filter(|list| list.len() > 1) {
        let first = list[0];
        for &index in &list[1..] {
            forked.insert(index);
            findings.push(Scoped {
                finding: finding(
                    "fork",
                    &parsed[index].path,
                    format!(
                        "names the same previous manifest ({}) as {}: the chain forks there",
                        parsed[index].manifest.body.previous_sha256.as_deref().unwrap_or("(none)"),
                        parsed[first].path
                    ),
                ),
                at: committed_at(&parsed[index]),
            });
        }
    }

    let mut expected = 0u64;
    let mut before: Option<usize> = None;
    let mut broken = BTreeSet::new();
    // The latest commit time seen so far along the chain, and the manifest that holds it.
    let mut latest: Option<(i64, usize)> = None;
    for (&sequence, &index) in &accepted {
        let link = &parsed[index];
        let at = committed_at(link);
        if let Some(this_at) = at {
            match latest {
                Some((latest_at, latest_index)) if this_at < latest_at => {
                    findings.push(Scoped {
                        finding: finding(
                            "backdated-manifest",
                            &link.path,
                            format!(
                                "committed {}, before {} (committed {}) that precedes it in the \
                                 chain",
                                link.manifest.body.committed_at,
                                parsed[latest_index].path,
                                parsed[latest_index].manifest.body.committed_at
                            ),
                        ),
                        // Its own date is what is in doubt: reported whatever the range.
                        at: None,
                    });
                }
                _ => latest = Some((this_at, index)),
            }
        }
        // A hole made only of files that do not parse is reported as those files.
        let hole_unreadable = (expected..sequence).all(|missing| unreadable.contains(&missing));
        if sequence > expected && !hole_unreadable {
            findings.push(Scoped {
                finding: finding(
                    "missing-manifest",
                    &paths::manifest_object(expected),
                    if sequence - 1 == expected {
                        format!(
                            "manifest {expected} is missing (the chain resumes at {})",
                            link.path
                        )
                    } else {
                        format!(
                            "manifests {expected} to {} are missing (the chain resumes at {})",
                            sequence - 1,
                            link.path
                        )
                    },
                ),
                at,
            });
        }
        if sequence > expected {
            // Nothing to link to or measure from across a hole: the hole is the finding.
            before = None;
        }
        let expected_previous =
            before.map(|previous| parsed[previous].sha256.as_str()).filter(|_| sequence > 0);
        let linked = sequence == 0 || before.is_some();
        if linked
            && !forked.contains(&index)
            && link.manifest.body.previous_sha256.as_deref() != expected_previous
        {
            broken.insert(index);
            findings.push(Scoped {
                finding: finding(
                    "broken-link",
                    &link.path,
                    format!(
                        "names previous {}, but the manifest before it hashes to {}",
                        link.manifest.body.previous_sha256.as_deref().unwrap_or("(none)"),
                        expected_previous.unwrap_or("(none)")
                    ),
                ),
                at,
            });
        }
        if let Some(previous) = before
            && let Some(gap) = gap_between(&parsed[previous], at)
        {
            findings.push(Scoped {
                finding: finding(
                    "gap",
                    &link.path,
                    format!("committed {gap} after {}", parsed[previous].path),
                ),
                at,
            });
        }
        expected = sequence.saturating_add(1);
        before = Some(index);
    }
    if let (Some(newest), Some(now)) = (before, now)
        && let Some(gap) = gap_between(&parsed[newest], Some(now))
    {
        findings.push(Scoped {
            finding: finding(
                "gap",
                &parsed[newest].path,
                format!(
                    "is the newest manifest, and nothing was committed in the {gap} since (the \
                     newest manifests were deleted, or the writer stopped without a clean \
                     shutdown)"
                ),
            ),
            at: Some(now),
        });
    }
    let accepted = accepted.into_values().collect();
    ChainAnalysis { accepted, broken, forked, parsed, replays, findings }
}

/// Describes how far `later` (µs) is from `earlier`'s commit when that is more than `earlier`
/// promised; `None` when within the promise or when there was none.
fn gap_between(earlier: &ChainLink, later: Option<i64>) -> Option<String> {
    let promised = earlier.manifest.body.idle_period_secs?;
    let (from, to) = (committed_at(earlier)?, later?);
    let elapsed = to.saturating_sub(from);
    let grace = idle_grace_secs(promised);
    let allowed = i64::try_from(promised.saturating_add(grace)).ok()?.saturating_mul(1_000_000);
    (elapsed > allowed).then(|| {
        format!(
            "{} (its idle period is {promised}s, {grace}s of grace allowed)",
            show_secs(elapsed)
        )
    })
}

/// Adds the structural findings of `chain` (links read by [`manifest::read_chain`]) to
/// `report`: missing, broken, forked, replayed or reordered manifests. Gaps are left out: a
/// stretch without commits does not make the commits around it less trustworthy.
pub(crate) fn check_chain(chain: &[ChainLink], report: &mut Report) {
    let files: Vec<ManifestFile> = chain
        .iter()
        .map(|link| ManifestFile {
            path: link.path.clone(),
            name_sequence: paths::manifest_sequence(&link.path)
                .unwrap_or(link.manifest.body.sequence),
            sha256: link.sha256.clone(),
            size: link.size,
            manifest: Ok(link.manifest.clone()),
        })
        .collect();
    let analysis = analyse_chain(&files, None);
    report.findings.extend(
        analysis.findings.into_iter().map(|scoped| scoped.finding).filter(|f| f.kind != "gap"),
    );
}

/// Reads the lake's public-key records, merged by key id; records that do not parse are
/// findings.
async fn read_key_records(
    store: &LakeStore,
    findings: &mut Vec<Scoped>,
) -> anyhow::Result<BTreeMap<String, KeyValidity>> {
    let mut records = Vec::new();
    for (path, _) in store.list(paths::KEYS_DIR).await? {
        // Session key records live under keys/ too; they are checked as committed objects.
        if path.ends_with(paths::SESSION_KEY_EXTENSION) {
            continue;
        }
        let bytes = store.get(&path).await?;
        match serde_json::from_slice::<PublicKeyRecord>(&bytes) {
            Ok(record) => records.push((path, record)),
            Err(error) => findings.push(Scoped {
                finding: finding("bad-signature", &path, format!("not a public key: {error}")),
                at: None,
            }),
        }
    }
    Ok(manifest::merge_key_records(records))
}

/// Checks the signature of every manifest but replays, against pinned signers when given;
/// returns the indexes (into `analysis.parsed`) of the manifests whose signature fails.
fn check_signatures(
    analysis: &ChainAnalysis,
    mut keys: BTreeMap<String, KeyValidity>,
    pinned: &[PinnedSigner],
    findings: &mut Vec<Scoped>,
) -> BTreeSet<usize> {
    let mut failed = BTreeSet::new();
    // A pinned key is checked with the pinned public key, whatever the lake's record says;
    // the lake's record only narrows its validity. A record that differs is reported once.
    for pin in pinned {
        let used = analysis.parsed.iter().any(|link| link.manifest.signature.key_id == pin.key_id);
        let path = manifest::public_key_path(&pin.key_id);
        match keys.get_mut(&pin.key_id) {
            Some(known) if known.public_key == pin.public_key => {}
            Some(known) => {
                if used {
                    findings.push(Scoped {
                        finding: finding(
                            "unknown-signer",
                            &path,
                            format!("the lake's copy of {}'s public key differs", pin.origin),
                        ),
                        at: None,
                    });
                }
                known.public_key = pin.public_key.clone();
            }
            None if used => {
                findings.push(Scoped {
                    finding: finding(
                        "unknown-signer",
                        &path,
                        format!("the lake's copy of {}'s public key is missing", pin.origin),
                    ),
                    at: None,
                });
            }
            None => {}
        }
    }
    let pinned_names: Vec<String> =
        pinned.iter().map(|pin| format!("{}'s {}", pin.origin, pin.key_id)).collect();
    for (index, link) in analysis.parsed.iter().enumerate() {
        if analysis.replays.contains(&index) {
            continue;
        }
        let at = committed_at(link);
        let signer = &link.manifest.signature.key_id;
        if !pinned.is_empty() && !pinned.iter().any(|pin| &pin.key_id == signer) {
            failed.insert(index);
            findings.push(Scoped {
                finding: finding(
                    "unknown-signer",
                    &link.path,
                    format!("signed by {signer}, not by {}", pinned_names.join(" or ")),
                ),
                at,
            });
            continue;
        }
        let checked = match manifest::verify_signature(link, &keys) {
            Err(SignatureProblem::UnknownKey(detail)) if !pinned.is_empty() => {
                // A pinned key the lake holds no record of: check against the pin itself.
                let pin = pinned.iter().find(|pin| &pin.key_id == signer);
                match pin {
                    Some(pin) => {
                        let algorithm = link.manifest.signature.algorithm.clone();
                        let fallback = BTreeMap::from([(
                            signer.clone(),
                            KeyValidity {
                                algorithm,
                                public_key: pin.public_key.clone(),
                                valid_from: i64::MIN,
                                valid_until: None,
                                unusable: None,
                            },
                        )]);
                        manifest::verify_signature(link, &fallback)
                    }
                    None => Err(SignatureProblem::UnknownKey(detail)),
                }
            }
            other => other,
        };
        let kind = match &checked {
            Ok(()) => continue,
            Err(SignatureProblem::UnknownKey(_)) => "unknown-signer",
            Err(SignatureProblem::Bad(_)) => "bad-signature",
            Err(SignatureProblem::OutsideValidity(_)) => "signature-outside-validity",
        };
        let detail = checked.err().map(|problem| problem.detail().to_string()).unwrap_or_default();
        failed.insert(index);
        findings.push(Scoped { finding: finding(kind, &link.path, detail), at });
    }
    failed
}

/// Returns whether a progress line may be drawn: stderr is a terminal (and not `--json`).
pub fn progress_wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// Hashes `entries` (several at once, each on its own task) and returns the findings.
async fn check_objects(
    store: &LakeStore,
    entries: Vec<sessionlake_schemas::manifest::ObjectEntry>,
    progress: bool,
) -> Vec<Finding> {
    let total = u64::try_from(entries.len()).unwrap_or(u64::MAX);
    let bar = crate::progress::Progress::bar(progress, "verify: hashing", total, "objects");
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
        bar.advance(1);
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
    drop(bar);
    found
}

/// Why a manifest is not trusted, for the findings about the objects it names.
fn distrust_reason(
    index: usize,
    analysis: &ChainAnalysis,
    bad_signatures: &BTreeSet<usize>,
) -> &'static str {
    if bad_signatures.contains(&index) {
        "its signature does not verify"
    } else if analysis.broken.contains(&index) {
        "its link to the manifest before it is broken"
    } else if analysis.replays.contains(&index) {
        "it is a replay"
    } else if analysis.forked.contains(&index) {
        "it forks the chain"
    } else {
        "it is not part of the chain"
    }
}

/// Verifies the lake (or the part of the chain in the options' time range).
///
/// Only *trusted* manifests — accepted into the chain, signature verified, link to the one
/// before intact, no fork — make the live set and the set of committed objects. Any other manifest is
/// reported whatever the range (its commit time is its author's claim, not a fact), and the
/// trusted live objects it names (removes, or adds again with other bytes) are hashed
/// whatever the range: a forged manifest that removes a transcript does not hide its deletion.
pub async fn verify(store: &LakeStore, options: &VerifyOptions) -> anyhow::Result<Report> {
    // List before reading the chain: an ingest committing meanwhile adds objects the chain
    // names, never objects it does not.
    let mut stored = Vec::new();
    for folder in COMMITTED_FOLDERS {
        stored.extend(store.list(folder).await?.into_iter().map(|(path, _)| path));
    }
    let files =
        manifest::read_manifest_files(store).await.context("failed to read the manifest chain")?;
    let tail_checked = options.until.is_none_or(|until| until > options.now);
    let mut analysis = analyse_chain(&files, tail_checked.then_some(options.now));
    let mut findings = std::mem::take(&mut analysis.findings);
    let keys = read_key_records(store, &mut findings).await?;
    let bad_signatures = check_signatures(&analysis, keys, &options.pinned, &mut findings);

    let trusted_indexes: BTreeSet<usize> = analysis
        .accepted
        .iter()
        .copied()
        .filter(|index| {
            !bad_signatures.contains(index)
                && !analysis.broken.contains(index)
                && !analysis.forked.contains(index)
        })
        .collect();
    let trusted: Vec<ChainLink> = analysis
        .accepted
        .iter()
        .filter(|index| trusted_indexes.contains(index))
        .map(|&index| analysis.parsed[index].clone())
        .collect();
    // Manifests that parsed but are not trusted, by index into `parsed`.
    let untrusted: Vec<usize> =
        (0..analysis.parsed.len()).filter(|index| !trusted_indexes.contains(index)).collect();
    let untrusted_paths: BTreeSet<&str> =
        untrusted.iter().map(|&index| analysis.parsed[index].path.as_str()).collect();

    let mut report = Report {
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
    let live = manifest::live_objects(&trusted);
    let mut to_hash: BTreeSet<&str> = trusted
        .iter()
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
    report.findings.extend(check_objects(store, to_check, options.progress).await);

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
    for path in stored.iter() {
        if !named.contains(path.as_str()) {
            let detail = match named_untrusted.get(path.as_str()) {
                Some(&index) => format!(
                    "named only by {}, which is not trusted: {}",
                    analysis.parsed[index].path,
                    distrust_reason(index, &analysis, &bad_signatures)
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
    report.findings.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    report.findings.dedup();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use sessionlake_schemas::manifest::{
        CommitAction, MANIFEST_VERSION, Manifest, ManifestBody, ManifestSignature,
    };

    use super::*;

    /// 2026-03-14T09:00:00Z, when the test chains start.
    const START: i64 = 1_773_478_800_000_000;
    const MINUTE: i64 = 60_000_000;

    /// A chain of manifests `0..count`, five minutes apart, each promising `idle` seconds.
    fn chain(count: u64, idle: Option<u64>) -> Vec<ManifestFile> {
        let mut files: Vec<ManifestFile> = Vec::new();
        for sequence in 0..count {
            let at = START + 5 * MINUTE * i64::try_from(sequence).expect("small");
            let committed_at =
                chrono::DateTime::from_timestamp_micros(at).expect("time").to_rfc3339();
            let body = ManifestBody {
                version: MANIFEST_VERSION,
                sequence,
                previous_sha256: files.last().map(|file| file.sha256.clone()),
                committed_at,
                writer_id: "test".into(),
                action: CommitAction::Idle,
                reason: None,
                added: vec![],
                removed: vec![],
                idle_period_secs: idle,
            };
            let signature = ManifestSignature {
                algorithm: "ed25519".into(),
                key_id: "k".into(),
                value: "".into(),
            };
            files.push(ManifestFile {
                path: paths::manifest_object(sequence),
                name_sequence: sequence,
                sha256: format!("sha-{sequence}"),
                size: 1,
                manifest: Ok(Manifest { body, signature }),
            });
        }
        files
    }

    fn kinds(files: &[ManifestFile], now: Option<i64>) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = analyse_chain(files, now)
            .findings
            .into_iter()
            .map(|scoped| (scoped.finding.kind.to_string(), scoped.finding.path))
            .collect();
        found.sort();
        found
    }

    fn pair(kind: &str, sequence: u64) -> (String, String) {
        (kind.to_string(), paths::manifest_object(sequence))
    }

    fn store_as(file: &ManifestFile, sequence: u64) -> ManifestFile {
        ManifestFile {
            path: paths::manifest_object(sequence),
            name_sequence: sequence,
            ..file.clone()
        }
    }

    #[test]
    fn test_each_chain_tampering_is_named_precisely() {
        let intact = chain(5, None);
        assert_eq!(kinds(&intact, None), vec![]);

        let mut deleted = intact.clone();
        deleted.remove(2);
        assert_eq!(kinds(&deleted, None), vec![pair("missing-manifest", 2)], "deleted");

        let mut swapped = intact.clone();
        let (one, three) = (swapped[1].clone(), swapped[3].clone());
        swapped[1] = store_as(&three, 1);
        swapped[3] = store_as(&one, 3);
        assert_eq!(
            kinds(&swapped, None),
            vec![pair("reordered-manifest", 1), pair("reordered-manifest", 3)],
            "swapped"
        );

        let mut replayed = intact.clone();
        replayed.push(store_as(&intact[1], 5));
        assert_eq!(kinds(&replayed, None), vec![pair("replayed-manifest", 5)], "replayed");

        // Another manifest that also claims sequence 4 after manifest 3.
        let mut forked = intact.clone();
        let mut rival = store_as(&intact[4], 5);
        rival.sha256 = "sha-rival".into();
        forked.push(rival);
        assert_eq!(kinds(&forked, None), vec![pair("fork", 5)], "forked");

        let mut broken = intact.clone();
        if let Ok(manifest) = &mut broken[3].manifest {
            manifest.body.previous_sha256 = Some("sha-other".into());
        }
        assert_eq!(kinds(&broken, None), vec![pair("broken-link", 3)], "broken");

        // A commit time that goes backwards along the chain.
        let mut backdated = intact.clone();
        if let Ok(manifest) = &mut backdated[3].manifest {
            manifest.body.committed_at = "2020-01-01T00:00:00+00:00".into();
        }
        assert_eq!(kinds(&backdated, None), vec![pair("backdated-manifest", 3)], "backdated");

        let mut unreadable = intact.clone();
        unreadable[2].manifest = Err("manifest/2 is not valid".into());
        assert_eq!(kinds(&unreadable, None), vec![pair("unreadable-manifest", 2)], "unreadable");
    }

    #[test]
    fn test_gaps_follow_the_promised_idle_period() {
        // Five minutes apart: a 300 s promise allows 300 + 90 s, a 60 s one only 60 + 66 s.
        assert_eq!(kinds(&chain(3, Some(300)), Some(START + 12 * MINUTE)), vec![]);
        assert_eq!(
            kinds(&chain(3, Some(60)), None),
            vec![pair("gap", 1), pair("gap", 2)],
            "60 s promise"
        );
        // The newest commit promised more than now allows.
        assert_eq!(
            kinds(&chain(3, Some(300)), Some(START + 20 * MINUTE)),
            vec![pair("gap", 2)],
            "stale head"
        );
        // No promise, no gap; a hole is reported as missing, not as a gap as well.
        assert_eq!(kinds(&chain(3, None), Some(START + 100 * MINUTE)), vec![]);
        let mut holed = chain(4, Some(60));
        holed.remove(2);
        let found = kinds(&holed, None);
        assert!(found.contains(&pair("missing-manifest", 2)), "{found:?}");
        assert!(!found.contains(&pair("gap", 3)), "{found:?}");
    }

    #[test]
    fn test_export_chain_check_ignores_gaps_but_not_holes() {
        let links: Vec<ChainLink> =
            chain(4, Some(60)).iter().filter_map(ManifestFile::link).collect();
        let mut report = Report::default();
        check_chain(&links, &mut report);
        assert_eq!(report.findings, vec![]);
        check_chain(&[links[0].clone(), links[2].clone()], &mut report);
        let kinds: Vec<&str> = report.findings.iter().map(|found| found.kind).collect();
        assert_eq!(kinds, vec!["missing-manifest"]);
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
