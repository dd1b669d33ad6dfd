//! The planner: what a policy removes from a snapshot of the live set as of a time, and why.
//! Pure functions over what [`crate::live`] read (sessions, `access` files), the trusted chain
//! and the holds in force: [`plan`] for sessions, [`plan_access`] for CloudTrail `access`
//! files, [`plan_quarantine`] for quarantined inputs. Each returns one [`Planned`] line per
//! session or object that goes (or that a hold keeps).

use std::collections::BTreeMap;

use serde::Serialize;
use sessionlake_lake::manifest::ChainLink;
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};

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
    chain: &[ChainLink],
    live: &BTreeMap<String, ObjectEntry>,
    now: i64,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    for link in chain {
        let Ok(committed) = chrono::DateTime::parse_from_rfc3339(&link.manifest.body.committed_at)
        else {
            continue;
        };
        let time = committed.timestamp_micros();
        for entry in &link.manifest.body.added {
            let still_live =
                live.get(&entry.path).is_some_and(|found| found.sha256 == entry.sha256);
            if entry.kind != ObjectKind::Quarantine || !still_live {
                continue;
            }
            if now < policy.default.raw.end(time) {
                continue;
            }
            let mut line = Planned::object(entry, Expiry::Quarantine, 0);
            line.rule = policy.default.name.clone();
            line.age_days = (now - time).div_euclid(DAY_MICROS);
            line.keep_days = policy.default.raw.days_from(time);
            line.events_total = None;
            planned.push(line);
        }
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
