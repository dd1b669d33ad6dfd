//! sessionlake's keep library: how long the lake keeps what, and the writer that makes it so.
//!
//! - [`policy`]: the retention policy (TOML) and what it decides for one subject
//!   ([`Policy::decide`], [`Period::end`]).
//! - [`live`]: the live set as retention sees it (sessions and `access` files, from their
//!   plaintext columns; no key needed).
//! - [`plan`]: pure functions from a policy, that live set, the holds and a time to the lines
//!   of a plan ([`plan::plan`], [`plan::plan_access`], [`plan::plan_quarantine`]).
//! - [`retention`]: a policy planned on a whole lake ([`retention::plan_lake`]) and applied
//!   in one commit ([`retention::apply`]).
//! - [`shred`]: one session destroyed now, in one commit.
//! - [`compact`]: the per-session files of each day merged into a few, in one commit.
//! - [`rekey`]: every data key re-wrapped under a new provider key; a new signing key.
//! - [`holds`]: legal holds, which keep what they cover whatever the policy says.
//! - [`lake`]: [`Lake`], the one-shot writer of retention, hold, shred and compaction
//!   (transactions on the trusted head, rewrites of compacted and `access` files, sweeps).
//! - [`error`]: [`KeepError`], its kind for callers that branch on it (a conflict, a busy
//!   lease, a hold), its cause in the chain.
//!
//! No type here knows the command line: the `sessionlake` CLI turns its flags into a
//! [`LakeParts`] and these calls, and prints what they return.
//!
//! ```
//! use sessionlake_keep::{Period, Policy, Subject};
//!
//! let policy = Policy::parse(
//!     r#"
//! version = 1
//! [default]
//! commands = "1y"
//!
//! [[rules]]
//! name = "prod"
//! target = "i-0prod*"
//! commands = "7y"
//! "#,
//! )?;
//! let subject = Subject { target: Some("i-0prod1".into()), ..Subject::default() };
//! let decision = policy.decide(&subject);
//! assert_eq!((decision.rule.as_str(), decision.commands), ("prod", Period::Years(7)));
//! # anyhow::Ok(())
//! ```

pub mod compact;
pub mod error;
pub mod holds;
pub mod lake;
pub mod live;
pub mod plan;
pub mod policy;
pub mod rekey;
pub mod retention;
pub mod shred;

pub use error::{KeepError, KeepErrorKind, KeepResult};
pub use holds::{ActiveHold, Hold};
pub use lake::{Attempt, Lake, LakeParts};
pub use plan::{Expiry, Planned};
pub use policy::{Action, Decision, Period, Policy, Subject};

#[cfg(test)]
pub(crate) mod tests {
    use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};

    /// Returns a manifest entry of `kind` at `path`, of `size` bytes, holding `sessions`.
    pub(crate) fn entry(path: &str, kind: ObjectKind, sessions: &[&str], size: u64) -> ObjectEntry {
        ObjectEntry::new(
            path.to_string(),
            size,
            String::new(),
            kind,
            sessions.iter().map(|id| id.to_string()).collect(),
        )
    }
}
