//! Fuzzes the manifest parser (`sessionlake_storage::manifest::parse_manifest`).
//!
//! Checks, for any bytes, that parsing never panics, and for every manifest that parses:
//! - `body.signing_bytes()` succeeds (a verifier must always be able to recompute them);
//! - the signing bytes are canonical: re-parsing them as a body and serialising again gives
//!   the same bytes, so a signature never depends on how the file was laid out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionlake_storage::manifest::parse_manifest;
use sessionlake_schemas::manifest::ManifestBody;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = parse_manifest("fuzz", data) else {
        return;
    };
    let signing = manifest
        .body
        .signing_bytes()
        .expect("the body of a parsed manifest has signing bytes");
    let again: ManifestBody =
        serde_json::from_slice(&signing).expect("signing bytes parse back as a body");
    assert_eq!(again, manifest.body, "signing bytes lose part of the body");
    assert_eq!(
        again.signing_bytes().expect("signing bytes of the re-parsed body"),
        signing,
        "signing bytes are not canonical"
    );
});
