//! What a writer needs of the trusted chain's past, kept without the chain's manifests.
//!
//! A one-shot writer (retention, shred, `compact`) asks the chain a few questions besides
//! which objects are live: what was ever committed and when (a sweep's "uncommitted", a
//! compaction's age), what was removed and by which kind of commit (a sweep's "removed",
//! the superseded versions kept as history), which compacted files once held a session, and
//! which quarantined inputs are still live since when. [`History`] answers them from an index
//! built in one pass over the chain, and keeps only the newest manifest, without its lists:
//! at 10 M commands the parsed chain is a copy of every entry ever committed, as large as
//! the live set itself, which such a writer held beside it for its whole run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::paths;

use crate::manifest::{ChainLink, parse_rfc3339_micros};

/// The answers a writer needs of a trusted chain (see the module documentation), built by
/// [`History::of`] or [`History::apply`] and kept current by [`History::push`].
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Sequence and action of each manifest, in chain order.
    links: Vec<(u64, CommitAction)>,
    /// The newest manifest, its lists of objects left out.
    head: Option<ChainLink>,
    /// Every path a manifest added, with the commit time (µs since the epoch; `i64::MAX` when
    /// the manifest's time does not parse) of the first that did.
    first_added: HashMap<String, i64>,
    /// Every path a manifest removed: how (see [`Removal`]).
    removals: HashMap<String, Removal>,
    /// Every quarantined input a manifest added, with that commit's time, in chain order.
    quarantined: Vec<(Option<i64>, ObjectEntry)>,
    /// Compacted files and file key records as the last manifest that added each named them.
    compacted: BTreeMap<String, ObjectEntry>,
}

/// How the chain removed one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Removal {
    /// The actions of every manifest that removed it, a bit each ([`action_bit`]).
    actions: u16,
    /// Its entry, when the last event of the path was a removal by an ingest commit
    /// (a version replaced) of an object of one session. Boxed: a compaction removes
    /// 100,000 files at 10 M commands, none of them replaced versions.
    replaced: Option<Box<ObjectEntry>>,
}

fn action_bit(action: CommitAction) -> u16 {
    // Every action named: a new one gets its own bit here.
    1 << match action {
        CommitAction::Ingest => 0,
        CommitAction::Idle => 1,
        CommitAction::Retention => 2,
        CommitAction::Hold => 3,
        CommitAction::Shred => 4,
        CommitAction::Rekey => 5,
        CommitAction::Compact => 6,
    }
}

impl History {
    /// Returns the history of `chain` (copying what it keeps of it).
    pub fn of(chain: &[ChainLink]) -> History {
        let mut history = History::default();
        for link in chain {
            history.note(link);
        }
        history.head = chain.last().map(without_objects);
        history
    }

    /// Takes the next manifest of the chain into the history.
    pub fn push(&mut self, link: ChainLink) {
        self.note(&link);
        self.head = Some(without_objects(&link));
    }

    /// Takes the next manifest of the chain into the history and applies it to `live` (as
    /// `manifest::apply_links` does), its added entries moved into `live` when no one else
    /// holds the manifest; returns the manifest without its lists. A writer's snapshot is made
    /// so: the chain and a copy of it as the live set were both held at its opening.
    pub fn apply(
        &mut self,
        link: ChainLink,
        live: &mut BTreeMap<String, ObjectEntry>,
    ) -> ChainLink {
        self.note(&link);
        let stripped = without_objects(&link);
        match Arc::try_unwrap(link.manifest) {
            // The manifest is ours alone: its entries move, in apply_links' order.
            Ok(manifest) => {
                for removed in &manifest.body.removed {
                    live.remove(&removed.path);
                }
                for added in manifest.body.added {
                    live.insert(added.path.clone(), added);
                }
            }
            Err(shared) => {
                let link = ChainLink { manifest: shared, ..stripped.clone() };
                crate::manifest::apply_links(live, std::iter::once(&link));
            }
        }
        self.head = Some(stripped.clone());
        stripped
    }

    fn note(&mut self, link: &ChainLink) {
        let body = &link.manifest.body;
        let at = parse_rfc3339_micros(&body.committed_at);
        self.links.push((body.sequence, body.action));
        // Removed before added, as the live set applies a manifest.
        for entry in &body.removed {
            let removal = self.removals.entry(entry.path.clone()).or_default();
            removal.actions |= action_bit(body.action);
            let replaced = body.action == CommitAction::Ingest && entry.sessions.len() == 1;
            removal.replaced = replaced.then(|| Box::new(entry.clone()));
        }
        for entry in &body.added {
            if let Some(removal) = self.removals.get_mut(&entry.path) {
                removal.replaced = None;
            }
            if !self.first_added.contains_key(&entry.path) {
                self.first_added.insert(entry.path.clone(), at.unwrap_or(i64::MAX));
            }
            if entry.kind == ObjectKind::Quarantine {
                self.quarantined.push((at, entry.clone()));
            }
            if paths::is_compacted(&entry.path) || paths::is_file_key_record(&entry.path) {
                self.compacted.insert(entry.path.clone(), entry.clone());
            }
        }
    }

    /// Returns the newest manifest, without its lists of objects.
    pub fn head(&self) -> Option<&ChainLink> {
        self.head.as_ref()
    }

    /// Returns whether the history holds every manifest from sequence 0 on, in order, up to
    /// `file_head` (the newest manifest file, trusted or not).
    pub fn is_whole_up_to(&self, file_head: Option<u64>) -> bool {
        let gapless =
            self.links.iter().enumerate().all(|(at, (sequence, _))| *sequence == at as u64);
        gapless && self.links.last().map(|(sequence, _)| *sequence) == file_head
    }

    /// Returns the time (µs since the epoch) of the first commit that added `path`:
    /// `i64::MAX` when that commit's time does not parse, `None` when none did.
    pub fn first_added(&self, path: &str) -> Option<i64> {
        self.first_added.get(path).copied()
    }

    /// Returns whether any manifest added `path`.
    pub fn was_added(&self, path: &str) -> bool {
        self.first_added.contains_key(path)
    }

    /// Returns the paths a manifest whose action is one of `actions` removed.
    pub fn removed_by<'a>(
        &'a self,
        actions: &'a [CommitAction],
    ) -> impl Iterator<Item = &'a str> + 'a {
        let mask = actions.iter().fold(0, |mask, action| mask | action_bit(*action));
        self.removals
            .iter()
            .filter(move |(_, removal)| removal.actions & mask != 0)
            .map(|(path, _)| path.as_str())
    }

    /// Returns the entries whose last event was their removal by an ingest commit (a version
    /// replaced by another delivery), of objects of one session each, in no order.
    pub fn replaced(&self) -> impl Iterator<Item = &ObjectEntry> {
        self.removals.values().filter_map(|removal| removal.replaced.as_deref())
    }

    /// Returns the quarantined inputs the manifests added, each with its commit's time
    /// (`None` when it does not parse), in chain order.
    pub fn quarantined(&self) -> impl Iterator<Item = (Option<i64>, &ObjectEntry)> {
        self.quarantined.iter().map(|(at, entry)| (*at, entry))
    }

    /// Returns the compacted files and file key records the manifests added, by path, each as
    /// the last manifest that added it named it.
    pub fn compacted(&self) -> &BTreeMap<String, ObjectEntry> {
        &self.compacted
    }
}

/// Returns `link` with its manifest's lists of objects left out.
fn without_objects(link: &ChainLink) -> ChainLink {
    ChainLink {
        path: link.path.clone(),
        sha256: link.sha256.clone(),
        size: link.size,
        manifest: Arc::new(link.manifest.without_objects()),
    }
}

#[cfg(test)]
mod tests {
    use sessionlake_schemas::manifest::{Manifest, ManifestBody, ManifestSignature};

    use super::*;

    fn entry(path: &str, kind: ObjectKind, sessions: &[&str], sha256: &str) -> ObjectEntry {
        let sessions = sessions.iter().map(|id| id.to_string()).collect();
        ObjectEntry::new(path.to_string(), 1, sha256.to_string(), kind, sessions)
    }

    fn link(
        sequence: u64,
        committed_at: &str,
        action: CommitAction,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
    ) -> ChainLink {
        let body = ManifestBody {
            version: 1,
            sequence,
            previous_sha256: None,
            committed_at: committed_at.to_string(),
            writer_id: "test".to_string(),
            action,
            reason: None,
            added,
            removed,
            idle_period_secs: None,
        };
        let signature =
            ManifestSignature { algorithm: "a".into(), key_id: "k".into(), value: "v".into() };
        ChainLink {
            path: paths::manifest_object(sequence),
            sha256: format!("sha-{sequence}"),
            size: 10 + sequence,
            manifest: Arc::new(Manifest { body, signature }),
        }
    }

    /// A chain that adds, replaces, compacts, removes and adds again.
    fn chain() -> Vec<ChainLink> {
        use CommitAction::{Compact, Ingest, Retention};
        let a1 = entry("commands/dt=2026-03-14/a.s3.v1.parquet", ObjectKind::Commands, &["a"], "1");
        let a2 = entry("commands/dt=2026-03-14/a.s3.v2.parquet", ObjectKind::Commands, &["a"], "2");
        let b1 = entry("commands/dt=2026-03-14/b.s3.v1.parquet", ObjectKind::Commands, &["b"], "3");
        let c1 = entry("raw/dt=2026-03-14/c.s3.v1.zst.sle", ObjectKind::Raw, &["c"], "4");
        let both = entry(
            "commands/dt=2026-03-14/compact-1.parquet",
            ObjectKind::Commands,
            &["a", "b"],
            "5",
        );
        let key = entry(
            "keys/files/commands/dt=2026-03-14/compact-1.key.json",
            ObjectKind::Other,
            &[],
            "6",
        );
        let key_again = ObjectEntry { sha256: "7".into(), ..key.clone() };
        let quarantined = entry("quarantine/s3/x.v1.sle", ObjectKind::Quarantine, &[], "8");
        let d1 = entry("raw/dt=2026-03-14/d.s3.v1.zst.sle", ObjectKind::Raw, &["d"], "9");
        vec![
            link(
                0,
                "2026-03-14T00:00:00Z",
                Ingest,
                vec![a1.clone(), b1.clone(), c1.clone(), d1.clone()],
                vec![],
            ),
            // a's v1 replaced by v2 (and d's raw by nothing): history; then the quarantined
            // input, at a time that does not parse.
            link(1, "2026-03-15T00:00:00Z", Ingest, vec![a2.clone()], vec![a1.clone(), d1.clone()]),
            link(2, "never", Ingest, vec![quarantined, a1.clone()], vec![]),
            // a1 came back (added again) and went again by retention: no longer a replaced
            // version; c's raw went by an ingest commit too, last.
            link(3, "2026-03-16T00:00:00Z", Retention, vec![], vec![a1]),
            link(4, "2026-03-17T00:00:00Z", Compact, vec![both.clone(), key], vec![a2, b1]),
            // d's raw listed again (live again: no longer a replaced version).
            link(5, "2026-03-18T00:00:00Z", CommitAction::Rekey, vec![key_again, d1], vec![]),
            link(6, "2026-03-19T00:00:00Z", Ingest, vec![], vec![c1, both]),
        ]
    }

    #[test]
    fn test_history_answers_what_the_chain_says() {
        let chain = chain();
        let history = History::of(&chain);
        let micros = |text: &str| parse_rfc3339_micros(text).expect("time");

        // The first commit that added a path, whatever came after.
        let a1 = "commands/dt=2026-03-14/a.s3.v1.parquet";
        assert_eq!(history.first_added(a1), Some(micros("2026-03-14T00:00:00Z")));
        assert_eq!(history.first_added("quarantine/s3/x.v1.sle"), Some(i64::MAX));
        assert_eq!(history.first_added("raw/dt=2026-03-14/nothing.zst.sle"), None);
        assert!(history.was_added("commands/dt=2026-03-14/compact-1.parquet"));

        let mut by_retention: Vec<&str> = history.removed_by(&[CommitAction::Retention]).collect();
        by_retention.sort();
        assert_eq!(by_retention, [a1]);
        let mut by_compact: Vec<&str> =
            history.removed_by(&[CommitAction::Compact, CommitAction::Hold]).collect();
        by_compact.sort();
        assert_eq!(
            by_compact,
            ["commands/dt=2026-03-14/a.s3.v2.parquet", "commands/dt=2026-03-14/b.s3.v1.parquet"]
        );
        assert_eq!(history.removed_by(&[]).count(), 0);

        // Replaced: last removed by an ingest commit, of one session. a1 was added again and
        // then removed by retention, d's raw added again; the compacted file holds two
        // sessions.
        let mut replaced: Vec<&str> = history.replaced().map(|entry| entry.path.as_str()).collect();
        replaced.sort();
        assert_eq!(replaced, ["raw/dt=2026-03-14/c.s3.v1.zst.sle"]);

        let quarantined: Vec<(Option<i64>, &str)> =
            history.quarantined().map(|(at, entry)| (at, entry.path.as_str())).collect();
        assert_eq!(quarantined, [(None, "quarantine/s3/x.v1.sle")]);

        // Compacted files and file key records, as last added (the rekey's record).
        let compacted: Vec<(&str, &str)> = history
            .compacted()
            .iter()
            .map(|(path, entry)| (path.as_str(), entry.sha256.as_str()))
            .collect();
        assert_eq!(
            compacted,
            [
                ("commands/dt=2026-03-14/compact-1.parquet", "5"),
                ("keys/files/commands/dt=2026-03-14/compact-1.key.json", "7"),
            ]
        );

        // The head, without its lists.
        let head = history.head().expect("head");
        assert_eq!(
            (head.manifest.body.sequence, head.sha256.as_str(), head.size),
            (6, "sha-6", 16)
        );
        assert!(head.manifest.body.removed.is_empty() && head.manifest.body.added.is_empty());
        assert_eq!(head.manifest.signature, chain[6].manifest.signature);

        assert!(history.is_whole_up_to(Some(6)));
        assert!(!history.is_whole_up_to(Some(7)), "a newer manifest file, not trusted");
        assert!(!History::of(&chain[1..]).is_whole_up_to(Some(6)), "from a checkpoint");
        let gap: Vec<ChainLink> =
            chain.iter().filter(|link| link.manifest.body.sequence != 3).cloned().collect();
        assert!(!History::of(&gap).is_whole_up_to(Some(6)), "a gap");
        assert!(History::default().is_whole_up_to(None));
    }

    #[test]
    fn test_history_applied_or_pushed_agrees_with_history_of_the_chain() {
        let chain = chain();
        let of = History::of(&chain);
        let mut pushed = History::default();
        pushed.apply(chain[0].clone(), &mut BTreeMap::new());
        for link in chain[1..].iter().cloned() {
            pushed.push(link);
        }
        // Applied: the manifests are the history's alone (entries moved into the live set),
        // but for the first, which the chain still holds (entries copied).
        let mut applied = History::default();
        let mut live = BTreeMap::new();
        let mut links = chain.clone().into_iter();
        let shared = links.next().expect("a link");
        let stripped: Vec<ChainLink> = std::iter::once(applied.apply(shared, &mut live))
            .chain(links.map(|link| {
                let owned = ChainLink { manifest: Arc::new((*link.manifest).clone()), ..link };
                applied.apply(owned, &mut live)
            }))
            .collect();
        assert_eq!(live, crate::manifest::live_objects(&chain));
        for (stripped, link) in stripped.iter().zip(&chain) {
            assert_eq!(*stripped.manifest, link.manifest.without_objects());
            assert_eq!((&stripped.sha256, stripped.size), (&link.sha256, link.size));
        }
        for other in [&pushed, &applied] {
            assert_eq!(other.links, of.links);
            assert_eq!(other.first_added, of.first_added);
            assert_eq!(other.removals, of.removals);
            assert_eq!(other.quarantined, of.quarantined);
            assert_eq!(other.compacted, of.compacted);
            let head = |history: &History| history.head.as_ref().map(|head| head.manifest.clone());
            assert_eq!(head(other), head(&of));
        }
    }
}
