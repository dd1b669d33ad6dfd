//! Manifest signers and signature checks.
//!
//! A [`ManifestSigner`] signs the bytes of a manifest body (format on
//! [`sessionlake_schemas::manifest`]). Two exist: the local keyring's Ed25519 key
//! ([`KeyringSigner`], or a borrowed [`crate::keys::Signer`]) and an asymmetric AWS KMS key
//! ([`KmsSigner`]: `ECC_NIST_P256`, `ECDSA_SHA_256`). [`verify_signature_bytes`] checks either
//! kind with ring; the public key of a KMS key is the DER SubjectPublicKeyInfo `GetPublicKey`
//! returns, whose EC point [`p256_point_of_spki`] extracts.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ring::digest::{SHA256, digest};
use sessionlake_schemas::manifest::{SIGNATURE_ECDSA_P256, SIGNATURE_ED25519};

use crate::error::{LakeError, LakeResult};
use crate::keys::{LocalKeyring, Signer, kms_error, verify_ed25519};

/// Signs manifest bodies.
#[async_trait]
pub trait ManifestSigner: Send + Sync {
    /// Returns the id the signature names (a KMS key's ARN, or the keyring's `ed25519:…`).
    fn key_id(&self) -> &str;

    /// Returns [`SIGNATURE_ED25519`] or [`SIGNATURE_ECDSA_P256`].
    fn algorithm(&self) -> &'static str;

    /// Returns the public key as a `PublicKeyRecord` stores it (before base64).
    fn public_key(&self) -> &[u8];

    /// Signs the signing bytes of a manifest body.
    async fn sign(&self, message: &[u8]) -> LakeResult<Vec<u8>>;
}

#[async_trait]
impl ManifestSigner for Signer<'_> {
    fn key_id(&self) -> &str {
        Signer::key_id(self)
    }

    fn algorithm(&self) -> &'static str {
        SIGNATURE_ED25519
    }

    fn public_key(&self) -> &[u8] {
        Signer::public_key(self)
    }

    async fn sign(&self, message: &[u8]) -> LakeResult<Vec<u8>> {
        Ok(Signer::sign(self, message))
    }
}

/// A signer shared by several writers of one process signs as itself.
#[async_trait]
impl ManifestSigner for Arc<dyn ManifestSigner> {
    fn key_id(&self) -> &str {
        self.as_ref().key_id()
    }

    fn algorithm(&self) -> &'static str {
        self.as_ref().algorithm()
    }

    fn public_key(&self) -> &[u8] {
        self.as_ref().public_key()
    }

    async fn sign(&self, message: &[u8]) -> LakeResult<Vec<u8>> {
        self.as_ref().sign(message).await
    }
}

/// The local keyring's Ed25519 signing key, owned (for services that keep a signer around).
#[derive(Debug, Clone)]
pub struct KeyringSigner(pub Arc<LocalKeyring>);

#[async_trait]
impl ManifestSigner for KeyringSigner {
    fn key_id(&self) -> &str {
        self.0.signer().key_id()
    }

    fn algorithm(&self) -> &'static str {
        SIGNATURE_ED25519
    }

    fn public_key(&self) -> &[u8] {
        self.0.signer().public_key()
    }

    async fn sign(&self, message: &[u8]) -> LakeResult<Vec<u8>> {
        Ok(self.0.signer().sign(message))
    }
}

/// An asymmetric AWS KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`) that signs with `ECDSA_SHA_256`.
///
/// The message given to KMS `Sign` (`MessageType=RAW`) is the SHA-256 digest of the signing
/// bytes: a manifest can be larger than the 4096 bytes KMS accepts as a raw message.
#[derive(Clone)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_arn: String,
    public_key: Vec<u8>,
}

impl fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSigner").field("key_arn", &self.key_arn).finish_non_exhaustive()
    }
}

/// The public half of a KMS signing key: its ARN and DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsPublicKey {
    /// The key's ARN (what signatures name).
    pub key_arn: String,
    /// DER SubjectPublicKeyInfo of a P-256 key.
    pub spki: Vec<u8>,
}

/// Fetches the public key of the KMS signing key `key_id` (id, ARN or alias) and checks that it
/// is a P-256 key that signs with `ECDSA_SHA_256`.
pub async fn kms_public_key(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> LakeResult<KmsPublicKey> {
    let described = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|error| kms_error("DescribeKey", key_id, error))?;
    let key_arn = described
        .key_metadata()
        .and_then(|metadata| metadata.arn())
        .ok_or_else(|| LakeError::format(format!("kms DescribeKey of {key_id} returned no ARN")))?
        .to_string();
    let output = client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|error| kms_error("GetPublicKey", key_id, error))?;
    // The SubjectPublicKeyInfo names the curve; checking it (below) rather than the key spec
    // field also covers emulators that answer with the older CustomerMasterKeySpec only.
    let supported = output
        .signing_algorithms()
        .contains(&aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256);
    if !supported {
        return Err(LakeError::config(format!(
            "kms key {key_id} does not sign with ECDSA_SHA_256 (it signs with {:?}): manifests \
             are signed with an ECC_NIST_P256 key",
            output.signing_algorithms()
        )));
    }
    let spki = output.public_key().map(|blob| blob.as_ref().to_vec()).ok_or_else(|| {
        LakeError::format(format!("kms GetPublicKey of {key_id} returned no key"))
    })?;
    p256_point_of_spki(&spki).map_err(|why| {
        LakeError::config(format!(
            "kms key {key_id} is not an ECC_NIST_P256 signing key ({why}): manifests are signed \
             with ECDSA P-256"
        ))
    })?;
    Ok(KmsPublicKey { key_arn, spki })
}

/// Like [`kms_public_key`], with a client made from `config`.
pub async fn kms_public_key_with(
    config: &aws_config::SdkConfig,
    key_id: &str,
) -> LakeResult<KmsPublicKey> {
    kms_public_key(&aws_sdk_kms::Client::new(config), key_id).await
}

impl KmsSigner {
    /// Returns a signer over the KMS key `key_id` (id, ARN or alias), after fetching and checking
    /// its public key.
    pub async fn connect(client: aws_sdk_kms::Client, key_id: &str) -> LakeResult<KmsSigner> {
        let public = kms_public_key(&client, key_id).await?;
        Ok(KmsSigner { client, key_arn: public.key_arn, public_key: public.spki })
    }

    /// Like [`KmsSigner::connect`], with a client made from `config`.
    pub async fn connect_with(
        config: &aws_config::SdkConfig,
        key_id: &str,
    ) -> LakeResult<KmsSigner> {
        KmsSigner::connect(aws_sdk_kms::Client::new(config), key_id).await
    }
}

#[async_trait]
impl ManifestSigner for KmsSigner {
    fn key_id(&self) -> &str {
        &self.key_arn
    }

    fn algorithm(&self) -> &'static str {
        SIGNATURE_ECDSA_P256
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> LakeResult<Vec<u8>> {
        let digest = digest(&SHA256, message);
        let output = self
            .client
            .sign()
            .key_id(&self.key_arn)
            .message(aws_sdk_kms::primitives::Blob::new(digest.as_ref()))
            .message_type(aws_sdk_kms::types::MessageType::Raw)
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|error| kms_error("Sign", &self.key_arn, error))?;
        output.signature().map(|blob| blob.as_ref().to_vec()).ok_or_else(|| {
            LakeError::format(format!("kms Sign with key {} returned no signature", self.key_arn))
        })
    }
}

/// Checks a manifest signature: `public_key` as a `PublicKeyRecord` stores it (decoded),
/// `message` the body's signing bytes.
pub fn verify_signature_bytes(
    algorithm: &str,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    match algorithm {
        SIGNATURE_ED25519 => verify_ed25519(public_key, message, signature)
            .then_some(())
            .ok_or_else(|| "the ed25519 signature does not verify".to_string()),
        SIGNATURE_ECDSA_P256 => {
            let point = p256_point_of_spki(public_key)?;
            let digest = digest(&SHA256, message);
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
                .verify(digest.as_ref(), signature)
                .map_err(|_| "the ecdsa-p256-sha256 signature does not verify".to_string())
        }
        other => Err(format!("unknown signature algorithm {other:?}")),
    }
}

/// DER tags used by SubjectPublicKeyInfo.
const DER_SEQUENCE: u8 = 0x30;
const DER_OID: u8 = 0x06;
const DER_BIT_STRING: u8 = 0x03;
/// OID 1.2.840.10045.2.1 (id-ecPublicKey), content bytes.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.2.840.10045.3.1.7 (prime256v1 / P-256), content bytes.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Length of an uncompressed P-256 point: 0x04, X, Y.
const P256_POINT_LEN: usize = 65;

/// Splits one DER element of tag `tag` off the front of `input`: returns its content and the
/// rest. Only definite lengths of up to four bytes (DER) are accepted.
fn der_element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (&found, rest) = input.split_first().ok_or("truncated DER")?;
    if found != tag {
        return Err(format!("DER tag {found:#04x} where {tag:#04x} was expected"));
    }
    let (&first, rest) = rest.split_first().ok_or("truncated DER length")?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad DER length".to_string());
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes.iter().fold(0usize, |sum, &byte| (sum << 8) | usize::from(byte));
        (length, rest)
    };
    if rest.len() < length {
        return Err("DER element runs past the end".to_string());
    }
    Ok(rest.split_at(length))
}

/// Returns the uncompressed EC point of a DER SubjectPublicKeyInfo holding a P-256 key:
/// `SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 }, BIT STRING point }`.
pub fn p256_point_of_spki(spki: &[u8]) -> Result<&[u8], String> {
    let (info, trailing) = der_element(spki, DER_SEQUENCE)?;
    if !trailing.is_empty() {
        return Err("bytes after the SubjectPublicKeyInfo".to_string());
    }
    let (algorithm, rest) = der_element(info, DER_SEQUENCE)?;
    let (key_type, parameters) = der_element(algorithm, DER_OID)?;
    if key_type != OID_EC_PUBLIC_KEY {
        return Err("not an EC public key".to_string());
    }
    let (curve, extra) = der_element(parameters, DER_OID)?;
    if curve != OID_P256 || !extra.is_empty() {
        return Err("not a P-256 key".to_string());
    }
    let (bits, extra) = der_element(rest, DER_BIT_STRING)?;
    if !extra.is_empty() {
        return Err("bytes after the public key".to_string());
    }
    match bits.split_first() {
        Some((0, point)) if point.len() == P256_POINT_LEN && point[0] == 0x04 => Ok(point),
        _ => Err("not an uncompressed P-256 point".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

    use super::*;

    /// The fixed DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480), as KMS returns it.
    const SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

    fn spki_of(point: &[u8]) -> Vec<u8> {
        let mut spki = hex::decode(SPKI_PREFIX).expect("hex");
        spki.extend_from_slice(point);
        spki
    }

    #[test]
    fn test_spki_point_is_extracted_and_bad_input_refused() {
        let point = {
            let mut point = vec![0x04];
            point.extend((0..64).map(|i| i as u8));
            point
        };
        let good = spki_of(&point);
        assert_eq!(p256_point_of_spki(&good), Ok(point.as_slice()));
        let mut trailing = good.clone();
        trailing.push(0);
        let mut p384 = good.clone();
        p384[24] = 0x08; // a different curve OID byte
        let mut compressed = good.clone();
        compressed[26] = 0x02;
        let long_form = {
            // The same structure with a long-form outer length is still parsed.
            let mut spki = vec![0x30, 0x81, 0x59];
            spki.extend_from_slice(&good[2..]);
            spki
        };
        assert_eq!(p256_point_of_spki(&long_form), Ok(point.as_slice()));
        let cases: [(&str, &[u8]); 7] = [
            ("empty", &[]),
            ("truncated", &good[..40]),
            ("trailing bytes", &trailing),
            ("another curve", &p384),
            ("compressed point", &compressed),
            ("huge length", &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            ("wrong tag", &[0x31, 0x00]),
        ];
        for (name, bytes) in cases {
            assert!(p256_point_of_spki(bytes).is_err(), "{name}: {bytes:02x?}");
        }
    }

    #[test]
    fn test_ecdsa_signature_over_the_digest_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("pair");
        let spki = spki_of(pair.public_key().as_ref());
        let message = b"{\"sequence\":1}";
        // What KMS signs: the digest of the message, hashed again by ECDSA_SHA_256.
        let signature =
            pair.sign(&rng, digest(&SHA256, message).as_ref()).expect("sign").as_ref().to_vec();
        assert_eq!(
            verify_signature_bytes(SIGNATURE_ECDSA_P256, &spki, message, &signature),
            Ok(())
        );
        assert!(
            verify_signature_bytes(SIGNATURE_ECDSA_P256, &spki, b"{\"sequence\":2}", &signature)
                .is_err()
        );
        assert!(verify_signature_bytes(SIGNATURE_ED25519, &spki, message, &signature).is_err());
        assert!(verify_signature_bytes("rsa", &spki, message, &signature).is_err());
    }
}
