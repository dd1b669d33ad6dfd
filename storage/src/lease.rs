//! The writer lease (`state/lease.json`): one ingest process writes to a lake at a time.
//!
//! Correctness does not rest on the lease: every commit is a conditional create of the next
//! manifest number, and ingest commits only on the head it computed its changes from (see
//! `ingest/design.md`). The lease is what makes a second process pointed at the same lake and
//! sources *back off* instead of doing the same work twice.
//!
//! # Format
//! ```json
//! {"version": 1, "writer_id": "host/pid", "host": "host", "pid": 4242,
//!  "acquired_at": "2026-11-29T22:00:00Z", "renewed_at": "2026-11-29T22:00:20Z", "ttl_secs": 60}
//! ```
//! A lease is free when the file is absent, when `renewed_at + ttl_secs` has passed (its holder
//! stopped renewing), or when its holder ran on this host and that process is gone (a crash:
//! no need to wait out the time to live). It is taken with a conditional create
//! (`If-None-Match: *` on S3), renewed by its holder every third of its time to live, and deleted
//! on a clean stop. A holder that finds the file naming another writer has lost it.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::LakeStore;
use crate::{LakeError, LakeErrorKind, LakeResult};

/// Path of the lease in the lake.
pub const LEASE: &str = "state/lease.json";

/// Default time to live of a lease: a holder that stops renewing for this long loses it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// Version of the lease format written.
const LEASE_VERSION: u32 = 1;

/// Tries of the take-or-evict sequence before giving up (another process keeps racing us).
const ACQUIRE_ATTEMPTS: usize = 4;

/// The lease file's content. Read leniently (fields a newer version adds are ignored), so that
/// an older binary never takes a newer one's lease for garbage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Format version.
    pub version: u32,
    /// The holder: `host/pid`, as in the manifests it signs.
    pub writer_id: String,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When the holder took the lease (RFC 3339).
    pub acquired_at: String,
    /// When the holder last renewed it (RFC 3339).
    pub renewed_at: String,
    /// Seconds after `renewed_at` at which the lease lapses.
    pub ttl_secs: u64,
}

/// How a lease was found when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// No lease: the last holder stopped cleanly, or the lake never had one.
    Free,
    /// The holder ran on this host and is gone (it crashed or was killed).
    HolderGone(LeaseRecord),
    /// The holder stopped renewing for longer than the time to live.
    Expired(LeaseRecord),
    /// The file could not be read as a lease (the reason).
    Unreadable(String),
}

/// A lease held by this process.
#[derive(Debug)]
pub struct Lease {
    store: LakeStore,
    record: LeaseRecord,
    /// What was there before.
    pub takeover: Takeover,
}

/// Returns this host's name (`unknown-host` when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string())
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn busy(store: &LakeStore, holder: &LeaseRecord) -> LakeError {
    LakeError::new(
        LakeErrorKind::Busy,
        format!(
            "{} is in use by another ingest (writer {}, lease renewed at {}, lapses {} s later): \
             backing off; stop that process, or wait for its lease to lapse",
            store.location(),
            holder.writer_id,
            holder.renewed_at,
            holder.ttl_secs
        ),
    )
}

/// Why `holder` no longer holds its lease at `at` for writer `me` on `host`, if it does not.
/// A lease naming `me` is this process's own (a create whose response was lost).
fn lapsed(
    holder: &LeaseRecord,
    at: chrono::DateTime<chrono::Utc>,
    me: &str,
    host: &str,
) -> Option<Takeover> {
    if holder.writer_id == me || (holder.host == host && !process_alive(holder.pid)) {
        return Some(Takeover::HolderGone(holder.clone()));
    }
    let renewed = chrono::DateTime::parse_from_rfc3339(&holder.renewed_at).ok()?;
    let ttl = chrono::Duration::seconds(i64::try_from(holder.ttl_secs).unwrap_or(i64::MAX / 2));
    (renewed.to_utc() + ttl < at).then(|| Takeover::Expired(holder.clone()))
}

/// Whether a process with `pid` runs on this host.
fn process_alive(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

fn encode(record: &LeaseRecord) -> LakeResult<Bytes> {
    serde_json::to_vec_pretty(record)
        .map(Bytes::from)
        .map_err(|error| LakeError::format(format!("failed to encode the lease: {error}")))
}

impl Lease {
    /// Takes the lake's lease for `writer_id`, evicting a lapsed one; fails with
    /// [`LakeErrorKind::Busy`] (naming the holder) while another process holds it.
    pub async fn acquire(store: &LakeStore, writer_id: &str, ttl: Duration) -> LakeResult<Lease> {
        let host = host_name();
        let mut takeover = Takeover::Free;
        for _ in 0..ACQUIRE_ATTEMPTS {
            let stamp = now().to_rfc3339();
            let record = LeaseRecord {
                version: LEASE_VERSION,
                writer_id: writer_id.to_string(),
                host: host.clone(),
                pid: std::process::id(),
                acquired_at: stamp.clone(),
                renewed_at: stamp,
                ttl_secs: ttl.as_secs().max(1),
            };
            match store.put_new(LEASE, encode(&record)?).await {
                Ok(_) => return Ok(Lease { store: store.clone(), record, takeover }),
                Err(error) if error.kind() == LakeErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
            let Some(bytes) = store.get_opt(LEASE).await? else { continue };
            let found = match serde_json::from_slice::<LeaseRecord>(&bytes) {
                Ok(holder) => match lapsed(&holder, now(), writer_id, &host) {
                    Some(found) => found,
                    None => return Err(busy(store, &holder)),
                },
                Err(error) => Takeover::Unreadable(error.to_string()),
            };
            tracing::warn!(
                lease = %store.describe(LEASE),
                previous = ?found,
                "taking over a lapsed writer lease"
            );
            store.delete(LEASE).await?;
            takeover = found;
        }
        Err(LakeError::new(
            LakeErrorKind::Busy,
            format!(
                "{}: another process keeps taking the lease {} first: backing off",
                store.location(),
                LEASE
            ),
        ))
    }

    /// Returns the lease's content.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Renews the lease; fails with [`LakeErrorKind::Busy`] when another writer took it (this
    /// holder stopped renewing for longer than the time to live).
    pub async fn renew(&mut self) -> LakeResult<()> {
        self.check_held().await?;
        let mut renewed = self.record.clone();
        renewed.renewed_at = now().to_rfc3339();
        self.store.put(LEASE, encode(&renewed)?).await?;
        self.record = renewed;
        Ok(())
    }

    /// Fails with [`LakeErrorKind::Busy`] unless the lake's lease is still this one.
    pub async fn check_held(&self) -> LakeResult<()> {
        let current = self.store.get_opt(LEASE).await?;
        let holder = current.and_then(|bytes| serde_json::from_slice::<LeaseRecord>(&bytes).ok());
        match holder {
            Some(holder) if holder.writer_id == self.record.writer_id => Ok(()),
            Some(holder) => Err(LakeError::new(
                LakeErrorKind::Busy,
                format!(
                    "lost the lease of {} to writer {} (this writer {} did not renew it within \
                     {} s)",
                    self.store.location(),
                    holder.writer_id,
                    self.record.writer_id,
                    self.record.ttl_secs
                ),
            )),
            None => Err(LakeError::new(
                LakeErrorKind::Busy,
                format!("the lease of {} was deleted under this writer", self.store.location()),
            )),
        }
    }

    /// Gives the lease up (a clean stop): deletes it if it is still this one.
    pub async fn release(self) -> LakeResult<()> {
        if self.check_held().await.is_ok() {
            self.store.delete(LEASE).await?;
        }
        Ok(())
    }
}

/// Keeps a writer lease: renews it every third of its time to live in a task of its own (a long
/// job never lets it lapse), and releases it when stopped. `on_lost` is told once if another
/// writer took the lease; [`LeaseKeeper::is_lost`] says so from then on.
pub struct LeaseKeeper {
    stop: CancellationToken,
    lost: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing `lease`.
    pub fn start(mut lease: Lease, on_lost: impl Fn(&LakeError) + Send + 'static) -> LeaseKeeper {
        let stop = CancellationToken::new();
        let lost = CancellationToken::new();
        let (stopped, lost_signal) = (stop.clone(), lost.clone());
        let every = Duration::from_secs(lease.record().ttl_secs).div_f64(3.0);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                match lease.renew().await {
                    Ok(()) => {}
                    Err(error) if error.kind() == LakeErrorKind::Busy => {
                        on_lost(&error);
                        lost_signal.cancel();
                        return;
                    }
                    // The store may be down for a while: try again at the next renewal.
                    Err(error) => tracing::warn!(error = %error, "writer lease not renewed"),
                }
            }
            if let Err(error) = lease.release().await {
                tracing::warn!(error = %error, "writer lease not released; it lapses by itself");
            }
        });
        LeaseKeeper { stop, lost, task }
    }

    /// Whether another writer took the lease.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// A token cancelled when another writer takes the lease.
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and releases the lease (unless it was lost).
    pub async fn release(self) {
        self.stop.cancel();
        if let Err(join) = self.task.await
            && join.is_panic()
        {
            std::panic::resume_unwind(join.into_panic());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_store() -> LakeStore {
        LakeStore::in_memory()
    }

    fn record(host: &str, pid: u32, renewed_at: chrono::DateTime<chrono::Utc>) -> LeaseRecord {
        LeaseRecord {
            version: LEASE_VERSION,
            writer_id: format!("{host}/{pid}"),
            host: host.to_string(),
            pid,
            acquired_at: renewed_at.to_rfc3339(),
            renewed_at: renewed_at.to_rfc3339(),
            ttl_secs: 60,
        }
    }

    #[tokio::test]
    async fn test_second_writer_backs_off_naming_the_holder_then_takes_the_released_lease() {
        let store = memory_store();
        let first = Lease::acquire(&store, "a/1", DEFAULT_LEASE_TTL).await.expect("first");
        assert_eq!(first.takeover, Takeover::Free);
        let refused = Lease::acquire(&store, "b/2", DEFAULT_LEASE_TTL).await.expect_err("busy");
        assert_eq!(refused.kind(), LakeErrorKind::Busy);
        assert!(refused.to_string().contains("writer a/1"), "{refused}");
        assert!(refused.to_string().contains("backing off"), "{refused}");
        first.release().await.expect("release");
        let second = Lease::acquire(&store, "b/2", DEFAULT_LEASE_TTL).await.expect("second");
        assert_eq!(second.takeover, Takeover::Free);
    }

    #[test]
    fn test_lapsed_cases() {
        let at = now();
        let host = "this-host";
        let other = "other-host";
        let me = "this-host/424242";
        // Another host's lease: lapses only with time. This host's: also when its process is
        // gone (pid u32::MAX never runs). One naming this writer is its own.
        let cases = [
            (record(other, u32::MAX, at), false),
            (record(other, u32::MAX, at - chrono::Duration::seconds(61)), true),
            (record(host, u32::MAX, at), true),
            (record(host, std::process::id(), at), false),
            (record(host, 424_242, at), true),
        ];
        for (holder, expected) in cases {
            assert_eq!(lapsed(&holder, at, me, host).is_some(), expected, "{holder:?}");
        }
    }

    #[tokio::test]
    async fn test_renew_fails_once_another_writer_took_the_lease() {
        let store = memory_store();
        let mut held = Lease::acquire(&store, "a/1", DEFAULT_LEASE_TTL).await.expect("held");
        held.renew().await.expect("renew");
        let thief = record("other-host", 7, now());
        store.put(LEASE, encode(&thief).expect("encode")).await.expect("steal");
        let lost = held.renew().await.expect_err("lost");
        assert_eq!(lost.kind(), LakeErrorKind::Busy);
        assert!(lost.to_string().contains("other-host/7"), "{lost}");
    }
}
