//! Which manifests of a lake can be trusted, and the one way every command sees a lake: the
//! [`Snapshot`] of its trusted chain.
//!
//! A manifest is *trusted* when it is part of the chain (stored under the sequence it holds,
//! not a replay, not a fork), its link to the manifest before it is intact, and its signature
//! verifies with a pinned signer ([`PinnedSigner`]: the keyring's key, a KMS key given on the
//! command line) within that key's validity. With no signer pinned, the lake's own public-key
//! records are used (and [`Snapshot::signer_pinned`] says so).
//!
//! Only trusted manifests make the live set. Every other manifest, and every hole, replay,
//! fork or backdated commit in the chain, is a [`Finding`] of the snapshot: readers say on
//! stderr what they ignored and why ([`Snapshot::ignored`]), and writers that delete or
//! rewrite refuse ([`Snapshot::ensure_trusted`]). `sessionlake verify` judges the chain with
//! the same code ([`ChainTrust::judge`]) and reports the same findings, and more.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sessionlake_schemas::manifest::{ObjectEntry, PublicKeyRecord};
use sessionlake_schemas::paths;

use crate::checkpoint::Scope;
use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::history::History;
use crate::manifest::{self, ChainLink, Head, KeyValidity, ManifestFile, SignatureProblem};
use crate::store::LakeStore;

/// The chain of a lake judged against the pinned signers: which manifests are trusted, and
/// the findings that say why the others are not.
#[derive(Debug)]
pub struct ChainTrust {
    /// Structure of the chain (replays, forks, holes, broken links).
    pub analysis: ChainAnalysis,
    /// Indexes into `analysis.parsed` of the manifests whose signature fails.
    pub bad_signatures: BTreeSet<usize>,
    /// Indexes into `analysis.parsed` of the trusted manifests.
    pub trusted: BTreeSet<usize>,
    /// Every finding about the chain and its key records, dated by the commit it is about.
    pub findings: Vec<Scoped>,
    /// The sequence the chain was judged from (0: the whole chain; else a checkpoint's).
    pub first: u64,
}

/// What a snapshot keeps of the manifest files it was judged from.
struct Stored {
    /// The sequence of the newest manifest file, trusted or not.
    file_head: Option<u64>,
    /// How many manifest files were read.
    manifests: usize,
}

impl Stored {
    fn of(files: &[ManifestFile]) -> Stored {
        Stored { file_head: files.last().map(|file| file.name_sequence), manifests: files.len() }
    }
}

impl ChainTrust {
    /// Judges the manifest `files` of `store` (as [`manifest::read_manifest_files`] reads them)
    /// against `pinned` (none: the lake's own key records). `now`, when given, is checked
    /// against the newest commit's idle promise (a `gap`).
    pub async fn judge(
        store: &LakeStore,
        files: &[ManifestFile],
        pinned: &[PinnedSigner],
        now: Option<i64>,
    ) -> LakeResult<ChainTrust> {
        Self::judge_from(store, files, pinned, now, None, None).await
    }

    /// Like [`ChainTrust::judge`], for the manifests from a checkpoint's on (see
    /// [`analyse_chain_from`]): `from` is the checkpoint's manifest, its sequence and the
    /// SHA-256 the checkpoint names, whose signature is not checked again (the checkpoint's
    /// signer vouches for it; a version-2 checkpoint carries it without its lists).
    ///
    /// `committed_before` is the live set the checkpoint holds (none for the whole chain): with
    /// the objects the trusted manifests add, it says which public-key records were committed.
    /// A record that names a pinned key counts only if it was (see [`vouched_records`]).
    pub async fn judge_from(
        store: &LakeStore,
        files: &[ManifestFile],
        pinned: &[PinnedSigner],
        now: Option<i64>,
        from: Option<(u64, &str)>,
        committed_before: Option<&BTreeMap<String, ObjectEntry>>,
    ) -> LakeResult<ChainTrust> {
        let first = from.map_or(0, |(sequence, _)| sequence);
        let mut analysis = analyse_chain_from(files, now, first);
        let mut findings = std::mem::take(&mut analysis.findings);
        let records = read_key_record_files(store, pinned, &mut findings).await?;
        let vouched = from.and_then(|(sequence, sha256)| {
            analysis
                .parsed
                .iter()
                .position(|link| link.manifest.body.sequence == sequence && link.sha256 == sha256)
        });
        let every = records.iter().map(|file| (file.path.clone(), file.record.clone()));
        let mut checked = Vec::new();
        let mut bad_signatures = check_signatures(
            &analysis,
            manifest::merge_key_records(every),
            pinned,
            vouched,
            &mut checked,
        );
        let pinned_failed = bad_signatures.iter().any(|&index| {
            let signer = &analysis.parsed[index].manifest.signature.key_id;
            pinned.iter().any(|pin| &pin.key_id == signer)
        });
        if pinned_failed {
            // Checked again with only the records of pinned keys that the chain committed.
            let mut kept = Vec::new();
            for (record, ignored) in
                vouched_records(&analysis, records, pinned, vouched, committed_before)
            {
                kept.extend(record);
                findings.extend(ignored);
            }
            let keys = manifest::merge_key_records(kept);
            bad_signatures = check_signatures(&analysis, keys, pinned, vouched, &mut findings);
        } else {
            findings.extend(checked);
        }
        let trusted = trusted_of(&analysis, &bad_signatures);
        Ok(ChainTrust { analysis, bad_signatures, trusted, findings, first })
    }

    /// Takes the trusted manifests out, in chain order, with the findings (no copy: a long
    /// chain is held once).
    pub fn into_trusted_links(mut self) -> (Vec<ChainLink>, Vec<Scoped>) {
        let mut parsed: Vec<Option<ChainLink>> =
            std::mem::take(&mut self.analysis.parsed).into_iter().map(Some).collect();
        let trusted = self
            .analysis
            .accepted
            .iter()
            .filter(|index| self.trusted.contains(index))
            .filter_map(|&index| parsed.get_mut(index).and_then(Option::take))
            .collect();
        (trusted, self.findings)
    }

    /// Returns the trusted manifests in chain order.
    pub fn trusted_links(&self) -> Vec<ChainLink> {
        self.analysis
            .accepted
            .iter()
            .filter(|index| self.trusted.contains(index))
            .map(|&index| self.analysis.parsed[index].clone())
            .collect()
    }

    /// Returns the indexes (into `analysis.parsed`) of the manifests that parsed but are not
    /// trusted.
    pub fn untrusted(&self) -> Vec<usize> {
        (0..self.analysis.parsed.len()).filter(|index| !self.trusted.contains(index)).collect()
    }

    /// Returns an `unexpected-head` finding unless the trusted chain holds manifest
    /// `expected.sequence` with SHA-256 `expected.sha256`: a head recorded outside the lake
    /// that the lake no longer reaches (cut back, rolled back) or holds rewritten.
    pub fn expect_head(&self, expected: &Head) -> Option<Finding> {
        let path = paths::manifest_object(expected.sequence);
        let trusted = self.trusted_links();
        if trusted.iter().any(|link| link.head() == *expected) {
            return None;
        }
        // A chain judged from a checkpoint on holds no older manifest to compare with.
        if expected.sequence < self.first {
            return Some(finding(
                "unexpected-head",
                &path,
                format!(
                    "expected manifest {} sha256 {}, but only manifests from {} on were read (a \
                     verify resumed from a checkpoint): check it with a full verify",
                    expected.sequence, expected.sha256, self.first
                ),
            ));
        }
        let newest = trusted.last().map_or_else(
            || "no trusted manifest".to_string(),
            |link| format!("the trusted chain ends at {}", link.head()),
        );
        let same_sequence = self
            .analysis
            .parsed
            .iter()
            .enumerate()
            .filter(|(_, link)| link.manifest.body.sequence == expected.sequence)
            .map(|(index, link)| (index, link.sha256.as_str(), link.path.as_str()))
            .collect::<Vec<_>>();
        let detail = match same_sequence.as_slice() {
            [] => format!(
                "expected manifest {} sha256 {}, but the lake holds no manifest {} ({newest}): \
                 the chain was cut back or rolled back",
                expected.sequence, expected.sha256, expected.sequence
            ),
            found => {
                let named: Vec<String> = found
                    .iter()
                    .map(|&(index, sha, path)| {
                        if self.trusted.contains(&index) {
                            format!("{path} is sha256 {sha}")
                        } else {
                            format!(
                                "{path} is sha256 {sha} and not trusted ({})",
                                self.reason(index)
                            )
                        }
                    })
                    .collect();
                format!(
                    "expected manifest {} sha256 {}, but {} ({newest}): the chain was rewritten",
                    expected.sequence,
                    expected.sha256,
                    named.join(", ")
                )
            }
        };
        Some(finding("unexpected-head", &path, detail))
    }

    /// Why manifest `index` is not trusted.
    pub fn reason(&self, index: usize) -> &'static str {
        distrust_reason(index, &self.analysis, &self.bad_signatures)
    }
}

/// The lake as every command sees it: the trusted chain, the live set it commits, and what was
/// left out and why.
#[derive(Debug)]
pub struct Snapshot {
    trusted: Vec<ChainLink>,
    live: BTreeMap<String, ObjectEntry>,
    problems: Vec<Finding>,
    file_head: Option<u64>,
    manifests: usize,
    signer_pinned: bool,
    checkpoint: Option<u64>,
}

impl Snapshot {
    /// Reads and judges the whole chain of `store` against `pinned` (none: the lake's own key
    /// records, see the module documentation).
    pub async fn open(store: &LakeStore, pinned: &[PinnedSigner]) -> LakeResult<Snapshot> {
        let (stored, trust) = Snapshot::judge_whole(store, pinned).await?;
        Ok(Snapshot::assemble(stored, trust, BTreeMap::new(), None, !pinned.is_empty(), None))
    }

    /// Reads every manifest of `store` and judges the chain against `pinned`.
    async fn judge_whole(
        store: &LakeStore,
        pinned: &[PinnedSigner],
    ) -> LakeResult<(Stored, ChainTrust)> {
        let files = manifest::read_manifest_files(store).await.map_err(|error| {
            LakeError::new(
                error.kind(),
                format!("failed to read the manifest of {}: {error}", store.location()),
            )
        })?;
        let trust = ChainTrust::judge(store, &files, pinned, None).await?;
        // The files' parsed manifests are a copy of the chain's: gone before it is assembled.
        Ok((Stored::of(&files), trust))
    }

    /// Like [`Snapshot::open`], for a writer that asks the chain's past only what [`History`]
    /// answers: each trusted manifest goes into the history and the live set in turn, its
    /// entries moved rather than copied, and [`Snapshot::chain`] holds the manifests without
    /// their lists (at 10 M commands the chain and its copy as the live set were each about
    /// 150 MB).
    pub async fn open_with_history(
        store: &LakeStore,
        pinned: &[PinnedSigner],
    ) -> LakeResult<(Snapshot, History)> {
        let (stored, trust) = Snapshot::judge_whole(store, pinned).await?;
        let mut history = History::default();
        let signer_pinned = !pinned.is_empty();
        let snapshot = Snapshot::assemble(
            stored,
            trust,
            BTreeMap::new(),
            None,
            signer_pinned,
            Some(&mut history),
        );
        Ok((snapshot, history))
    }

    /// Opens the lake from its newest checkpoint that a pinned signer made and that matches the
    /// stored chain, reading only the manifests from that checkpoint's on (see
    /// [`crate::checkpoint`]); checkpoints that cannot be used are findings, and without any
    /// (or without a pinned signer) the whole chain is read as by [`Snapshot::open`].
    /// [`Snapshot::chain`] then holds the trusted manifests since the checkpoint only.
    pub async fn open_latest(store: &LakeStore, pinned: &[PinnedSigner]) -> LakeResult<Snapshot> {
        Snapshot::open_latest_of(store, pinned, Scope::Whole).await
    }

    /// Like [`Snapshot::open_latest`], for a reader that needs the live objects of `scope`
    /// only: from a checkpoint, it reads the part of the checkpoint that holds them, and
    /// [`Snapshot::live`] holds them, the objects of no one session, and some objects of other
    /// sessions (see [`crate::checkpoint::load`]) — never a set to write or delete by. Without
    /// a usable checkpoint, the whole live set.
    pub async fn open_latest_of(
        store: &LakeStore,
        pinned: &[PinnedSigner],
        scope: Scope<'_>,
    ) -> LakeResult<Snapshot> {
        let (usable, skipped) = latest_checkpoint(store, pinned, scope).await?;
        let mut snapshot = match usable {
            Some(start) => {
                let trust = ChainTrust::judge_from(
                    store,
                    &start.files,
                    pinned,
                    None,
                    start.from(),
                    Some(&start.live),
                )
                .await?;
                let stored = Stored::of(&start.files);
                drop(start.files);
                Snapshot::assemble(stored, trust, start.live, Some(start.sequence), true, None)
            }
            None => Snapshot::open(store, pinned).await?,
        };
        snapshot.problems.extend(skipped);
        Ok(snapshot)
    }

    /// Builds the snapshot of `trust` (over `files`), its live set `base` as of manifest
    /// `checkpoint` (the empty set before the chain when `None`) with the trusted manifests
    /// after it applied; with a `history` (a whole chain only), taking them into it as they
    /// are applied (see [`History::apply`]).
    fn assemble(
        stored: Stored,
        trust: ChainTrust,
        mut live: BTreeMap<String, ObjectEntry>,
        checkpoint: Option<u64>,
        signer_pinned: bool,
        history: Option<&mut History>,
    ) -> Snapshot {
        let (mut trusted, findings) = trust.into_trusted_links();
        match history {
            Some(history) if checkpoint.is_none() => {
                trusted = trusted.into_iter().map(|link| history.apply(link, &mut live)).collect();
            }
            _ => {
                let after = trusted
                    .iter()
                    .filter(|link| checkpoint.is_none_or(|seq| link.manifest.body.sequence > seq));
                manifest::apply_links(&mut live, after);
            }
        }
        // A gap in commits does not make the commits around it less trustworthy.
        let mut problems: Vec<Finding> = findings
            .into_iter()
            .map(|scoped| scoped.finding)
            .filter(|finding| finding.kind != "gap")
            .collect();
        problems.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
        problems.dedup();
        Snapshot {
            trusted,
            live,
            problems,
            file_head: stored.file_head,
            manifests: stored.manifests,
            signer_pinned,
            checkpoint,
        }
    }

    /// Returns the sequence of the checkpoint the snapshot starts from, if any.
    pub fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    /// Returns the objects the trusted chain says are live, by path.
    pub fn live(&self) -> &BTreeMap<String, ObjectEntry> {
        &self.live
    }

    /// Takes the trusted chain and its live set out of the snapshot.
    pub fn into_parts(self) -> (Vec<ChainLink>, BTreeMap<String, ObjectEntry>) {
        (self.trusted, self.live)
    }

    /// Takes the live set out of the snapshot.
    pub fn into_live(self) -> BTreeMap<String, ObjectEntry> {
        self.live
    }

    /// Returns the trusted manifests, in chain order.
    pub fn chain(&self) -> &[ChainLink] {
        &self.trusted
    }

    /// Returns the newest trusted manifest.
    pub fn head(&self) -> Option<&ChainLink> {
        self.trusted.last()
    }

    /// Returns the sequence number of the newest manifest file, trusted or not: a commit goes
    /// right after it.
    pub fn file_head(&self) -> Option<u64> {
        self.file_head
    }

    /// Fails, naming it, when the newest manifest file is not a trusted manifest: a writer
    /// would otherwise link its commit to it and build the honest chain on a forged (or
    /// damaged) link, which no later commit could take out again.
    pub fn ensure_head_trusted(&self, command: &str) -> LakeResult<()> {
        let trusted = self.trusted.last().map(|link| link.manifest.body.sequence);
        if self.file_head == trusted {
            return Ok(());
        }
        let newest = self.file_head.map_or_else(|| "none".to_string(), paths::manifest_object);
        let why: Vec<String> = self
            .problems
            .iter()
            .filter(|found| found.path == newest)
            .map(|found| format!("{}: {}", found.kind, found.detail))
            .collect();
        Err(LakeError::new(
            LakeErrorKind::Integrity,
            format!(
                "{command} refused: the newest manifest {newest} is not trusted ({}), and a commit \
                 would link to it; remove it if it is a plant, or trust its signer \
                 (--trust-signing-key, --signing-key), then run `sessionlake verify`",
                if why.is_empty() {
                    "it is not part of the trusted chain".to_string()
                } else {
                    why.join("; ")
                }
            ),
        ))
    }

    /// Returns what makes part of the chain untrusted: each finding names a manifest (or a key
    /// record) and says why. Empty for an intact chain.
    pub fn problems(&self) -> &[Finding] {
        &self.problems
    }

    /// Returns whether signatures were checked against pinned signers (else against the lake's
    /// own key records).
    pub fn signer_pinned(&self) -> bool {
        self.signer_pinned
    }

    /// Returns the lines a reader prints on stderr for what it ignored; none for an intact
    /// chain.
    pub fn ignored(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .problems
            .iter()
            .map(|found| format!("ignored {} ({}): {}", found.path, found.kind, found.detail))
            .collect();
        if !self.signer_pinned && self.manifests > 0 {
            lines.push(
                "no signer is pinned (no keyring, no --signing-key): the lake's own key records \
                 are trusted, and anyone who can write to the lake can add one"
                    .to_string(),
            );
        }
        if self.trusted.is_empty() && self.manifests > 0 {
            lines.push(format!(
                "none of the {} manifests is trusted: is this the lake's keyring, or does a KMS \
                 key sign it (--signing-key)?",
                self.manifests
            ));
        }
        lines
    }

    /// Fails, naming every untrusted manifest and the reason, unless the whole chain is
    /// trusted: for `command`, a writer that deletes or rewrites objects, which must never act
    /// on what a forged or damaged manifest says.
    pub fn ensure_trusted(&self, command: &str) -> LakeResult<()> {
        if self.problems.is_empty() && (self.manifests == 0 || !self.trusted.is_empty()) {
            return Ok(());
        }
        let mut named: Vec<String> = self
            .problems
            .iter()
            .map(|found| format!("{} ({}: {})", found.path, found.kind, found.detail))
            .collect();
        if named.is_empty() {
            named.push(format!("none of the {} manifests is trusted", self.manifests));
        }
        Err(LakeError::new(
            LakeErrorKind::Integrity,
            format!(
                "{command} refused: the manifest chain is not intact, and nothing was deleted or \
                 written: {}; run `sessionlake verify` and resolve it first",
                named.join("; ")
            ),
        ))
    }
}

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

/// A signer the lake's readers and `verify` trust, whatever the lake's `keys/` says.
#[derive(Debug, Clone)]
pub struct PinnedSigner {
    /// Key id, as signatures name it.
    pub key_id: String,
    /// Public key bytes, as the lake's record stores them.
    pub public_key: Vec<u8>,
    /// Where the pin comes from, for messages: `the keyring`, `--signing-key`.
    pub origin: String,
}

impl PinnedSigner {
    /// Pins `signer`, which this process signs with: `origin` says where it comes from.
    pub fn of(signer: &dyn crate::signing::ManifestSigner, origin: &str) -> PinnedSigner {
        PinnedSigner {
            key_id: signer.key_id().to_string(),
            public_key: signer.public_key().to_vec(),
            origin: origin.to_string(),
        }
    }
}

pub fn finding(kind: &'static str, path: &str, detail: String) -> Finding {
    Finding { kind, path: path.to_string(), detail }
}

/// A finding and the commit time it is about (`None`: reported whatever the range).
#[derive(Debug)]
pub struct Scoped {
    pub finding: Finding,
    pub at: Option<i64>,
}

pub fn committed_at(link: &ChainLink) -> Option<i64> {
    manifest::parse_rfc3339_micros(&link.manifest.body.committed_at)
}

fn show_secs(micros: i64) -> String {
    format!("{}s", micros.div_euclid(1_000_000))
}

/// The chain as `verify` understands it.
#[derive(Debug)]
pub struct ChainAnalysis {
    /// Indexes into `parsed` of the manifests that make up the chain, by the sequence they hold.
    pub accepted: Vec<usize>,
    /// Indexes into `parsed` of accepted manifests whose link to the one before is broken.
    pub broken: BTreeSet<usize>,
    /// Indexes into `parsed` of manifests that fork the chain.
    pub forked: BTreeSet<usize>,
    /// Every manifest that parsed, replays and forks included.
    pub parsed: Vec<ChainLink>,
    /// Indexes into `parsed` of byte-for-byte replays (their signatures are not checked again).
    pub replays: BTreeSet<usize>,
    pub findings: Vec<Scoped>,
}

/// A checkpoint a reader starts from: its sequence, the live objects of the scope asked for,
/// and the manifest files from its manifest on.
pub struct StartingPoint {
    /// The manifest the checkpoint is of.
    pub sequence: u64,
    /// The live objects of the scope as of that manifest, by path.
    pub live: BTreeMap<String, ObjectEntry>,
    /// The manifest files from that manifest on.
    pub files: Vec<ManifestFile>,
    /// SHA-256 of that manifest, as the checkpoint names it.
    pub manifest_sha256: String,
}

impl StartingPoint {
    /// Returns what [`ChainTrust::judge_from`] needs of it.
    pub fn from(&self) -> Option<(u64, &str)> {
        Some((self.sequence, self.manifest_sha256.as_str()))
    }
}

/// Returns the newest checkpoint that a pinned signer made, whose manifest is stored with the
/// hash it names and whose parts of `scope` are stored with the hashes it names; and the
/// checkpoints skipped, as findings. None without a pinned signer.
pub async fn latest_checkpoint(
    store: &LakeStore,
    pinned: &[PinnedSigner],
    scope: Scope<'_>,
) -> LakeResult<(Option<StartingPoint>, Vec<Finding>)> {
    let mut skipped = Vec::new();
    if pinned.is_empty() {
        return Ok((None, skipped));
    }
    for (sequence, path) in crate::checkpoint::list(store).await? {
        let mut checkpoint =
            match crate::checkpoint::read_trusted(store, sequence, &path, pinned).await? {
                Ok(checkpoint) => checkpoint,
                Err(why) => {
                    skipped.push(finding("bad-checkpoint", &path, why));
                    continue;
                }
            };
        let named = checkpoint.body.manifest_sha256.clone();
        let files = match checkpoint.body.head.take() {
            // Version 2 carries its manifest: the manifests after it are read, not it (a
            // rewritten or deleted copy of it in the lake is `verify`'s finding).
            Some(head) => {
                let mut files = manifest::read_manifest_files_from(store, sequence + 1).await?;
                let carried = ManifestFile {
                    path: paths::manifest_object(sequence),
                    name_sequence: sequence,
                    sha256: named.clone(),
                    size: head.size,
                    manifest: Ok(head.manifest.into()),
                };
                files.insert(0, carried);
                files
            }
            None => manifest::read_manifest_files_from(store, sequence).await?,
        };
        let why = match files.first() {
            Some(file) if file.name_sequence == sequence && file.sha256 == named => {
                match crate::checkpoint::load(store, checkpoint, scope).await? {
                    Ok(live) => {
                        let start = StartingPoint { sequence, live, files, manifest_sha256: named };
                        return Ok((Some(start), skipped));
                    }
                    Err(why) => why,
                }
            }
            Some(file) if file.name_sequence == sequence => {
                format!("names {} with sha256 {named}, which hashes to {}", file.path, file.sha256)
            }
            _ => format!("names {}, which is not stored", paths::manifest_object(sequence)),
        };
        skipped.push(finding("bad-checkpoint", &path, why));
    }
    Ok((None, skipped))
}

/// Classifies the manifest files: which make up the chain, which are replays, forks or
/// reordered, which sequence numbers are missing, which links are broken, and where the
/// commits are further apart than their idle promise allows.
pub fn analyse_chain(files: &[ManifestFile], now: Option<i64>) -> ChainAnalysis {
    analyse_chain_from(files, now, 0)
}

/// Like [`analyse_chain`], for the part of the chain from manifest `first` on (the manifests
/// before it are vouched for by a checkpoint): `first` itself is not checked for a link.
pub fn analyse_chain_from(files: &[ManifestFile], now: Option<i64>, first: u64) -> ChainAnalysis {
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
        let replayed = if held < first {
            // Read from a checkpoint on, the manifest it would copy (or fork) is not read:
            // it is not part of the chain from the checkpoint, whichever it is.
            Some(format!(
                "holds sequence {held}, before the checkpoint's manifest {first}, stored as \
                 sequence {stored_as}: a copy of an earlier manifest, or a forgery of one"
            ))
        } else {
            let copy_of = by_sha[link.sha256.as_str()].iter().copied().find(|&i| i != index);
            copy_of.map(|original| {
                format!(
                    "a copy of {} (sequence {held}, committed {}) stored as sequence {stored_as}",
                    parsed[original].path, link.manifest.body.committed_at
                )
            })
        };
        if let Some(detail) = replayed {
            replays.insert(index);
            let replay = finding("replayed-manifest", &link.path, detail);
            findings.push(Scoped { finding: replay, at });
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

    let mut expected = first;
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
        let stopped = parsed[newest].manifest.body.reason.as_deref() == Some(manifest::STOP_REASON);
        let detail = if stopped {
            format!(
                "is the newest manifest, a clean stop whose writer promised to be back, and \
                 nothing was committed in the {gap} since (the service was not restarted, or \
                 the manifests after it were deleted)"
            )
        } else {
            format!(
                "is the newest manifest, and nothing was committed in the {gap} since (the \
                 newest manifests were deleted, or the writer stopped without a clean \
                 shutdown)"
            )
        };
        findings
            .push(Scoped { finding: finding("gap", &parsed[newest].path, detail), at: Some(now) });
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

/// Returns the indexes of the accepted manifests that are trusted, given the ones whose
/// signature failed.
fn trusted_of(analysis: &ChainAnalysis, bad_signatures: &BTreeSet<usize>) -> BTreeSet<usize> {
    analysis
        .accepted
        .iter()
        .copied()
        .filter(|index| {
            !bad_signatures.contains(index)
                && !analysis.broken.contains(index)
                && !analysis.forked.contains(index)
        })
        .collect()
}

/// One public-key record as stored: its path, the SHA-256 of its bytes, and what it says.
struct KeyRecordFile {
    path: String,
    sha256: String,
    record: PublicKeyRecord,
}

/// A record kept (by path), or the finding of one left out.
type Vouched = (Option<(String, PublicKeyRecord)>, Option<Scoped>);

/// Keeps the public-key records that may narrow what the signatures are checked against: every
/// record of a key that is not pinned, and a record of a pinned key only if the chain committed
/// it (its path and bytes in `committed_before` or added by a manifest trusted without such
/// records). A pinned key is the reader's own trust anchor: a record anyone can plant in the
/// lake (a `valid_until` in the past, a `valid_from` in the future) must not make every
/// manifest it signed untrusted. Each record left out comes with its finding.
fn vouched_records(
    analysis: &ChainAnalysis,
    records: Vec<KeyRecordFile>,
    pinned: &[PinnedSigner],
    vouched: Option<usize>,
    committed_before: Option<&BTreeMap<String, ObjectEntry>>,
) -> Vec<Vouched> {
    let is_pinned =
        |file: &KeyRecordFile| pinned.iter().any(|pin| pin.key_id == file.record.key_id);
    if !records.iter().any(is_pinned) {
        return records.into_iter().map(|file| (Some((file.path, file.record)), None)).collect();
    }
    // The chain as the pins alone (and the other keys' records) make it.
    let unpinned = records
        .iter()
        .filter(|file| !is_pinned(file))
        .map(|file| (file.path.clone(), file.record.clone()));
    let keys = manifest::merge_key_records(unpinned);
    let bad = check_signatures(analysis, keys, pinned, vouched, &mut Vec::new());
    let trusted = trusted_of(analysis, &bad);
    let mut committed: BTreeSet<(&str, &str)> = committed_before
        .into_iter()
        .flat_map(|live| live.values())
        .map(|entry| (entry.path.as_str(), entry.sha256.as_str()))
        .collect();
    committed.extend(trusted.iter().flat_map(|&index| {
        analysis.parsed[index]
            .manifest
            .body
            .added
            .iter()
            .map(|entry| (entry.path.as_str(), entry.sha256.as_str()))
    }));
    records
        .into_iter()
        .map(|file| {
            if !is_pinned(&file) || committed.contains(&(file.path.as_str(), file.sha256.as_str()))
            {
                return (Some((file.path, file.record)), None);
            }
            let detail = format!(
                "a record of pinned key {} that no trusted commit names: ignored (the pin is \
                 checked without it)",
                file.record.key_id
            );
            let ignored =
                Scoped { finding: finding("unknown-signer", &file.path, detail), at: None };
            (None, Some(ignored))
        })
        .collect()
}

/// Reads the lake's public-key records, merged by key id; records that do not parse are
/// findings.
pub async fn read_key_records(
    store: &LakeStore,
    findings: &mut Vec<Scoped>,
) -> LakeResult<BTreeMap<String, KeyValidity>> {
    read_key_records_for(store, &[], findings).await
}

/// Like [`read_key_records`], leaving out (as findings) the records that name a pinned key
/// with another public key than the pin's: a planted record must not make a pinned key
/// unusable for every command.
pub async fn read_key_records_for(
    store: &LakeStore,
    pinned: &[PinnedSigner],
    findings: &mut Vec<Scoped>,
) -> LakeResult<BTreeMap<String, KeyValidity>> {
    let records = read_key_record_files(store, pinned, findings).await?;
    Ok(manifest::merge_key_records(records.into_iter().map(|file| (file.path, file.record))))
}

/// Reads the lake's public-key records as stored (see [`read_key_records_for`]).
async fn read_key_record_files(
    store: &LakeStore,
    pinned: &[PinnedSigner],
    findings: &mut Vec<Scoped>,
) -> LakeResult<Vec<KeyRecordFile>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut records = Vec::new();
    // Session key records live in keys/sessions/, and are checked as committed objects.
    for (path, size) in store.list_shallow(paths::KEYS_DIR).await? {
        if path.ends_with(paths::SESSION_KEY_EXTENSION) {
            continue;
        }
        // A public-key record is a few hundred bytes: anything far larger, or that cannot be
        // read for good (gone since the listing, refused), is a finding, never a stop.
        let unusable =
            |why: String| Scoped { finding: finding("bad-signature", &path, why), at: None };
        if size > MAX_KEY_RECORD_BYTES {
            findings.push(unusable(format!("{size} bytes: not a public key record")));
            continue;
        }
        let bytes = match store.get(&path).await {
            Ok(bytes) => bytes,
            Err(error) if !error.is_retryable() => {
                findings.push(unusable(format!("cannot be read: {error}")));
                continue;
            }
            Err(error) => return Err(error),
        };
        match serde_json::from_slice::<PublicKeyRecord>(&bytes) {
            Ok(record) => {
                let pin = pinned.iter().find(|pin| pin.key_id == record.key_id);
                let conflicting = pin.is_some_and(|pin| {
                    b64.decode(&record.public_key).ok().as_deref() != Some(&pin.public_key[..])
                });
                if conflicting {
                    findings.push(Scoped {
                        finding: finding(
                            "unknown-signer",
                            &path,
                            format!(
                                "names another public key for pinned key {}: ignored",
                                record.key_id
                            ),
                        ),
                        at: None,
                    });
                } else {
                    let sha256 = crate::store::sha256_hex(&bytes);
                    records.push(KeyRecordFile { path, sha256, record });
                }
            }
            Err(error) => findings.push(Scoped {
                finding: finding("bad-signature", &path, format!("not a public key: {error}")),
                at: None,
            }),
        }
    }
    Ok(records)
}

/// Largest public-key record read (an ECDSA record is under 1 KiB).
const MAX_KEY_RECORD_BYTES: u64 = 64 * 1024;

/// Checks the signature of every manifest but replays, against pinned signers when given;
/// returns the indexes (into `analysis.parsed`) of the manifests whose signature fails.
pub fn check_signatures(
    analysis: &ChainAnalysis,
    mut keys: BTreeMap<String, KeyValidity>,
    pinned: &[PinnedSigner],
    vouched: Option<usize>,
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
        if analysis.replays.contains(&index) || vouched == Some(index) {
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

/// Why a manifest is not trusted, for the findings about the objects it names.
pub fn distrust_reason(
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
                manifest: Ok(Manifest { body, signature }.into()),
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

    /// Read from a checkpoint on, an earlier manifest stored again as the newest is named a
    /// replay and not taken into the chain, and no manifest is said to be missing.
    #[test]
    fn test_a_replay_of_a_manifest_before_the_checkpoint_is_named() {
        let mut files = chain(10, None);
        let mut copy = files[2].manifest.as_ref().expect("parsed").clone();
        std::sync::Arc::make_mut(&mut copy).body.reason = None;
        files.push(ManifestFile {
            path: paths::manifest_object(10),
            name_sequence: 10,
            sha256: "sha-2".into(),
            size: 1,
            manifest: Ok(copy),
        });
        let resumed = &files[5..];
        let analysis = analyse_chain_from(resumed, None, 5);
        let found: Vec<(&str, &str)> = analysis
            .findings
            .iter()
            .map(|scoped| (scoped.finding.kind, scoped.finding.path.as_str()))
            .collect();
        let stored = paths::manifest_object(10);
        assert_eq!(found, vec![("replayed-manifest", stored.as_str())]);
        let accepted: Vec<u64> = analysis
            .accepted
            .iter()
            .map(|&index| analysis.parsed[index].manifest.body.sequence)
            .collect();
        assert_eq!(accepted, (5..10).collect::<Vec<u64>>());
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
            std::sync::Arc::make_mut(manifest).body.previous_sha256 = Some("sha-other".into());
        }
        assert_eq!(kinds(&broken, None), vec![pair("broken-link", 3)], "broken");

        // A commit time that goes backwards along the chain.
        let mut backdated = intact.clone();
        if let Ok(manifest) = &mut backdated[3].manifest {
            std::sync::Arc::make_mut(manifest).body.committed_at =
                "2020-01-01T00:00:00+00:00".into();
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
        // A newest clean stop that promised its restart says so when the promise ran out.
        let mut stopped = chain(3, Some(300));
        if let Ok(manifest) = &mut stopped[2].manifest {
            std::sync::Arc::make_mut(manifest).body.reason =
                Some(manifest::STOP_REASON.to_string());
        }
        let found = analyse_chain(&stopped, Some(START + 20 * MINUTE)).findings;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].finding.detail.contains("a clean stop"), "{:?}", found[0].finding);
        let mut holed = chain(4, Some(60));
        holed.remove(2);
        let found = kinds(&holed, None);
        assert!(found.contains(&pair("missing-manifest", 2)), "{found:?}");
        assert!(!found.contains(&pair("gap", 3)), "{found:?}");
    }
}
