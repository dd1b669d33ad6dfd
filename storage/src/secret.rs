//! Key material that never prints and is wiped when dropped.

use std::fmt;

/// A 256-bit symmetric key in memory. `Debug` prints `**REDACTED**`; the bytes are zeroed on drop.
pub struct DataKey([u8; 32]);

impl DataKey {
    /// Wraps key bytes; fails unless there are exactly 32 of them.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(array))
    }

    /// Returns a fresh key from the system's secure random source.
    pub fn random() -> crate::LakeResult<DataKey> {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| crate::LakeError::config("failed to draw a random data key"))?;
        let key = DataKey(bytes);
        bytes.fill(0);
        Ok(key)
    }

    /// Returns the key as an AES-256-GCM key.
    pub(crate) fn aes_256_gcm(&self) -> ring::aead::LessSafeKey {
        // 32 bytes always make an AES-256 key; the constructor guarantees the length.
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &self.0)
            .unwrap_or_else(|_| unreachable!("a DataKey is always 32 bytes"));
        ring::aead::LessSafeKey::new(unbound)
    }

    /// Returns the key bytes, for handing to an AEAD.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey(self.0)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(**REDACTED**)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        // black_box keeps the compiler from eliding the wipe of memory about to be freed.
        for byte in self.0.iter_mut() {
            *byte = 0;
            std::hint::black_box(&*byte);
        }
    }
}

/// Panics when `text` (a `Debug` or log output) shows `key` in any usual spelling: hex (either
/// case), base64 (padded or not) or Rust's list of bytes, whole or its first 8 bytes.
#[cfg(test)]
pub(crate) fn assert_no_key_bytes(text: &str, key: &[u8], what: &str) {
    use base64::Engine as _;
    let spellings = [
        hex::encode(key),
        hex::encode_upper(key),
        base64::engine::general_purpose::STANDARD.encode(key),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(key),
        format!("{key:?}"),
        format!("{:?}", &key[..8.min(key.len())]).trim_end_matches(']').to_string(),
        hex::encode(&key[..8.min(key.len())]),
    ];
    for spelling in spellings {
        assert!(!text.contains(&spelling), "{what} shows key bytes ({spelling}): {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_debug_is_redacted() {
        let key = DataKey::from_slice(&[7u8; 32]).expect("32 bytes");
        assert_eq!(format!("{key:?}"), "DataKey(**REDACTED**)");
        assert!(DataKey::from_slice(&[0u8; 31]).is_none());
        let drawn = DataKey::random().expect("random");
        assert_no_key_bytes(&format!("{drawn:?}"), drawn.expose(), "DataKey");
    }
}
