//! The storage contract of a sessionlake lake, shared by every binary.
//!
//! - [`store::LakeStore`]: the lake's objects on a local folder or S3, through `object_store`.
//! - [`keys`]: key providers (AWS KMS, a local keyring) that hand out per-session data keys.
//! - [`envelope`]: raw transcripts compressed with zstd and sealed with a streaming AEAD.
//! - [`manifest`]: the signed hash chain of commits that says which objects are live.
//! - [`object_lock`]: commits written under S3 Object Lock on a bucket that has it.
//! - [`signing`]: manifest signers (the keyring's Ed25519 key, an AWS KMS ECDSA key) and checks.
//! - [`cursors::Cursors`]: how far each source has been read.
//! - [`error`]: [`LakeError`], and what the read and keep libraries make their errors of.
//!
//! A writer stages objects and commits them, signed, on the head it read; a reader takes
//! the lake to be what the chain names. Here on a local folder, signed by a local keyring:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
//! use sessionlake_storage::keys::LocalKeyring;
//! use sessionlake_storage::manifest::{Committer, live_objects, read_chain};
//! use sessionlake_storage::signing::KeyringSigner;
//! use sessionlake_storage::store::{LakeLocation, LakeStore};
//! use sessionlake_storage::transaction::Transaction;
//!
//! let dir = tempfile::tempdir()?;
//! // A folder here; `s3://bucket/prefix` with an AWS configuration instead of `None`.
//! let lake = dir.path().join("lake");
//! let store = LakeStore::open(&LakeLocation::parse(&lake.to_string_lossy())?, None)?;
//! let (keyring, _created) = LocalKeyring::open_or_create(&dir.path().join("keyring.json"))?;
//! let committer = Committer::new(Arc::new(KeyringSigner(Arc::new(keyring))));
//!
//! // Commit 0 of a new lake (no head yet): one table file.
//! let mut writer = Transaction::begin(&store, &committer, None);
//! let path = "commands/dt=2026-03-14/part-0.parquet";
//! let stored = writer.put_new(path, bytes::Bytes::from_static(b"rows")).await?;
//! let entry = stored.into_entry(ObjectKind::Commands, vec!["alice-0123456789abcdef0".into()]);
//! writer.commit(CommitAction::Ingest, None, vec![entry], vec![], false).await?;
//!
//! let chain = read_chain(&store).await?;
//! println!("{} commits", chain.len());
//! assert_eq!(chain.len(), 1);
//! assert!(live_objects(&chain).contains_key(path));
//! # Ok(()) }
//! ```

pub mod allocator;
pub mod aws;
pub mod checkpoint;
pub mod cursors;
pub mod decompress;
pub mod envelope;
pub mod error;
pub mod history;
pub mod key_cache;
pub mod keys;
pub mod lease;
pub mod log_filter;
pub mod manifest;
pub mod object_lock;
mod secret;
pub mod session_keys;
pub mod signing;
pub mod store;
#[cfg(test)]
mod test_store;
pub mod transaction;
pub mod trust;
pub mod verified;

pub use error::{LakeError, LakeErrorKind, LakeResult};
pub use secret::DataKey;
