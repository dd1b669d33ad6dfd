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
//! ```no_run
//! # async fn demo() -> sessionlake_storage::LakeResult<()> {
//! use sessionlake_storage::store::{LakeLocation, LakeStore};
//! let store = LakeStore::open(&LakeLocation::parse("./lake")?, None)?;
//! let chain = sessionlake_storage::manifest::read_chain(&store).await?;
//! println!("{} commits", chain.len());
//! # Ok(()) }
//! ```

pub mod aws;
pub mod checkpoint;
pub mod cursors;
pub mod decompress;
pub mod envelope;
pub mod error;
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
