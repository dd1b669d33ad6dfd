//! Fuzzes the envelope reader (`sessionlake_storage::envelope`).
//!
//! Checks, for any bytes, that nothing panics (errors are expected and fine):
//! - `open_bytes` on the bytes as a sealed object, under a fixed data key, with a 1 MiB cap;
//! - `read_header` on the bytes.
//!
//! Random bytes never authenticate, so those two only reach the header parser and the first
//! chunk's tag check. To fuzz what lies behind authentication too, the bytes are also sealed
//! as-is (as if they were the compressed payload) under the same key and opened again, which
//! runs the chunk reader and the bounded zstd decoder on arbitrary frames; and the bytes are
//! sealed properly and must open back to themselves.
#![no_main]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sessionlake_storage::DataKey;
use sessionlake_storage::envelope::{OpenReader, SealWriter, open_bytes, read_header, seal_bytes};
use sessionlake_schemas::envelope::WrappedKey;

/// Largest plaintext `open_bytes` may return here.
const LIMIT: u64 = 1 << 20;

static KEY: LazyLock<DataKey> =
    LazyLock::new(|| DataKey::from_slice(&[7u8; 32]).expect("a 32-byte key"));

static WRAPPED: LazyLock<WrappedKey> = LazyLock::new(|| WrappedKey {
    provider: "local".into(),
    key_id: "local:fuzz".into(),
    ciphertext: "AAAA".into(),
    context: BTreeMap::from([("sessionlake:subject".into(), "fuzz".into())]),
});

fuzz_target!(|data: &[u8]| {
    let key = &*KEY;

    // The bytes as a stored object.
    let _ = open_bytes("fuzz", data, key, LIMIT);
    if let Ok((header, header_bytes)) = read_header(&mut &data[..], "fuzz") {
        assert_eq!(
            &data[..header_bytes.len()],
            &header_bytes[..],
            "read_header must return the bytes it read"
        );
        // The chunk reader alone, without zstd: must end in Ok or an error, never a panic.
        let body = &data[header_bytes.len()..];
        let mut reader = OpenReader::new(body, "fuzz", &header, &header_bytes, key);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }

    // The bytes as an authenticated (but possibly not valid zstd) payload.
    let mut writer = SealWriter::new(Vec::new(), key, &WRAPPED).expect("seal header");
    writer.write_all(data).expect("seal into a Vec");
    let sealed = writer.finish().expect("finish into a Vec");
    match open_bytes("fuzz", &sealed, key, LIMIT) {
        Ok(plain) => assert!(plain.len() as u64 <= LIMIT, "open_bytes exceeded its limit"),
        Err(_) => {}
    }

    // A proper seal of the bytes opens back to them.
    let sealed = seal_bytes(data, key, &WRAPPED).expect("seal_bytes");
    let opened = open_bytes("fuzz", &sealed, key, LIMIT.max(data.len() as u64))
        .expect("a sealed object opens");
    assert_eq!(opened, data, "seal then open is not the identity");
});
