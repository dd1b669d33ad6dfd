//! The planner: what a policy removes from a snapshot of the live set as of a time, and why.
//! Pure functions over what [`crate::live`] read (sessions, `access` files), the trusted chain
//! and the holds in force: [`plan`] for sessions, [`plan_access`] for CloudTrail `access`
//! files, [`plan_quarantine`] for quarantined inputs. Each returns one [`Planned`] line per
//! session or object that goes (or that a hold keeps).

use std::collections::BTreeMap;

use serde::Serialize;
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_storage::history::History;

use crate::holds::ActiveHold;
use crate::live::{AccessEvent, LiveAccessFile, LiveSession};
use crate::policy::{Action, DAY_MICROS, Decision, Policy, Subject};

/// What expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expiry {
    /// The whole session: rows, original, keys, and its replaced versions.
    Session,
    /// Only the original transcript (and replaced versions' originals).
    Raw,
    /// An `access` file, every event of it (`session_id` holds its path).
    Access,
    /// Some events of an `access` file: it is rewritten without them.
    AccessEvents,
    /// A quarantined input (`session_id` holds its path).
    Quarantine,
}

/// One line of a plan; its JSON is the `planned`/`held` record of `retention plan --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The session, or the path of the object (an `access` file, a quarantined input).
    pub session_id: String,
    /// What expires.
    pub expires: Expiry,
    /// Delete or shred (a session's whole expiry only; delete otherwise).
    pub action: Action,
    /// The rule that decided (`shred` for a shred's rewrites).
    pub rule: String,
    /// Whole days from the session's (or event's, or commit's) time to the plan's time.
    pub age_days: i64,
    /// Whole days the rule keeps it.
    pub keep_days: i64,
    /// Who the session is about.
    pub principal: Option<String>,
    /// Where.
    pub target: Option<String>,
    /// Objects removed or rewritten.
    pub objects: usize,
    /// Bytes of the objects removed.
    pub bytes: u64,
    /// Events of an `access` file that go, and how many it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_removed: Option<usize>,
    /// How many events the `access` file has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_total: Option<usize>,
    /// Other rules that applied with different terms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// The hold that keeps it (nothing is done then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// For an access file rewritten: a hold that keeps some of its due events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_held_by: Option<String>,
    /// Every object that goes, by path.
    #[serde(serialize_with = "paths_of")]
    pub remove: Vec<ObjectEntry>,
    /// Compacted files to rewrite without the session (whole-session expiry only).
    #[serde(skip)]
    pub rewrite: Vec<ObjectEntry>,
    /// For an access file rewritten: the events it keeps.
    #[serde(skip)]
    pub keep_events: Option<Vec<String>>,
}

fn paths_of<S: serde::Serializer>(
    entries: &[ObjectEntry],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(entries.iter().map(|entry| entry.path.as_str()))
}

impl Planned {
    /// A line about a single object (an access file, a quarantined input) with `events`.
    pub fn object(entry: &ObjectEntry, expires: Expiry, events: usize) -> Planned {
        Planned {
            session_id: entry.path.clone(),
            expires,
            action: Action::Delete,
            rule: String::new(),
            age_days: 0,
            keep_days: 0,
            principal: None,
            target: None,
            objects: 1,
            bytes: entry.size,
            events_removed: None,
            events_total: Some(events),
            conflicts: Vec::new(),
            remove: vec![entry.clone()],
            held_by: None,
            events_held_by: None,
            keep_events: None,
            rewrite: Vec::new(),
        }
    }

    /// What the line does, in words: the plan's first column and each removed object's note.
    pub fn what(&self) -> String {
        match (self.held_by.as_deref(), &self.expires) {
            (Some(_), _) => "keep (held)".to_string(),
            (None, Expiry::Session) => self.action.as_str().to_string(),
            (None, Expiry::Raw) => "delete raw".to_string(),
            (None, Expiry::Access | Expiry::Quarantine) => "delete".to_string(),
            (None, Expiry::AccessEvents) => "rewrite".to_string(),
        }
    }
}

/// Plans the sessions as of `now` (µs): a session goes whole when its rows are due (by the
/// action its rules decide), else only its original when that is due; a line a hold covers is
/// kept (`held_by`), and a session with nothing left to remove has no line.
pub fn plan(
    policy: &Policy,
    sessions: &[LiveSession],
    holds: &[ActiveHold],
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for session in sessions {
        let decision = policy.decide(&session.subject);
        let age_days = (now - session.time).div_euclid(DAY_MICROS);
        let (expires, keep) = if now >= decision.commands.end(session.time) {
            (Expiry::Session, decision.commands)
        } else if now >= decision.raw.end(session.time) {
            (Expiry::Raw, decision.raw)
        } else {
            continue;
        };
        let remove: Vec<ObjectEntry> = session
            .objects
            .iter()
            .chain(&session.superseded)
            .filter(|entry| expires == Expiry::Session || entry.kind == ObjectKind::Raw)
            .cloned()
            .collect();
        let rewrite =
            if expires == Expiry::Session { session.compacted.clone() } else { Vec::new() };
        if remove.is_empty() && rewrite.is_empty() {
            // The original went earlier; the rows are not due yet.
            continue;
        }
        let held_by = holds
            .iter()
            .find(|hold| hold.covers(&session.session_id, &session.subject))
            .map(|held| held.hold.id.clone());
        planned.push(Planned {
            session_id: session.session_id.clone(),
            action: if expires == Expiry::Session { decision.action } else { Action::Delete },
            expires,
            rule: decision.rule,
            age_days,
            keep_days: keep.days_from(session.time),
            principal: session.subject.principal.clone(),
            target: session.subject.target.clone(),
            objects: remove.len() + rewrite.len(),
            bytes: remove.iter().map(|entry| entry.size).sum(),
            events_removed: None,
            events_total: None,
            conflicts: decision.conflicts,
            held_by,
            events_held_by: None,
            remove,
            keep_events: None,
            rewrite,
        });
    }
    planned
}

/// Plans the `access` files event by event: an event goes when it is older than the longest
/// period its subjects get (their rows' period), unless a hold covers it. A file all of whose
/// events go is deleted; one that keeps some is rewritten without the others.
pub fn plan_access(
    policy: &Policy,
    files: &[LiveAccessFile],
    holds: &[ActiveHold],
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for file in files {
        let mut due: Vec<(&AccessEvent, Decision)> = Vec::new();
        let mut held: Option<String> = None;
        let mut kept = Vec::new();
        for event in &file.events {
            let decision = event
                .subjects
                .iter()
                .map(|subject| policy.decide(subject))
                .max_by_key(|decision| decision.commands)
                .unwrap_or_else(|| policy.decide(&Subject::default()));
            if now < decision.commands.end(event.time) {
                kept.push(event.event_id.clone());
                continue;
            }
            let hold = holds.iter().find(|hold| {
                event.subjects.iter().any(|subject| {
                    hold.covers(event.session.as_deref().unwrap_or_default(), subject)
                })
            });
            match hold {
                Some(hold) => {
                    held.get_or_insert_with(|| hold.hold.id.clone());
                    kept.push(event.event_id.clone());
                }
                None => due.push((event, decision)),
            }
        }
        // The line names the newest due event's rule and age: the last to become due.
        let Some((newest, decision)) = due.iter().max_by_key(|(event, _)| event.time).cloned()
        else {
            if let Some(hold) = held {
                let mut line = Planned::object(&file.entry, Expiry::Access, file.events.len());
                line.held_by = Some(hold);
                planned.push(line);
            }
            continue;
        };
        let removed = due.len();
        let (expires, keep) = if kept.is_empty() {
            (Expiry::Access, None)
        } else {
            (Expiry::AccessEvents, Some(kept))
        };
        let mut line = Planned::object(&file.entry, expires, file.events.len());
        line.rule = decision.rule.clone();
        line.age_days = (now - newest.time).div_euclid(DAY_MICROS);
        line.keep_days = decision.commands.days_from(newest.time);
        line.events_removed = Some(removed);
        line.keep_events = keep;
        line.events_held_by = held;
        planned.push(line);
    }
    planned
}

/// Plans quarantined inputs: nobody can say whose they are, so they keep the default rule's
/// period for originals, counted from the commit that added them.
pub fn plan_quarantine(
    policy: &Policy,
    history: &History,
    live: &BTreeMap<String, ObjectEntry>,
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for (time, entry) in history.quarantined() {
        let Some(time) = time else { continue };
        let still_live = live.get(&entry.path).is_some_and(|found| found.sha256 == entry.sha256);
        if !still_live || now < policy.default.raw.end(time) {
            continue;
        }
        let mut line = Planned::object(entry, Expiry::Quarantine, 0);
        line.rule = policy.default.name.clone();
        line.age_days = (now - time).div_euclid(DAY_MICROS);
        line.keep_days = policy.default.raw.days_from(time);
        line.events_total = None;
        planned.push(line);
    }
    planned
}

/// Each removed object with a note of why: the line's action, rule and ages.
pub fn noted(line: &Planned) -> impl Iterator<Item = ObjectEntry> + '_ {
    line.remove.iter().map(move |entry| {
        let events = match (line.events_removed, line.events_total) {
            (Some(removed), Some(total)) if removed < total => {
                format!(", {removed} of {total} events")
            }
            _ => String::new(),
        };
        let note = if line.rule == "shred" {
            format!("{}{events}", line.what())
        } else {
            format!(
                "{}: rule {}, {}d old, kept {}d{events}",
                line.what(),
                line.rule,
                line.age_days,
                line.keep_days
            )
        };
        ObjectEntry { note: Some(note), ..entry.clone() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holds::Hold;
    use crate::policy::tests::{POLICY, micros};
    use crate::tests::entry;

    const NOW: &str = "2026-03-14T00:00:00Z";
    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
    const CONTRACTOR: &str = "arn:aws:iam::111122223333:user/contractor-bob";

    /// A session `s` started at `start` by `principal` on `target`, with its four objects, a
    /// replaced version's original, and a compacted file holding its rows.
    fn session(principal: &str, target: &str, start: &str) -> LiveSession {
        let own = |path: &str, kind| entry(path, kind, &["s"], 100);
        LiveSession {
            session_id: "s".to_string(),
            subject: Subject {
                principal: Some(principal.to_string()),
                target: Some(target.to_string()),
                account: Some("111122223333".to_string()),
            },
            time: micros(start),
            objects: vec![
                own("raw/dt=d/s.s3.v2.zst.sle", ObjectKind::Raw),
                own("commands/dt=d/s.s3.v2.parquet", ObjectKind::Commands),
                own("sessions/dt=d/s.s3.v2.parquet", ObjectKind::Sessions),
                own("keys/sessions/s.s3.v2.key.json", ObjectKind::SessionKey),
            ],
            superseded: vec![own("raw/dt=d/s.s3.v1.zst.sle", ObjectKind::Raw)],
            compacted: vec![entry(
                "commands/dt=d/compact-v3.parquet",
                ObjectKind::Commands,
                &["s", "t"],
                100,
            )],
        }
    }

    fn hold(session: Option<&str>, principal: Option<&str>, target: Option<&str>) -> ActiveHold {
        ActiveHold::new(Hold {
            id: "hold-1".to_string(),
            created_at: NOW.to_string(),
            created_by: "test@host".to_string(),
            reason: "case 7".to_string(),
            session: session.map(str::to_string),
            principal: principal.map(str::to_string),
            target: target.map(str::to_string),
        })
        .expect("hold")
    }

    /// What one plan line says, compared as a whole.
    #[derive(Debug, PartialEq, Eq)]
    struct Line {
        expires: Expiry,
        action: Action,
        rule: String,
        held_by: Option<String>,
        age_days: i64,
        keep_days: i64,
        /// Objects removed: raw originals only (2), or everything (5).
        removed: usize,
        /// Compacted files rewritten without the session.
        rewritten: usize,
    }

    fn line(expires: Expiry, action: Action, rule: &str) -> Line {
        let rule = rule.to_string();
        Line {
            expires,
            action,
            rule,
            held_by: None,
            age_days: 0,
            keep_days: 0,
            removed: 0,
            rewritten: 0,
        }
    }

    /// The original only: both originals go, the rows and the compacted file stay.
    fn raw(rule: &str, age_days: i64, keep_days: i64) -> Option<Line> {
        let base = line(Expiry::Raw, Action::Delete, rule);
        Some(Line { age_days, keep_days, removed: 2, ..base })
    }

    /// The whole session: its five objects go and the compacted file is rewritten.
    fn whole(action: Action, rule: &str, age_days: i64, keep_days: i64) -> Option<Line> {
        let base = line(Expiry::Session, action, rule);
        Some(Line { age_days, keep_days, removed: 5, rewritten: 1, ..base })
    }

    fn held(line: Option<Line>) -> Option<Line> {
        line.map(|line| Line { held_by: Some("hold-1".to_string()), ..line })
    }

    /// (case, principal, target, start, hold, the line expected).
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a ActiveHold>, Option<Line>);

    #[test]
    fn test_plan_decides_by_rule_age_and_hold() {
        let policy = Policy::parse(POLICY).expect("policy");
        let now = micros(NOW);
        let by_session = hold(Some("s"), None, None);
        let by_principal = hold(None, Some("arn:aws:iam::*:user/alice"), None);
        let by_target = hold(None, None, Some("i-0dev*"));
        let other_session = hold(Some("t"), None, None);
        let (s, p, t, o) =
            (Some(&by_session), Some(&by_principal), Some(&by_target), Some(&other_session));
        let (delete, shred) = (Action::Delete, Action::Shred);
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            // case                               principal   target     start                          hold  expected line
            ("default, 364 days",                 ALICE,      "i-0dev1",  "2025-03-15T00:00:00Z",        None, None),
            ("default, 1 µs short of a year",     ALICE,      "i-0dev1",  "2025-03-14T00:00:00.000001Z", None, None),
            ("default, a year to the µs",         ALICE,      "i-0dev1",  "2025-03-14T00:00:00Z",        None, raw("default", 365, 365)),
            ("default, 1 µs short of 3y",         ALICE,      "i-0dev1",  "2023-03-14T00:00:00.000001Z", None, raw("default", 1095, 366)),
            ("default, 3 years",                  ALICE,      "i-0dev1",  "2023-03-14T00:00:00Z",        None, whole(delete, "default", 1096, 1096)),
            ("contractor, 89 days",               CONTRACTOR, "i-0dev1",  "2025-12-15T00:00:00Z",        None, None),
            ("contractor, 90 days",               CONTRACTOR, "i-0dev1",  "2025-12-14T00:00:00Z",        None, raw("contractors", 90, 90)),
            ("contractor, a year: shred",         CONTRACTOR, "i-0dev1",  "2025-03-14T00:00:00Z",        None, whole(shred, "contractors", 365, 365)),
            ("contractor on prod, a year",        CONTRACTOR, "i-0prod1", "2025-03-14T00:00:00Z",        None, None),
            ("contractor on prod, 2 years",       CONTRACTOR, "i-0prod1", "2024-03-14T00:00:00Z",        None, raw("prod", 730, 730)),
            ("contractor on prod, 7y: shred",     CONTRACTOR, "i-0prod1", "2019-03-14T00:00:00Z",        None, whole(shred, "prod", 2557, 2557)),
            ("prod, 6 years",                     ALICE,      "i-0prod1", "2020-03-14T00:00:00Z",        None, raw("prod", 2191, 730)),
            ("held session, 3 years",             ALICE,      "i-0dev1",  "2023-03-14T00:00:00Z",        s,    held(whole(delete, "default", 1096, 1096))),
            ("held principal, a year",            ALICE,      "i-0dev1",  "2025-03-14T00:00:00Z",        p,    held(raw("default", 365, 365))),
            ("held target, contractor",           CONTRACTOR, "i-0dev1",  "2025-03-14T00:00:00Z",        t,    held(whole(shred, "contractors", 365, 365))),
            ("held, not due",                     ALICE,      "i-0dev1",  "2025-03-15T00:00:00Z",        s,    None),
            ("a hold of another session",         ALICE,      "i-0dev1",  "2023-03-14T00:00:00Z",        o,    whole(delete, "default", 1096, 1096)),
            ("a principal hold of another",       CONTRACTOR, "i-0dev1",  "2025-03-14T00:00:00Z",        p,    whole(shred, "contractors", 365, 365)),
        ];
        for (case, principal, target, start, hold, expected) in cases {
            let holds: Vec<ActiveHold> = hold.into_iter().cloned().collect();
            let planned = plan(&policy, &[session(principal, target, start)], &holds, now);
            let got: Vec<Line> = planned
                .iter()
                .map(|planned| Line {
                    expires: planned.expires,
                    action: planned.action,
                    rule: planned.rule.clone(),
                    held_by: planned.held_by.clone(),
                    age_days: planned.age_days,
                    keep_days: planned.keep_days,
                    removed: planned.remove.len(),
                    rewritten: planned.rewrite.len(),
                })
                .collect();
            let expected: Vec<Line> = expected.into_iter().collect();
            let hold = hold.map(|hold| hold.hold.scope());
            assert_eq!(
                got, expected,
                "{case}: {principal} on {target} since {start}, hold {hold:?}"
            );
        }
    }

    fn event(
        id: &str,
        principal: &str,
        targets: &[&str],
        session: Option<&str>,
        time: &str,
    ) -> AccessEvent {
        let subject = |target: Option<&str>| Subject {
            principal: Some(principal.to_string()),
            target: target.map(str::to_string),
            account: None,
        };
        let mut subjects: Vec<Subject> =
            targets.iter().map(|target| subject(Some(target))).collect();
        if subjects.is_empty() {
            subjects.push(subject(None));
        }
        AccessEvent {
            event_id: id.to_string(),
            session: session.map(str::to_string),
            subjects,
            time: micros(time),
        }
    }

    /// What one plan line of an `access` file says, compared as a whole.
    #[derive(Debug, PartialEq, Eq)]
    struct AccessLine {
        expires: Expiry,
        rule: String,
        age_days: i64,
        removed: Option<usize>,
        total: Option<usize>,
        keep: Option<Vec<String>>,
        held_by: Option<String>,
        events_held_by: Option<String>,
    }

    /// Every event goes: the file is deleted; the newest due event names the rule and age.
    fn gone(rule: &str, age_days: i64, removed: usize) -> Option<AccessLine> {
        let (rule, total) = (rule.to_string(), Some(removed));
        let (keep, held_by, events_held_by) = (None, None, None);
        let expires = Expiry::Access;
        Some(AccessLine {
            expires,
            rule,
            age_days,
            removed: Some(removed),
            total,
            keep,
            held_by,
            events_held_by,
        })
    }

    /// Some events go: the file is rewritten with `keep`.
    fn rewritten(rule: &str, age_days: i64, total: usize, keep: &[&str]) -> Option<AccessLine> {
        let keep: Vec<String> = keep.iter().map(|id| id.to_string()).collect();
        let removed = Some(total - keep.len());
        let base = gone(rule, age_days, total)?;
        Some(AccessLine { expires: Expiry::AccessEvents, removed, keep: Some(keep), ..base })
    }

    /// A hold keeps every due event: a line that says so, and nothing done.
    fn kept_by_hold(total: usize) -> Option<AccessLine> {
        let base = gone("", 0, total)?;
        Some(AccessLine { removed: None, held_by: Some("hold-1".to_string()), ..base })
    }

    /// (case, events, hold, the line expected).
    type AccessCase<'a> = (&'a str, Vec<AccessEvent>, Option<&'a ActiveHold>, Option<AccessLine>);

    #[test]
    fn test_plan_access_decides_event_by_event() {
        let policy = Policy::parse(POLICY).expect("policy");
        let now = micros(NOW);
        let by_session = hold(Some("s"), None, None);
        let s = Some(&by_session);
        let (old, older, young) =
            ("2023-03-14T00:00:00Z", "2020-03-14T00:00:00Z", "2025-03-14T00:00:00Z");
        let (dev, prod) = (&["i-0dev1"][..], &["i-0dev1", "i-0prod1"][..]);
        #[rustfmt::skip]
        let cases: Vec<AccessCase<'_>> = vec![
            ("one event past 3y",            vec![event("e1", ALICE, dev, None, old)],                                              None, gone("default", 1096, 1)),
            ("one event of a year",          vec![event("e1", ALICE, dev, None, young)],                                            None, None),
            ("an old and a young event",     vec![event("e1", ALICE, dev, None, old), event("e2", ALICE, dev, None, young)],        None, rewritten("default", 1096, 2, &["e2"])),
            ("a prod target among two",      vec![event("e1", ALICE, prod, None, old)],                                             None, None),
            ("no target: the default",       vec![event("e1", ALICE, &[], None, old)],                                              None, gone("default", 1096, 1)),
            ("a contractor's year",          vec![event("e1", CONTRACTOR, dev, None, young)],                                       None, gone("contractors", 365, 1)),
            ("the newest due event names",   vec![event("e1", ALICE, dev, None, older), event("e2", ALICE, dev, None, old)],        None, gone("default", 1096, 2)),
            ("held by its session",          vec![event("e1", ALICE, dev, Some("s"), old)],                                         s,    kept_by_hold(1)),
            ("held and due events",          vec![event("e1", ALICE, dev, Some("s"), old), event("e2", ALICE, dev, None, old)],     s,    rewritten("default", 1096, 2, &["e1"]).map(|line| AccessLine { events_held_by: Some("hold-1".to_string()), ..line })),
            ("a hold of another session",    vec![event("e1", ALICE, dev, Some("t"), old)],                                         s,    gone("default", 1096, 1)),
        ];
        for (case, events, hold, expected) in cases {
            let entry = entry("access/dt=d/trail.v1.parquet", ObjectKind::Access, &[], 100);
            let files = [LiveAccessFile { entry, events }];
            let holds: Vec<ActiveHold> = hold.into_iter().cloned().collect();
            let got: Vec<AccessLine> = plan_access(&policy, &files, &holds, now)
                .into_iter()
                .map(|line| AccessLine {
                    expires: line.expires,
                    rule: line.rule,
                    age_days: line.age_days,
                    removed: line.events_removed,
                    total: line.events_total,
                    keep: line.keep_events,
                    held_by: line.held_by,
                    events_held_by: line.events_held_by,
                })
                .collect();
            let expected: Vec<AccessLine> = expected.into_iter().collect();
            assert_eq!(got, expected, "{case}: {:?}", files[0].events);
        }
    }

    /// A commit at `committed_at` adding `added`.
    fn link(
        committed_at: &str,
        added: Vec<ObjectEntry>,
    ) -> sessionlake_storage::manifest::ChainLink {
        use sessionlake_schemas::manifest::{
            CommitAction, Manifest, ManifestBody, ManifestSignature,
        };
        let body = ManifestBody {
            version: 1,
            sequence: 0,
            previous_sha256: None,
            committed_at: committed_at.to_string(),
            writer_id: "test".to_string(),
            action: CommitAction::Ingest,
            reason: None,
            added,
            removed: Vec::new(),
            idle_period_secs: None,
        };
        let signature = ManifestSignature {
            algorithm: String::new(),
            key_id: String::new(),
            value: String::new(),
        };
        let manifest = Manifest { body, signature };
        sessionlake_storage::manifest::ChainLink {
            path: "manifest/0.json".to_string(),
            sha256: String::new(),
            size: 0,
            manifest: manifest.into(),
        }
    }

    /// (case, commit time, object added, its live entry, the line expected: age and kept days).
    type QuarantineCase<'a> =
        (&'a str, &'a str, &'a ObjectEntry, Option<&'a ObjectEntry>, Option<(i64, i64)>);

    #[test]
    fn test_plan_quarantine_keeps_inputs_the_default_raw_period() {
        let policy = Policy::parse(POLICY).expect("policy");
        let now = micros(NOW);
        let input = entry("quarantine/s3/x.v1.sle", ObjectKind::Quarantine, &[], 100);
        let raw = entry("raw/dt=d/s.s3.v1.zst.sle", ObjectKind::Raw, &["s"], 100);
        let replaced = ObjectEntry { sha256: "other".to_string(), ..input.clone() };
        let (year, short) = ("2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z");
        #[rustfmt::skip]
        let cases: Vec<QuarantineCase<'_>> = vec![
            // case                              committed  added   live entry        (age, kept days)
            ("a year old: due",                  year,      &input, Some(&input),     Some((365, 365))),
            ("364 days old",                     short,     &input, Some(&input),     None),
            ("a year old, no longer live",       year,      &input, None,             None),
            ("a year old, replaced since",       year,      &input, Some(&replaced),  None),
            ("an original: plan()'s",            year,      &raw,   Some(&raw),       None),
            ("an unreadable commit time",        "never",   &input, Some(&input),     None),
        ];
        for (case, committed_at, added, live_entry, expected) in cases {
            let chain = [link(committed_at, vec![added.clone()])];
            let live: BTreeMap<String, ObjectEntry> =
                live_entry.map(|entry| (entry.path.clone(), entry.clone())).into_iter().collect();
            let got: Vec<(Expiry, String, i64, i64, Vec<String>)> =
                plan_quarantine(&policy, &History::of(&chain), &live, now)
                    .into_iter()
                    .map(|line| {
                        let paths = line.remove.iter().map(|entry| entry.path.clone()).collect();
                        (line.expires, line.rule, line.age_days, line.keep_days, paths)
                    })
                    .collect();
            let expected: Vec<(Expiry, String, i64, i64, Vec<String>)> = expected
                .map(|(age, kept)| {
                    (Expiry::Quarantine, "default".to_string(), age, kept, vec![added.path.clone()])
                })
                .into_iter()
                .collect();
            assert_eq!(got, expected, "{case}: committed {committed_at}");
        }
    }
}
