//! Sealing and opening raw objects: zstd, then a streaming AEAD under a per-object data key.
//!
//! The byte format is documented on [`sessionlake_schemas::envelope`]. [`SealWriter`] and
//! [`OpenReader`] work chunk by chunk, so an object of any size is sealed and opened in memory
//! bounded by the chunk size.

use std::io::{self, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::hkdf;
use ring::rand::{SecureRandom as _, SystemRandom};
use sessionlake_schemas::envelope::{
    ALGORITHM_AES256GCM_STREAM, BODY_KEY_INFO, DEFAULT_CHUNK_SIZE, ENVELOPE_MIN_VERSION,
    ENVELOPE_VERSION, EnvelopeHeader, MAGIC, MAX_CHUNK_SIZE, MAX_HEADER_LEN, SALT_LEN, TAG_LEN,
    WrappedKey,
};

use crate::error::{LakeError, LakeResult};
use crate::secret::DataKey;

/// zstd level for raw transcripts: measured in BENCHMARKS.md (level 3 keeps up with ingest).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Largest decompressed transcript the lake will open (a zip-bomb guard).
pub const MAX_DECOMPRESSED_LEN: u64 = 16 * 1024 * 1024 * 1024;

/// Returns the AEAD key that seals the body of an object whose header carries `salt` (version
/// 2: HKDF-SHA256 of the data key) or none (version 1: the data key itself).
fn body_key(key: &DataKey, salt: Option<&[u8]>) -> LessSafeKey {
    let Some(salt) = salt else {
        return key.aes_256_gcm();
    };
    // HKDF-SHA256 can always expand 32 bytes, and AES-256 always takes them.
    let unbound = hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(key.expose())
        .expand(&[BODY_KEY_INFO], &AES_256_GCM)
        .map(UnboundKey::from)
        .unwrap_or_else(|_| unreachable!("HKDF-SHA256 expands to 32 bytes"));
    LessSafeKey::new(unbound)
}

/// Returns the salt of a header: none for version 1, exactly [`SALT_LEN`] bytes for version 2.
fn header_salt(header: &EnvelopeHeader, object: &str) -> LakeResult<Option<Vec<u8>>> {
    match (header.version, &header.salt) {
        (1, None) => Ok(None),
        (2, Some(salt)) => B64
            .decode(salt)
            .ok()
            .filter(|salt| salt.len() == SALT_LEN)
            .map(Some)
            .ok_or_else(|| LakeError::format(format!("{object} has a bad salt in its header"))),
        (version, _) => Err(LakeError::format(format!(
            "{object} has a version {version} header with{} a salt",
            if header.salt.is_some() { "" } else { "out" }
        ))),
    }
}

fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_be_bytes());
    nonce[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// Returns the header bytes that open a sealed object with this key and body-key salt (none:
/// a version 1 header, only written by tests of the reader).
fn header_bytes(wrapped: &WrappedKey, chunk_size: u32, salt: Option<&[u8]>) -> LakeResult<Vec<u8>> {
    let header = EnvelopeHeader {
        version: if salt.is_some() { ENVELOPE_VERSION } else { 1 },
        algorithm: ALGORITHM_AES256GCM_STREAM.to_string(),
        chunk_size,
        compression: "zstd".to_string(),
        key: wrapped.clone(),
        salt: salt.map(|salt| B64.encode(salt)),
    };
    let json = serde_json::to_vec(&header)
        .map_err(|error| LakeError::format(format!("failed to encode envelope header: {error}")))?;
    let len =
        u32::try_from(json.len()).ok().filter(|len| *len <= MAX_HEADER_LEN).ok_or_else(|| {
            LakeError::format(format!("envelope header of {} bytes is too long", json.len()))
        })?;
    let mut bytes = Vec::with_capacity(8 + json.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

/// Encrypts a stream into the envelope format. Call [`SealWriter::finish`] at the end: without
/// it the object has no last chunk and will not open.
pub struct SealWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    aad: [u8; 32],
    chunk_size: usize,
    buffer: Vec<u8>,
    counter: u64,
}

impl<W: Write> SealWriter<W> {
    /// Writes the header for `wrapped` to `inner` and returns a writer that seals under `key`.
    pub fn new(inner: W, key: &DataKey, wrapped: &WrappedKey) -> LakeResult<Self> {
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| LakeError::config("failed to draw a random salt"))?;
        Self::with_salt(inner, key, wrapped, Some(&salt))
    }

    fn with_salt(
        mut inner: W,
        key: &DataKey,
        wrapped: &WrappedKey,
        salt: Option<&[u8]>,
    ) -> LakeResult<Self> {
        let header = header_bytes(wrapped, DEFAULT_CHUNK_SIZE, salt)?;
        inner
            .write_all(&header)
            .map_err(|error| LakeError::format(format!("failed to write envelope: {error}")))?;
        let mut aad = [0u8; 32];
        aad.copy_from_slice(digest(&SHA256, &header).as_ref());
        let chunk_size = DEFAULT_CHUNK_SIZE as usize;
        Ok(SealWriter {
            inner,
            key: body_key(key, salt),
            aad,
            chunk_size,
            buffer: Vec::with_capacity(chunk_size + TAG_LEN),
            counter: 0,
        })
    }

    fn seal_buffer(&mut self, last: bool) -> io::Result<()> {
        let nonce = chunk_nonce(self.counter, last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many chunks in one envelope"))?;
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(self.aad), &mut self.buffer)
            .map_err(|_| io::Error::other("failed to seal a chunk"))?;
        self.inner.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_buffer(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        while !data.is_empty() {
            // A full buffer is sealed only once more data arrives: until then it may be the last.
            if self.buffer.len() == self.chunk_size {
                self.seal_buffer(false)?;
            }
            let room = self.chunk_size - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the header of a sealed object from `reader`.
pub fn read_header<R: Read>(reader: &mut R, object: &str) -> LakeResult<(EnvelopeHeader, Vec<u8>)> {
    let mut fixed = [0u8; 8];
    reader
        .read_exact(&mut fixed)
        .map_err(|_| LakeError::format(format!("{object} is too short to be a sealed object")))?;
    if &fixed[..4] != MAGIC {
        return Err(LakeError::format(format!("{object} is not a sealed object (bad magic)")));
    }
    let len = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    if len > MAX_HEADER_LEN {
        return Err(LakeError::format(format!("{object} has a {len}-byte header, too long")));
    }
    let mut json = vec![0u8; len as usize];
    reader
        .read_exact(&mut json)
        .map_err(|_| LakeError::format(format!("{object} ends inside its header")))?;
    let header: EnvelopeHeader = serde_json::from_slice(&json)
        .map_err(|error| LakeError::format(format!("{object} has a bad header: {error}")))?;
    if !(ENVELOPE_MIN_VERSION..=ENVELOPE_VERSION).contains(&header.version)
        || header.algorithm != ALGORITHM_AES256GCM_STREAM
    {
        return Err(LakeError::format(format!(
            "{object} is envelope version {} ({}); this build reads versions \
             {ENVELOPE_MIN_VERSION} to {ENVELOPE_VERSION}",
            header.version, header.algorithm
        )));
    }
    header_salt(&header, object)?;
    if header.chunk_size == 0 || header.chunk_size > MAX_CHUNK_SIZE {
        return Err(LakeError::format(format!(
            "{object} has chunk size {}, outside 1..={MAX_CHUNK_SIZE}",
            header.chunk_size
        )));
    }
    let mut all = fixed.to_vec();
    all.extend_from_slice(&json);
    Ok((header, all))
}

/// Decrypts a sealed stream chunk by chunk. Errors (a bad tag, a missing last chunk) surface as
/// `io::Error`s whose message names the object; no unauthenticated byte is ever returned.
pub struct OpenReader<R: Read> {
    inner: R,
    object: String,
    key: LessSafeKey,
    aad: [u8; 32],
    sealed_chunk_len: usize,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    plain_pos: usize,
    counter: u64,
    done: bool,
}

impl<R: Read> OpenReader<R> {
    /// Returns a reader over the plaintext of a sealed object whose header was read with
    /// [`read_header`] and whose data key is `key`.
    pub fn new(
        inner: R,
        object: &str,
        header: &EnvelopeHeader,
        header_bytes: &[u8],
        key: &DataKey,
    ) -> Self {
        let mut aad = [0u8; 32];
        aad.copy_from_slice(digest(&SHA256, header_bytes).as_ref());
        let sealed_chunk_len = header.chunk_size as usize + TAG_LEN;
        // `read_header` checked the salt; a header built by hand with a bad one opens nothing.
        let salt = header_salt(header, object).unwrap_or(Some(Vec::new()));
        OpenReader {
            inner,
            object: object.to_string(),
            key: body_key(key, salt.as_deref()),
            aad,
            sealed_chunk_len,
            sealed: Vec::with_capacity(sealed_chunk_len + 1),
            plain: Vec::new(),
            plain_pos: 0,
            counter: 0,
            done: false,
        }
    }

    fn corrupt(&self, why: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{} {why}", self.object))
    }

    /// Reads the next sealed chunk into `plain`. A chunk is last when the stream ends right
    /// after it; one byte of look-ahead tells.
    fn next_chunk(&mut self) -> io::Result<()> {
        // `sealed` may already hold the look-ahead byte from the previous chunk.
        while self.sealed.len() < self.sealed_chunk_len + 1 {
            let start = self.sealed.len();
            self.sealed.resize(self.sealed_chunk_len + 1, 0);
            let read = self.inner.read(&mut self.sealed[start..])?;
            self.sealed.truncate(start + read);
            if read == 0 {
                break;
            }
        }
        let last = self.sealed.len() <= self.sealed_chunk_len;
        let take = self.sealed.len().min(self.sealed_chunk_len);
        if take < TAG_LEN {
            return Err(self.corrupt("is truncated: a chunk is shorter than its tag"));
        }
        let mut chunk: Vec<u8> = self.sealed.drain(..take).collect();
        let nonce = chunk_nonce(self.counter, last);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(self.aad), &mut chunk)
            .map_err(|_| {
                self.corrupt(&format!(
                    "does not authenticate at chunk {} (altered, truncated or reordered)",
                    self.counter
                ))
            })?
            .len();
        chunk.truncate(plain_len);
        self.plain = chunk;
        self.plain_pos = 0;
        self.counter += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.plain_pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let available = &self.plain[self.plain_pos..];
        let take = available.len().min(out.len());
        out[..take].copy_from_slice(&available[..take]);
        self.plain_pos += take;
        Ok(take)
    }
}

/// Compresses (zstd, [`DEFAULT_ZSTD_LEVEL`]) and seals a stream of plaintext into `inner`:
/// a raw object of any size in memory bounded by zstd's window and one chunk. Call
/// [`RawSealer::finish`] at the end.
pub struct RawSealer<W: Write> {
    encoder: zstd::Encoder<'static, SealWriter<W>>,
}

impl<W: Write> RawSealer<W> {
    /// Writes the header for `wrapped` to `inner` and returns a writer that compresses and
    /// seals under `key`.
    pub fn new(inner: W, key: &DataKey, wrapped: &WrappedKey) -> LakeResult<Self> {
        let sealer = SealWriter::new(inner, key, wrapped)?;
        let encoder = zstd::Encoder::new(sealer, DEFAULT_ZSTD_LEVEL)
            .map_err(|error| LakeError::format(format!("failed to start zstd: {error}")))?;
        Ok(RawSealer { encoder })
    }

    /// Ends the compressed stream, seals the last chunk and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.encoder.finish()?.finish()
    }
}

impl<W: Write> Write for RawSealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.encoder.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Compresses and seals `plaintext` in one call; returns the object's bytes.
pub fn seal_bytes(plaintext: &[u8], key: &DataKey, wrapped: &WrappedKey) -> LakeResult<Vec<u8>> {
    let fail = |error: io::Error| LakeError::format(format!("failed to seal: {error}"));
    let output = Vec::with_capacity(plaintext.len() / 3 + 1024);
    let mut sealer = RawSealer::new(output, key, wrapped)?;
    sealer.write_all(plaintext).map_err(fail)?;
    sealer.finish().map_err(fail)
}

/// Opens a sealed object and returns the decompressed plaintext, refusing more than `limit` bytes.
pub fn open_bytes(object: &str, sealed: &[u8], key: &DataKey, limit: u64) -> LakeResult<Vec<u8>> {
    let mut cursor = io::Cursor::new(sealed);
    let (header, header_bytes) = read_header(&mut cursor, object)?;
    let reader = OpenReader::new(cursor, object, &header, &header_bytes, key);
    let mut plaintext = Vec::new();
    crate::decompress::bounded_zstd(reader, limit, object)?
        .read_to_end(&mut plaintext)
        .map_err(|error| LakeError::integrity(format!("failed to open {object}: {error}")))?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn fixture() -> (DataKey, WrappedKey) {
        let key = DataKey::from_slice(&[42u8; 32]).expect("32 bytes");
        let wrapped = WrappedKey {
            provider: "local".into(),
            key_id: "local:test".into(),
            ciphertext: "AAAA".into(),
            context: BTreeMap::from([("sessionlake:subject".into(), "s-1".into())]),
        };
        (key, wrapped)
    }

    fn open(sealed: &[u8], key: &DataKey) -> LakeResult<Vec<u8>> {
        open_bytes("test-object", sealed, key, MAX_DECOMPRESSED_LEN)
    }

    #[test]
    fn test_round_trip_sizes() {
        let (key, wrapped) = fixture();
        for len in [0usize, 1, 65_535, 65_536, 65_537, 300_000] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal_bytes(&plaintext, &key, &wrapped).expect("seal");
            assert_eq!(open(&sealed, &key).expect("open"), plaintext, "len {len}");
        }
    }

    #[test]
    fn test_tampering_is_detected() {
        let (key, wrapped) = fixture();
        // Incompressible input so the body spans several chunks.
        let mut state = 1u64;
        let plaintext: Vec<u8> = (0..200_000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        let sealed = seal_bytes(&plaintext, &key, &wrapped).expect("seal");
        let header_len = 8 + u32::from_le_bytes(sealed[4..8].try_into().expect("4")) as usize;
        let chunk = DEFAULT_CHUNK_SIZE as usize + TAG_LEN;

        let mut flipped = sealed.clone();
        flipped[header_len + 10] ^= 1;
        assert!(open(&flipped, &key).is_err(), "flipped bit");

        let truncated = &sealed[..header_len + chunk];
        assert!(open(truncated, &key).is_err(), "truncated at a chunk boundary");

        let mut reordered = sealed[..header_len].to_vec();
        reordered.extend_from_slice(&sealed[header_len + chunk..header_len + 2 * chunk]);
        reordered.extend_from_slice(&sealed[header_len..header_len + chunk]);
        reordered.extend_from_slice(&sealed[header_len + 2 * chunk..]);
        assert!(open(&reordered, &key).is_err(), "reordered");

        let other_key = DataKey::from_slice(&[1u8; 32]).expect("32");
        assert!(open(&sealed, &other_key).is_err(), "wrong key");

        let (_, mut other_wrapped) = fixture();
        other_wrapped.context.insert("sessionlake:subject".into(), "s-2".into());
        let swapped_header = seal_bytes(b"", &key, &other_wrapped).expect("seal");
        let other_header_len =
            8 + u32::from_le_bytes(swapped_header[4..8].try_into().expect("4")) as usize;
        let mut swapped = swapped_header[..other_header_len].to_vec();
        swapped.extend_from_slice(&sealed[header_len..]);
        assert!(open(&swapped, &key).is_err(), "header from another object");
    }

    #[test]
    fn test_version_1_objects_still_open() {
        let (key, wrapped) = fixture();
        let plaintext = b"sessions sealed before body keys were derived".repeat(5000);
        let sealer = SealWriter::with_salt(Vec::new(), &key, &wrapped, None).expect("v1 sealer");
        let mut encoder = zstd::Encoder::new(sealer, DEFAULT_ZSTD_LEVEL).expect("zstd");
        encoder.write_all(&plaintext).expect("write");
        let sealed = encoder.finish().expect("zstd").finish().expect("seal");
        let (header, _) = read_header(&mut io::Cursor::new(&sealed), "v1").expect("header");
        assert_eq!((header.version, header.salt), (1, None));
        assert_eq!(open(&sealed, &key).expect("open v1"), plaintext);
    }

    #[test]
    fn test_one_data_key_seals_objects_under_distinct_body_keys() {
        // A cached data key seals several objects: their bodies must not share a key stream.
        let (key, wrapped) = fixture();
        let plaintext = vec![0u8; 4096];
        let first = seal_bytes(&plaintext, &key, &wrapped).expect("seal");
        let second = seal_bytes(&plaintext, &key, &wrapped).expect("seal");
        let body = |sealed: &[u8]| {
            let len = 8 + u32::from_le_bytes(sealed[4..8].try_into().expect("4")) as usize;
            sealed[len..].to_vec()
        };
        assert_ne!(body(&first), body(&second));
        assert_eq!(open(&first, &key).expect("open"), open(&second, &key).expect("open"));

        // A salt edited in the header changes the body key: the object no longer opens.
        let (header, _) = read_header(&mut io::Cursor::new(&first), "x").expect("header");
        let salt = header.salt.expect("v2 salt").into_bytes();
        let at = first.windows(salt.len()).position(|w| w == salt).expect("salt in header");
        let mut edited_bytes = first.clone();
        edited_bytes[at..at + salt.len()].copy_from_slice(B64.encode([7u8; SALT_LEN]).as_bytes());
        assert!(open(&edited_bytes, &key).is_err(), "edited salt");
    }

    proptest! {
        #[test]
        fn test_open_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (key, _) = fixture();
            let _ = open(&bytes, &key);
        }
    }
}
