//! The envelope around every encrypted object: a wrapped data key and how the body is sealed.
//!
//! # Format of a raw object (`*.sle`)
//!
//! ```text
//! offset 0   4 bytes   magic "SLE1"
//! offset 4   4 bytes   header length N, u32 little-endian (at most MAX_HEADER_LEN)
//! offset 8   N bytes   header: compact JSON of [`EnvelopeHeader`]
//! then       chunks    each = AEAD(plaintext chunk of `chunk_size` bytes, the last one shorter
//!                      or empty) followed by its 16-byte tag
//! ```
//!
//! Chunk `i` is sealed with AES-256-GCM under the object's body key, nonce = `i` as u64
//! big-endian followed by a u32 that is 1 for the last chunk and 0 otherwise, and associated data
//! = SHA-256 of the header bytes. So a truncated object (its last chunk is not flagged last),
//! reordered chunks, a flipped bit or a header from another object all fail to open, and the
//! header's encryption context (checked by KMS or the keyring on unwrap) binds the key to the
//! session and the object's role. This is the STREAM construction of Hoang, Reyhanitabar,
//! Rogaway and Vizár (2015), as used by Tink's streaming AEAD and age.
//!
//! The body key is derived, never the data key itself: version 2 headers carry a random 32-byte
//! `salt`, and body key = HKDF-SHA256(data key, salt, info = [`BODY_KEY_INFO`]), as the AWS
//! Encryption SDK derives a message key from its message id. Counter nonces are then unique per
//! object even when a cached data key seals several objects (see `sessionlake_storage::keys`).
//! Version 1 headers (no salt, body sealed under the data key) are still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Magic bytes that open every raw object.
pub const MAGIC: &[u8; 4] = b"SLE1";
/// Largest header accepted when opening an object.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;
/// Plaintext bytes per sealed chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size accepted when opening an object.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Bytes of the AEAD tag after each chunk.
pub const TAG_LEN: usize = 16;
/// Version of [`EnvelopeHeader`] written by this crate.
pub const ENVELOPE_VERSION: u32 = 2;
/// Oldest header version this crate reads.
pub const ENVELOPE_MIN_VERSION: u32 = 1;
/// Bytes of the random salt of a version 2 header.
pub const SALT_LEN: usize = 32;
/// HKDF `info` of the body key of a version 2 object.
pub const BODY_KEY_INFO: &[u8] = b"sessionlake envelope v2 AES-256-GCM-STREAM body key";
/// The only body algorithm so far.
pub const ALGORITHM_AES256GCM_STREAM: &str = "AES-256-GCM-STREAM";

/// Encryption-context key naming the lake.
pub const CONTEXT_LAKE: &str = "sessionlake:lake";
/// Encryption-context key naming the session (or batch) the key protects.
pub const CONTEXT_SUBJECT: &str = "sessionlake:subject";
/// Encryption-context key naming the object's role (`raw`, `commands`, `quarantine`, …).
pub const CONTEXT_ROLE: &str = "sessionlake:role";
/// Encryption-context key naming the record a session key is kept in (which names the session
/// version): each version's session key is generated anew, never a cached one (a cached key
/// would let a version ingested after a shred re-wrap the shredded key).
pub const CONTEXT_RECORD: &str = "sessionlake:record";

/// [`CONTEXT_ROLE`] of a raw transcript's key.
pub const ROLE_RAW: &str = "raw";
/// [`CONTEXT_ROLE`] of a `commands` file's key.
pub const ROLE_COMMANDS: &str = "commands";
/// [`CONTEXT_ROLE`] of a session key (which wraps the data keys of one session version).
pub const ROLE_SESSION: &str = "session";
/// [`CONTEXT_ROLE`] of a file key (which wraps the data key of one compacted `commands` file or
/// one `access` file; see `paths::FILE_KEYS_DIR`).
pub const ROLE_FILE: &str = "file";
/// [`CONTEXT_ROLE`] of an `access` file's key (bound to the CloudTrail file it came from).
pub const ROLE_ACCESS: &str = "access";
/// [`CONTEXT_ROLE`] of a quarantined input's key.
pub const ROLE_QUARANTINE: &str = "quarantine";

/// A data key as stored next to the data it protects: encrypted by a key provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// `kms` or `local`.
    pub provider: String,
    /// The provider key that wrapped it (a KMS key ARN, or a keyring key id).
    pub key_id: String,
    /// The encrypted data key, base64.
    pub ciphertext: String,
    /// Encryption context the key is bound to; unwrapping with another context fails.
    pub context: BTreeMap<String, String>,
}

/// Header of a raw object. See the module docs for the whole format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeHeader {
    /// [`ENVELOPE_VERSION`].
    pub version: u32,
    /// [`ALGORITHM_AES256GCM_STREAM`].
    pub algorithm: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Compression of the plaintext before sealing (`zstd`).
    pub compression: String,
    /// The wrapped data key.
    pub key: WrappedKey,
    /// Version 2: the random HKDF salt of the body key, base64 ([`SALT_LEN`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Returns the encryption context of a data key: the lake, the subject (a session, a trail
/// file, a compacted file) and the object's role. KMS and the keyring refuse to unwrap the key
/// under any other.
pub fn key_context(lake_id: &str, subject: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTEXT_LAKE.to_string(), lake_id.to_string()),
        (CONTEXT_SUBJECT.to_string(), subject.to_string()),
        (CONTEXT_ROLE.to_string(), role.to_string()),
    ])
}
