//! Key providers: where data keys come from and how they are wrapped.
//!
//! Every session gets its own data keys. A [`KeyProvider`] generates a key and returns it twice:
//! in plaintext (kept in memory only) and wrapped under a provider key, bound to an encryption
//! context. Two providers exist: [`KmsKeyProvider`] (AWS KMS `GenerateDataKey`/`Decrypt`) and
//! [`LocalKeyring`] (a 0600 file holding a master key, for the embedded default and tests).
//! [`Keys`] unwraps a key whichever provider wrapped it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use sessionlake_schemas::envelope::WrappedKey;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::key_cache::{KeyCache, KeyCachePolicy};
use crate::secret::DataKey;

/// Name of the local keyring provider in [`WrappedKey::provider`].
pub const PROVIDER_LOCAL: &str = "local";
/// Name of the AWS KMS provider in [`WrappedKey::provider`].
pub const PROVIDER_KMS: &str = "kms";

/// Generates and unwraps data keys.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Returns the id of the provider key that wraps new data keys.
    fn key_id(&self) -> &str;

    /// Returns a fresh 256-bit data key, in plaintext and wrapped, bound to `context`.
    async fn generate_data_key(
        &self,
        context: BTreeMap<String, String>,
    ) -> LakeResult<(DataKey, WrappedKey)>;

    /// Unwraps a data key this provider wrapped; fails if the context does not match.
    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> LakeResult<DataKey>;

    /// Wraps an existing data key under this provider's key, bound to `context` (re-keying).
    async fn wrap_data_key(
        &self,
        key: &DataKey,
        context: BTreeMap<String, String>,
    ) -> LakeResult<WrappedKey>;
}

/// Checks that a data key's encryption context names `subject`, `role` and, when the lake has an
/// id and the context names one, `lake`: an object moved from another session, role or lake is
/// refused before its key is even unwrapped. `object` names it in the error.
pub fn check_context(
    wrapped: &WrappedKey,
    object: &str,
    subject: &str,
    role: &str,
    lake: Option<&str>,
) -> LakeResult<()> {
    use sessionlake_schemas::envelope::{CONTEXT_LAKE, CONTEXT_ROLE, CONTEXT_SUBJECT};
    let named = |key: &str| wrapped.context.get(key).map(String::as_str);
    let mut wrong = Vec::new();
    if named(CONTEXT_SUBJECT) != Some(subject) {
        wrong.push(format!("session {:?}, not {subject}", named(CONTEXT_SUBJECT)));
    }
    // Keys written before roles and lake ids were named carry neither: those checks need both.
    if let Some(found) = named(CONTEXT_ROLE).filter(|found| *found != role) {
        wrong.push(format!("role {found:?}, not {role:?}"));
    }
    if let (Some(found), Some(lake)) = (named(CONTEXT_LAKE), lake)
        && found != lake
    {
        wrong.push(format!("lake {found:?}, not {lake}"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(LakeError::integrity(format!(
            "{object} has a key bound to {}: it was moved here from elsewhere",
            wrong.join(", ")
        )))
    }
}

fn ciphertext_of(wrapped: &WrappedKey) -> LakeResult<Vec<u8>> {
    B64.decode(&wrapped.ciphertext)
        .map_err(|_| LakeError::format(format!("wrapped key of {} is not base64", wrapped.key_id)))
}

fn context_aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    // A BTreeMap serialises in key order, so the bytes do not depend on insertion order.
    serde_json::to_vec(context).unwrap_or_default()
}

/// Environment variable holding the passphrase that protects the keyring file, when one is set.
pub const PASSPHRASE_ENV: &str = "SESSIONLAKE_KEYRING_PASSPHRASE";
/// PBKDF2-HMAC-SHA256 iterations for a new passphrase-protected keyring (OWASP's 2023 figure).
const PBKDF2_ITERATIONS: u32 = 600_000;
/// Fewest iterations accepted when opening one (a file edited to weaken it is refused).
const PBKDF2_MIN_ITERATIONS: u32 = 100_000;
const KDF_PBKDF2_SHA256: &str = "pbkdf2-hmac-sha256";

/// The on-disk form of a local keyring (version 1).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    version: u32,
    /// Id of the master key, e.g. `local:5f0c…`.
    key_id: String,
    /// The 256-bit master key, base64 (sealed under the passphrase key when `protection` is set).
    master_key: String,
    /// Id of the manifest signing key.
    signing_key_id: String,
    /// The Ed25519 signing key, PKCS#8 v2, base64 (sealed likewise).
    signing_key_pkcs8: String,
    /// Present when the two keys above are sealed under a key derived from a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protection: Option<Protection>,
}

/// How a keyring's keys are sealed under a passphrase: AES-256-GCM (random nonce first) under
/// PBKDF2-HMAC-SHA256(passphrase, salt, iterations), each field's name and the key id as the
/// associated data, so that the two sealed fields cannot be swapped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Protection {
    kdf: String,
    iterations: u32,
    /// Random salt, base64.
    salt: String,
}

/// Returns the passphrase from [`PASSPHRASE_ENV`], if set and not empty.
fn passphrase_from_env() -> Option<String> {
    std::env::var(PASSPHRASE_ENV).ok().filter(|passphrase| !passphrase.is_empty())
}

fn passphrase_key(passphrase: &str, salt: &[u8], iterations: u32) -> LessSafeKey {
    let mut derived = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.as_bytes(),
        &mut derived,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &derived)
        .unwrap_or_else(|_| unreachable!("32 bytes always make an AES-256 key"));
    derived.fill(0);
    LessSafeKey::new(unbound)
}

fn seal_field(key: &LessSafeKey, aad: &str, plain: &[u8]) -> LakeResult<String> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| LakeError::config("failed to draw a random nonce"))?;
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut sealed,
    )
    .map_err(|_| LakeError::config("failed to seal the keyring"))?;
    let mut blob = nonce.to_vec();
    blob.append(&mut sealed);
    Ok(B64.encode(blob))
}

fn open_field(key: &LessSafeKey, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buffer).ok()?.to_vec();
    buffer.fill(0);
    Some(plain)
}

/// A master key and a signing key in a local file, created with mode 0600 on first use.
///
/// Data keys are wrapped with AES-256-GCM under the master key, the encryption context being the
/// associated data. Anyone who can read the file can read the lake: keep it off the lake's disk.
pub struct LocalKeyring {
    path: PathBuf,
    key_id: String,
    master: LessSafeKey,
    signing_key_id: String,
    signing: Ed25519KeyPair,
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("path", &self.path)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalKeyring {
    /// Opens the keyring at `path`, creating it (and its folder) with fresh keys if it is absent.
    /// Returns the keyring and whether it was created.
    pub fn open_or_create(path: &Path) -> LakeResult<(LocalKeyring, bool)> {
        match std::fs::read(path) {
            Ok(bytes) => Ok((Self::parse(path, &bytes)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok((Self::create(path)?, true))
            }
            Err(error) => Err(LakeError::config(format!(
                "failed to read keyring {}: {error}",
                path.display()
            ))),
        }
    }

    /// Fails, naming the file and what to do, when the keyring at `path` is a symbolic link or
    /// group or others may read or write it: whoever reads it can open every session and sign
    /// commits, and whoever replaces it takes the lake's keys over. A missing file passes.
    pub fn ensure_private(path: &Path) -> LakeResult<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(LakeError::config(format!(
                    "failed to inspect keyring {}: {error}",
                    path.display()
                )));
            }
        };
        let problem = if meta.file_type().is_symlink() {
            "is a symbolic link".to_string()
        } else if meta.permissions().mode() & 0o077 != 0 {
            format!(
                "can be read or written by group or others (mode {:o}): chmod 600 it",
                meta.permissions().mode() & 0o777
            )
        } else {
            return Ok(());
        };
        Err(LakeError::config(format!(
            "keyring {} {problem}, or pass --allow-insecure-keyring",
            path.display()
        )))
    }

    /// Opens an existing keyring; fails if there is none.
    pub fn open(path: &Path) -> LakeResult<LocalKeyring> {
        let bytes = std::fs::read(path).map_err(|error| {
            LakeError::new(
                LakeErrorKind::Config,
                format!("failed to read keyring {}: {error}", path.display()),
            )
        })?;
        Self::parse(path, &bytes)
    }

    fn create(path: &Path) -> LakeResult<LocalKeyring> {
        Self::create_with(path, passphrase_from_env().as_deref())
    }

    fn create_with(path: &Path, passphrase: Option<&str>) -> LakeResult<LocalKeyring> {
        let rng = SystemRandom::new();
        let mut master = [0u8; 32];
        let mut id = [0u8; 8];
        rng.fill(&mut master)
            .and_then(|()| rng.fill(&mut id))
            .map_err(|_| LakeError::config("failed to draw random bytes for a new keyring"))?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| LakeError::config("failed to generate a signing key"))?;
        let key_id = format!("local:{}", hex::encode(id));
        let mut file = KeyringFile {
            version: 1,
            key_id: key_id.clone(),
            master_key: B64.encode(master),
            signing_key_id: format!("ed25519:{}", hex::encode(id)),
            signing_key_pkcs8: B64.encode(pkcs8.as_ref()),
            protection: None,
        };
        if let Some(passphrase) = passphrase {
            let mut salt = [0u8; 16];
            rng.fill(&mut salt).map_err(|_| LakeError::config("failed to draw a random salt"))?;
            let key = passphrase_key(passphrase, &salt, PBKDF2_ITERATIONS);
            file.master_key = seal_field(&key, &format!("master_key {key_id}"), &master)?;
            file.signing_key_pkcs8 =
                seal_field(&key, &format!("signing_key_pkcs8 {key_id}"), pkcs8.as_ref())?;
            file.protection = Some(Protection {
                kdf: KDF_PBKDF2_SHA256.to_string(),
                iterations: PBKDF2_ITERATIONS,
                salt: B64.encode(salt),
            });
        }
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|error| LakeError::config(format!("failed to encode keyring: {error}")))?;
        let won = write_private_file(path, &json)?;
        master.fill(0);
        if won {
            Self::parse_with(path, &json, passphrase)
        } else {
            // Another process created the keyring first: use its keys, never ours.
            Self::open(path)
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> LakeResult<LocalKeyring> {
        Self::parse_with(path, bytes, passphrase_from_env().as_deref())
    }

    fn parse_with(path: &Path, bytes: &[u8], passphrase: Option<&str>) -> LakeResult<LocalKeyring> {
        let bad = |why: &str| LakeError::config(format!("keyring {} is {why}", path.display()));
        let file: KeyringFile =
            serde_json::from_slice(bytes).map_err(|error| bad(&format!("not valid: {error}")))?;
        if file.version != 1 {
            return Err(bad(&format!("version {}, this build reads version 1", file.version)));
        }
        let mut master = B64.decode(&file.master_key).map_err(|_| bad("not valid: master_key"))?;
        let mut pkcs8 =
            B64.decode(&file.signing_key_pkcs8).map_err(|_| bad("not valid: signing key"))?;
        if let Some(protection) = &file.protection {
            let Some(passphrase) = passphrase else {
                return Err(bad(&format!(
                    "protected by a passphrase: set {PASSPHRASE_ENV} to open it"
                )));
            };
            if protection.kdf != KDF_PBKDF2_SHA256 || protection.iterations < PBKDF2_MIN_ITERATIONS
            {
                return Err(bad(&format!(
                    "protected with {} at {} iterations; this build accepts {KDF_PBKDF2_SHA256} \
                     at {PBKDF2_MIN_ITERATIONS} or more",
                    protection.kdf, protection.iterations
                )));
            }
            let salt = B64.decode(&protection.salt).map_err(|_| bad("not valid: salt"))?;
            let key = passphrase_key(passphrase, &salt, protection.iterations);
            let wrong = || {
                LakeError::new(
                    LakeErrorKind::Denied,
                    format!(
                        "keyring {} does not open with the passphrase in {PASSPHRASE_ENV} \
                         (wrong passphrase, or the file was altered)",
                        path.display()
                    ),
                )
            };
            let opened_master = open_field(&key, &format!("master_key {}", file.key_id), &master)
                .ok_or_else(wrong)?;
            let opened_pkcs8 =
                open_field(&key, &format!("signing_key_pkcs8 {}", file.key_id), &pkcs8)
                    .ok_or_else(wrong)?;
            master.fill(0);
            pkcs8.fill(0);
            master = opened_master;
            pkcs8 = opened_pkcs8;
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &master);
        master.fill(0);
        let unbound = unbound.map_err(|_| bad("not valid: master_key"))?;
        let signing = Ed25519KeyPair::from_pkcs8(&pkcs8);
        pkcs8.fill(0);
        let signing = signing.map_err(|_| bad("not valid: signing key"))?;
        Ok(LocalKeyring {
            path: path.to_path_buf(),
            key_id: file.key_id,
            master: LessSafeKey::new(unbound),
            signing_key_id: file.signing_key_id,
            signing,
        })
    }

    /// Returns the manifest signer this keyring holds.
    pub fn signer(&self) -> Signer<'_> {
        Signer { key_id: &self.signing_key_id, pair: &self.signing }
    }

    fn wrap(&self, key: &DataKey, context: &BTreeMap<String, String>) -> LakeResult<WrappedKey> {
        Ok(WrappedKey {
            provider: PROVIDER_LOCAL.to_string(),
            key_id: self.key_id.clone(),
            ciphertext: aead_wrap(&self.master, key, context)?,
            context: context.clone(),
        })
    }
}

/// Wraps `key` with AES-256-GCM under `wrapping` (random nonce first), the context as
/// associated data; returns the base64 blob.
pub(crate) fn aead_wrap(
    wrapping: &LessSafeKey,
    key: &DataKey,
    context: &BTreeMap<String, String>,
) -> LakeResult<String> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| LakeError::config("failed to draw a random nonce"))?;
    let mut sealed = key.expose().to_vec();
    wrapping
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context_aad(context)),
            &mut sealed,
        )
        .map_err(|_| LakeError::integrity("failed to wrap a data key"))?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    sealed.fill(0);
    Ok(B64.encode(blob))
}

/// Unwraps what [`aead_wrap`] made; `wrapper` names the wrapping key in errors.
pub(crate) fn aead_unwrap(
    wrapping: &LessSafeKey,
    wrapped: &WrappedKey,
    wrapper: &str,
) -> LakeResult<DataKey> {
    let blob = ciphertext_of(wrapped)?;
    if blob.len() < NONCE_LEN {
        return Err(LakeError::format("wrapped key is too short"));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| LakeError::format("wrapped key nonce"))?;
    let mut buffer = sealed.to_vec();
    let plain = wrapping
        .open_in_place(nonce, Aad::from(context_aad(&wrapped.context)), &mut buffer)
        .map_err(|_| {
            LakeError::integrity(format!(
                "data key does not unwrap under {wrapper} with context {:?}",
                wrapped.context
            ))
        })?;
    let key = DataKey::from_slice(plain)
        .ok_or_else(|| LakeError::format("unwrapped data key is not 32 bytes"));
    buffer.fill(0);
    key
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(
        &self,
        context: BTreeMap<String, String>,
    ) -> LakeResult<(DataKey, WrappedKey)> {
        let key = DataKey::random()?;
        let wrapped = self.wrap(&key, &context)?;
        Ok((key, wrapped))
    }

    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        if wrapped.key_id != self.key_id {
            return Err(LakeError::new(
                LakeErrorKind::NotFound,
                format!(
                    "data key is wrapped by {}, but keyring {} holds {}",
                    wrapped.key_id,
                    self.path.display(),
                    self.key_id
                ),
            ));
        }
        aead_unwrap(&self.master, wrapped, &self.key_id)
    }

    async fn wrap_data_key(
        &self,
        key: &DataKey,
        context: BTreeMap<String, String>,
    ) -> LakeResult<WrappedKey> {
        self.wrap(key, &context)
    }
}

/// Signs manifests with an Ed25519 key.
pub struct Signer<'a> {
    key_id: &'a str,
    pair: &'a Ed25519KeyPair,
}

impl<'a> Signer<'a> {
    /// Returns the signing key's id.
    pub fn key_id(&self) -> &'a str {
        self.key_id
    }

    /// Returns the public key bytes.
    pub fn public_key(&self) -> &'a [u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// Checks an Ed25519 signature.
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Writes `bytes` to `path` readable by the owner only, unless `path` exists. Returns false when
/// another process created it first (its file is kept). The bytes go to a temporary file of a
/// unique name, then are hard-linked into place: the final name appears whole or not at all.
fn write_private_file(path: &Path, bytes: &[u8]) -> LakeResult<bool> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |error: std::io::Error| {
        LakeError::config(format!("failed to create keyring {}: {error}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut unique = [0u8; 8];
    SystemRandom::new().fill(&mut unique).map_err(|_| LakeError::config("no randomness"))?;
    let temporary = path.with_extension(format!("{}.tmp", hex::encode(unique)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let removed = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => removed.map(|()| true).map_err(fail),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(fail(error)),
    }
}

/// Data keys from AWS KMS: `GenerateDataKey` (AES_256) and `Decrypt`, with the encryption context.
#[derive(Clone)]
pub struct KmsKeyProvider {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl fmt::Debug for KmsKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKeyProvider").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KmsKeyProvider {
    /// Returns a provider that wraps new keys under `key_id` (id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        KmsKeyProvider { client, key_id: key_id.into() }
    }

    /// Returns the ARN of the key (`DescribeKey`): wrapped keys name their key by ARN, whatever
    /// id or alias they were made with.
    pub async fn key_arn(&self) -> LakeResult<String> {
        let output = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|error| kms_error("DescribeKey", &self.key_id, error))?;
        output.key_metadata().and_then(|metadata| metadata.arn()).map(str::to_string).ok_or_else(
            || LakeError::format(format!("kms DescribeKey of {} gave no ARN", self.key_id)),
        )
    }

    /// Returns the key that KMS `action` (GenerateDataKey, Encrypt) wrapped as `ciphertext`
    /// under `context`, named by the key id KMS answered with (its ARN, so that Decrypt can
    /// name the key), else by this provider's.
    fn wrapped(
        &self,
        action: &str,
        answered_key_id: Option<&str>,
        ciphertext: Option<&aws_sdk_kms::primitives::Blob>,
        context: BTreeMap<String, String>,
    ) -> LakeResult<WrappedKey> {
        let ciphertext = ciphertext
            .ok_or_else(|| LakeError::format(format!("kms {action} returned no ciphertext")))?;
        Ok(WrappedKey {
            provider: PROVIDER_KMS.to_string(),
            key_id: answered_key_id.unwrap_or(&self.key_id).to_string(),
            ciphertext: B64.encode(ciphertext.as_ref()),
            context,
        })
    }
}

/// Converts a KMS failure into a [`LakeError`] that names the action and the key and says what
/// KMS answered — its error code and message, or the kind of transport failure — and never the
/// raw HTTP response: the response to a `GenerateDataKey` or `Decrypt` the SDK could not parse
/// holds a plaintext data key.
pub(crate) fn kms_error<E>(
    action: &str,
    key_id: &str,
    error: aws_sdk_kms::error::SdkError<E>,
) -> LakeError
where
    E: std::error::Error + Send + Sync + aws_sdk_kms::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_kms::error::SdkError;
    let code = match &error {
        SdkError::ServiceError(service) => service.err().code().map(str::to_string),
        _ => None,
    };
    let kind = match code.as_deref() {
        Some("NotFoundException") => LakeErrorKind::NotFound,
        Some(
            "AccessDeniedException"
            | "DisabledException"
            | "KMSInvalidStateException"
            | "IncorrectKeyException"
            | "InvalidKeyUsageException",
        ) => LakeErrorKind::Denied,
        Some("InvalidCiphertextException") => LakeErrorKind::Integrity,
        Some("ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException")
        | None => LakeErrorKind::Unavailable,
        Some(_) => LakeErrorKind::Denied,
    };
    let what = match &error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("an unnamed error");
            match service.err().message() {
                Some(message) => format!("{code} (HTTP {status}): {message}"),
                None => format!("{code} (HTTP {status})"),
            }
        }
        // The body of an answer that did not parse may be a successful one, data key and all.
        SdkError::ResponseError(response) => format!(
            "an answer that could not be read (HTTP {}; body not shown)",
            response.raw().status().as_u16()
        ),
        // No response to leak: the chain of causes says what the transport did.
        SdkError::DispatchFailure(_)
        | SdkError::TimeoutError(_)
        | SdkError::ConstructionFailure(_) => {
            aws_sdk_kms::error::DisplayErrorContext(&error).to_string()
        }
        _ => "an unknown failure".to_string(),
    };
    LakeError::new(kind, format!("kms {action} with key {key_id} failed: {what}"))
}

#[async_trait]
impl KeyProvider for KmsKeyProvider {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn generate_data_key(
        &self,
        context: BTreeMap<String, String>,
    ) -> LakeResult<(DataKey, WrappedKey)> {
        let output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|error| kms_error("GenerateDataKey", &self.key_id, error))?;
        let plaintext = output
            .plaintext()
            .and_then(|blob| DataKey::from_slice(blob.as_ref()))
            .ok_or_else(|| LakeError::format("kms GenerateDataKey returned no 32-byte key"))?;
        let wrapped =
            self.wrapped("GenerateDataKey", output.key_id(), output.ciphertext_blob(), context)?;
        Ok((plaintext, wrapped))
    }

    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        let blob = ciphertext_of(wrapped)?;
        let output = self
            .client
            .decrypt()
            .key_id(&wrapped.key_id)
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
            .set_encryption_context(Some(wrapped.context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|error| kms_error("Decrypt", &wrapped.key_id, error))?;
        output
            .plaintext()
            .and_then(|blob| DataKey::from_slice(blob.as_ref()))
            .ok_or_else(|| LakeError::format("kms Decrypt returned no 32-byte key"))
    }

    async fn wrap_data_key(
        &self,
        key: &DataKey,
        context: BTreeMap<String, String>,
    ) -> LakeResult<WrappedKey> {
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(key.expose().to_vec()))
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|error| kms_error("Encrypt", &self.key_id, error))?;
        self.wrapped("Encrypt", output.key_id(), output.ciphertext_blob(), context)
    }
}

/// Unwraps data keys whichever provider wrapped them: the local keyring, or KMS (the client is
/// built on first use, so a local-only lake never loads AWS configuration). Unwrapped keys are
/// cached ([`KeyCache`], default policy): a search over many files of one session asks once.
#[derive(Clone)]
pub struct Keys {
    keyring: Option<Arc<LocalKeyring>>,
    kms: Arc<OnceLock<aws_sdk_kms::Client>>,
    sdk_config: Option<aws_config::SdkConfig>,
    cache: Arc<KeyCache>,
    /// Where session key records are read from.
    store: Option<crate::store::LakeStore>,
    /// The session key records the trusted chain committed (size and SHA-256, by path); when
    /// set, a record is used only if it is one of them, byte for byte.
    committed: Option<Arc<HashMap<String, (u64, String)>>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

impl Keys {
    /// Returns an unwrapper over an optional keyring and optional AWS configuration.
    pub fn new(
        keyring: Option<Arc<LocalKeyring>>,
        sdk_config: Option<aws_config::SdkConfig>,
    ) -> Self {
        Keys {
            keyring,
            kms: Arc::new(OnceLock::new()),
            sdk_config,
            cache: Arc::new(KeyCache::new(KeyCachePolicy {
                max_uses: u64::MAX,
                ..KeyCachePolicy::default()
            })),
            store: None,
            committed: None,
        }
    }

    /// Reads session key records ([`crate::session_keys`]) from `store`.
    pub fn with_store(mut self, store: crate::store::LakeStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses only the session key records that `live` (a trusted live set) commits, checked
    /// against their committed size and SHA-256 before their key is used.
    pub fn with_committed(
        mut self,
        live: &std::collections::BTreeMap<String, sessionlake_schemas::manifest::ObjectEntry>,
    ) -> Self {
        let records = live
            .values()
            .filter(|entry| entry.kind == sessionlake_schemas::manifest::ObjectKind::SessionKey)
            .map(|entry| (entry.path.clone(), (entry.size, entry.sha256.clone())))
            .collect();
        self.committed = Some(Arc::new(records));
        self
    }

    /// Returns a KMS provider wrapping new keys under `key_id`, with the loaded AWS configuration.
    pub fn kms_provider(&self, key_id: &str) -> LakeResult<KmsKeyProvider> {
        let Some(config) = &self.sdk_config else {
            return Err(LakeError::config(format!(
                "key {key_id} is in AWS KMS, and no AWS configuration was loaded"
            )));
        };
        let client = self.kms.get_or_init(|| aws_sdk_kms::Client::new(config)).clone();
        Ok(KmsKeyProvider::new(client, key_id))
    }

    /// Returns the local keyring, if one was opened.
    pub fn keyring(&self) -> Option<&Arc<LocalKeyring>> {
        self.keyring.as_ref()
    }

    /// Unwraps `wrapped` with the provider that wrapped it.
    pub async fn decrypt(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        self.cache.unwrap_with(wrapped, || self.decrypt_uncached(wrapped)).await
    }

    /// Returns the data key of a raw transcript (`sealed`, already checked against its
    /// manifest `entry`). The key must be bound to `session`, the raw role and the lake
    /// (`lake_id`, when the lake has one): a transcript moved here from another session's
    /// path, or another lake, is refused.
    pub async fn raw_data_key(
        &self,
        entry: &sessionlake_schemas::manifest::ObjectEntry,
        sealed: &[u8],
        session: &str,
        lake_id: Option<&str>,
    ) -> LakeResult<DataKey> {
        let mut cursor = std::io::Cursor::new(sealed);
        let (header, _) = crate::envelope::read_header(&mut cursor, &entry.path)?;
        self.header_data_key(entry, &header, session, lake_id).await
    }

    /// Returns the data key of a raw transcript whose header is `header`; see
    /// [`Keys::raw_data_key`].
    async fn header_data_key(
        &self,
        entry: &sessionlake_schemas::manifest::ObjectEntry,
        header: &sessionlake_schemas::envelope::EnvelopeHeader,
        session: &str,
        lake_id: Option<&str>,
    ) -> LakeResult<DataKey> {
        // `sessionlake rekey` re-wraps the data key in the (signed) manifest and leaves the
        // object's bytes alone: the manifest's wrapping, when there is one, is the current one.
        let wrapped = entry.key.as_deref().unwrap_or(&header.key);
        check_context(
            wrapped,
            &entry.path,
            session,
            sessionlake_schemas::envelope::ROLE_RAW,
            lake_id,
        )?;
        self.decrypt(wrapped).await.map_err(|error| {
            LakeError::new(
                error.kind(),
                format!("failed to get the data key of {}: {error}", entry.path),
            )
        })
    }

    /// Opens a raw transcript with [`Keys::raw_data_key`] and returns the original bytes,
    /// refusing more than `limit` of them (see [`crate::envelope::MAX_DECOMPRESSED_LEN`]).
    /// Decrypting and decompressing run on the calling thread.
    pub async fn open_raw(
        &self,
        entry: &sessionlake_schemas::manifest::ObjectEntry,
        sealed: &[u8],
        session: &str,
        lake_id: Option<&str>,
        limit: u64,
    ) -> LakeResult<Vec<u8>> {
        let key = self.raw_data_key(entry, sealed, session, lake_id).await?;
        crate::envelope::open_bytes(&entry.path, sealed, &key, limit)
    }

    /// Opens the committed raw transcript `entry` of `store` as a stream and writes its
    /// plaintext to `out` as it decrypts, in memory bounded by one chunk, zstd's window and a
    /// few reads, whatever the size of the transcript.
    ///
    /// The stored bytes are first hashed in a streaming pass and checked against the manifest
    /// entry: nothing is decrypted, let alone written, from an object that is not the one
    /// committed. They are then read again, decrypted chunk by chunk (each chunk authenticated
    /// before a byte of it is used) and decompressed with the decompression `limit`; that
    /// second read is hashed too, so an object replaced between the passes is an error. On an
    /// error after the first chunk, `out` holds an authenticated prefix of the transcript.
    ///
    /// Returns the number of bytes written, or the writer's own error (a closed pipe, a full
    /// disk) as the inner result; the outer error is the lake's (missing, altered, no key).
    pub async fn open_raw_to<W: std::io::Write + Send + 'static>(
        &self,
        store: &crate::store::LakeStore,
        entry: &sessionlake_schemas::manifest::ObjectEntry,
        session: &str,
        lake_id: Option<&str>,
        limit: u64,
        out: W,
    ) -> LakeResult<std::io::Result<u64>> {
        use futures::StreamExt as _;

        let object = store.describe(&entry.path);
        let altered = |size: u64, sha: &str| {
            LakeError::integrity(format!(
                "{object} was altered: {size} bytes sha256 {sha}, committed {} bytes sha256 {}",
                entry.size, entry.sha256
            ))
        };
        let Some((size, sha)) = store.hash(&entry.path).await? else {
            return Err(LakeError::new(
                LakeErrorKind::NotFound,
                format!("{object} is committed but not stored"),
            ));
        };
        if size != entry.size || sha != entry.sha256 {
            return Err(altered(size, &sha));
        }
        let header_end =
            entry.size.min(8 + u64::from(sessionlake_schemas::envelope::MAX_HEADER_LEN));
        let prefix = store.get_range(&entry.path, 0..header_end).await?;
        let (header, header_bytes) =
            crate::envelope::read_header(&mut std::io::Cursor::new(&prefix[..]), &entry.path)?;
        let key =
            self.header_data_key(entry, &header, session, lake_id).await.map_err(|error| {
                LakeError::new(
                    error.kind(),
                    format!("failed to get the data key of {}: {error}", entry.path),
                )
            })?;

        // The store's chunks go to a blocking thread that decrypts, decompresses and writes.
        let (chunks_in, chunks_out) = tokio::sync::mpsc::channel::<Bytes>(OPEN_STREAM_DEPTH);
        let path = entry.path.clone();
        let opener = tokio::task::spawn_blocking(move || {
            open_stream_to(ChannelReader::new(chunks_out), &path, &header_bytes, &key, limit, out)
        });
        let mut stream = store.get_stream(&entry.path).await?;
        let mut digest = crate::store::StreamDigest::default();
        let mut read_error = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    digest.update(&chunk);
                    if chunks_in.send(chunk).await.is_err() {
                        break; // the opener stopped (an error, or the reader went away)
                    }
                }
                Err(error) => {
                    read_error = Some(error);
                    break;
                }
            }
        }
        drop(chunks_in);
        let opened = opener
            .await
            .map_err(|join| LakeError::integrity(format!("opening {object} failed: {join}")))?;
        if let Some(error) = read_error {
            return Err(error);
        }
        let written = opened?;
        if written.is_ok() {
            let (size, sha) = digest.finish();
            if size != entry.size || sha != entry.sha256 {
                return Err(altered(size, &sha));
            }
        }
        Ok(written)
    }

    async fn decrypt_uncached(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        match wrapped.provider.as_str() {
            PROVIDER_LOCAL => match &self.keyring {
                Some(keyring) => keyring.decrypt_data_key(wrapped).await,
                None => Err(LakeError::config(format!(
                    "data key {} needs a local keyring (--keyring)",
                    wrapped.key_id
                ))),
            },
            PROVIDER_KMS => self.kms_provider(&wrapped.key_id)?.decrypt_data_key(wrapped).await,
            crate::session_keys::PROVIDER_SESSION => {
                let Some(store) = &self.store else {
                    return Err(LakeError::config(format!(
                        "data key under session key {} needs the lake to read it from",
                        wrapped.key_id
                    )));
                };
                let committed = self.committed.as_deref();
                let record = crate::session_keys::read_record(store, wrapped, committed).await?;
                // The session key is itself a data key of the provider: unwrapped (and cached)
                // the same way.
                let session_key = Box::pin(self.decrypt(&record.key)).await?;
                crate::session_keys::unwrap_data_key(&session_key, wrapped)
            }
            other => Err(LakeError::format(format!("unknown key provider {other:?}"))),
        }
    }
}

/// Chunks of a stored object in flight between the store and the thread that opens it.
const OPEN_STREAM_DEPTH: usize = 4;

/// A blocking reader over chunks sent from async code.
struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { chunks, current: Bytes::new() }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let take = self.current.len().min(out.len());
        out[..take].copy_from_slice(&self.current[..take]);
        bytes::Buf::advance(&mut self.current, take);
        Ok(take)
    }
}

/// Opens the sealed stream `sealed` (whose header must be `header_bytes`, the one the key was
/// found from) and copies the plaintext to `out`; see [`Keys::open_raw_to`].
fn open_stream_to<R: std::io::Read, W: std::io::Write>(
    mut sealed: R,
    object: &str,
    header_bytes: &[u8],
    key: &DataKey,
    limit: u64,
    mut out: W,
) -> LakeResult<std::io::Result<u64>> {
    let (header, read_bytes) = crate::envelope::read_header(&mut sealed, object)?;
    if read_bytes != header_bytes {
        return Err(LakeError::integrity(format!("{object} changed while being read")));
    }
    let opened = crate::envelope::OpenReader::new(sealed, object, &header, &read_bytes, key);
    let mut plaintext = crate::decompress::bounded_zstd(opened, limit, object)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let read = match std::io::Read::read(&mut plaintext, &mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(LakeError::integrity(format!("failed to open {object}: {error}")));
            }
        };
        if let Err(error) = out.write_all(&buffer[..read]) {
            return Ok(Err(error));
        }
        written += read as u64;
    }
    Ok(out.flush().map(|()| written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(subject: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("sessionlake:subject".to_string(), subject.to_string())])
    }

    #[tokio::test]
    async fn test_keyring_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/keyring.json");
        let (keyring, created) = LocalKeyring::open_or_create(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (key, wrapped) = keyring.generate_data_key(context("s-1")).await.expect("generate");
        let reopened = LocalKeyring::open(&path).expect("reopen");
        let unwrapped = reopened.decrypt_data_key(&wrapped).await.expect("decrypt");
        assert_eq!(unwrapped.expose(), key.expose());
    }

    #[tokio::test]
    async fn test_keyring_created_by_another_process_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keyring.json");
        let (first, _) = LocalKeyring::open_or_create(&path).expect("first");
        // A second creator that lost the race must end up with the file's keys.
        let second = LocalKeyring::create(&path).expect("second");
        assert_eq!(second.key_id(), first.key_id());
        let (_, wrapped) = second.generate_data_key(context("s-1")).await.expect("generate");
        first.decrypt_data_key(&wrapped).await.expect("first opens what second wrapped");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }

    #[tokio::test]
    async fn test_passphrase_protected_keyring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.json");
        let created = LocalKeyring::create_with(&path, Some("correct horse")).expect("create");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(KDF_PBKDF2_SHA256), "{text}");
        let (key, wrapped) = created.generate_data_key(context("s-1")).await.expect("generate");

        let bytes = text.as_bytes();
        let reopened = LocalKeyring::parse_with(&path, bytes, Some("correct horse")).expect("open");
        let unwrapped = reopened.decrypt_data_key(&wrapped).await.expect("decrypt");
        assert_eq!(unwrapped.expose(), key.expose());
        assert_eq!(reopened.signer().public_key(), created.signer().public_key());

        let missing = LocalKeyring::parse_with(&path, bytes, None).expect_err("no passphrase");
        assert!(missing.to_string().contains(PASSPHRASE_ENV), "{missing}");
        let wrong = LocalKeyring::parse_with(&path, bytes, Some("battery staple"))
            .expect_err("wrong passphrase");
        assert_eq!(wrong.kind(), LakeErrorKind::Denied);
        // Swapping the two sealed fields (or weakening the KDF) does not open either.
        let mut file: serde_json::Value = serde_json::from_str(&text).expect("json");
        let master = file["master_key"].clone();
        file["master_key"] = file["signing_key_pkcs8"].clone();
        file["signing_key_pkcs8"] = master;
        let swapped = serde_json::to_vec(&file).expect("json");
        assert!(LocalKeyring::parse_with(&path, &swapped, Some("correct horse")).is_err());
        let mut weak: serde_json::Value = serde_json::from_str(&text).expect("json");
        weak["protection"]["iterations"] = 1.into();
        let weak = serde_json::to_vec(&weak).expect("json");
        let refused =
            LocalKeyring::parse_with(&path, &weak, Some("correct horse")).expect_err("weakened");
        assert!(refused.to_string().contains("iterations"), "{refused}");
    }

    #[tokio::test]
    async fn test_keyring_rejects_another_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("create");
        let (_, mut wrapped) = keyring.generate_data_key(context("s-1")).await.expect("generate");
        wrapped.context = context("s-2");
        let error = keyring.decrypt_data_key(&wrapped).await.expect_err("context differs");
        assert_eq!(error.kind(), LakeErrorKind::Integrity);
    }

    #[test]
    fn test_context_check_names_what_differs() {
        let wrapped = |context: &[(&str, &str)]| WrappedKey {
            provider: PROVIDER_LOCAL.into(),
            key_id: "local:x".into(),
            ciphertext: String::new(),
            context: context.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let full = wrapped(&[
            ("sessionlake:lake", "lake-1"),
            ("sessionlake:subject", "s-1"),
            ("sessionlake:role", "raw"),
        ]);
        assert!(check_context(&full, "o", "s-1", "raw", Some("lake-1")).is_ok());
        assert!(check_context(&full, "o", "s-1", "raw", None).is_ok());
        let error = check_context(&full, "raw/o", "s-2", "commands", Some("lake-9"))
            .expect_err("all three differ");
        assert_eq!(error.kind(), LakeErrorKind::Integrity);
        let text = error.to_string();
        for part in ["raw/o", "\"s-1\"", "not s-2", "\"raw\"", "\"lake-1\", not lake-9"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        // A key from before roles and lake ids: only the session is checked.
        let old = wrapped(&[("sessionlake:subject", "s-1")]);
        assert!(check_context(&old, "o", "s-1", "raw", Some("lake-1")).is_ok());
    }

    /// A transcript of several chunks streams out whole; an altered object yields not a byte.
    #[tokio::test]
    async fn test_raw_transcript_streams_out_only_when_it_is_the_committed_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let keyring = Arc::new(keyring);
        let store = crate::store::LakeStore::in_memory();
        let raw_context = BTreeMap::from([
            ("sessionlake:subject".to_string(), "s-1".to_string()),
            ("sessionlake:role".to_string(), "raw".to_string()),
        ]);
        let (key, wrapped) = keyring.generate_data_key(raw_context).await.expect("key");
        // Several sealed chunks, and not much to compress.
        let transcript: Vec<u8> =
            (0..600_000u32).flat_map(|n| n.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
        let sealed = crate::envelope::seal_bytes(&transcript, &key, &wrapped).expect("seal");
        let path = "raw/dt=2026-03-14/s-1.local.v1.raw.zst.enc";
        let stored = store.put(path, Bytes::from(sealed.clone())).await.expect("put");
        let entry = sessionlake_schemas::manifest::ObjectEntry::new(
            stored.path,
            stored.size,
            stored.sha256,
            sessionlake_schemas::manifest::ObjectKind::Raw,
            vec!["s-1".into()],
        );
        let keys = Keys::new(Some(Arc::clone(&keyring)), None);
        let limit = crate::envelope::MAX_DECOMPRESSED_LEN;
        let opened = keys
            .open_raw_to(&store, &entry, "s-1", None, limit, Vec::new())
            .await
            .expect("opens")
            .expect("writes");
        assert_eq!(opened, transcript.len() as u64);

        // Capture what is written through a shared buffer.
        #[derive(Clone, Default)]
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let whole = Shared::default();
        keys.open_raw_to(&store, &entry, "s-1", None, limit, whole.clone())
            .await
            .expect("opens")
            .expect("writes");
        assert!(*whole.0.lock().expect("lock") == transcript, "the bytes differ");

        let mut altered = sealed;
        let last = altered.len() - 1;
        altered[last] ^= 1;
        store.put(path, Bytes::from(altered)).await.expect("alter");
        let out = Shared::default();
        let error = keys
            .open_raw_to(&store, &entry, "s-1", None, limit, out.clone())
            .await
            .expect_err("altered");
        assert_eq!(error.kind(), LakeErrorKind::Integrity, "{error}");
        assert!(error.to_string().contains(path), "{error}");
        assert!(out.0.lock().expect("lock").is_empty(), "plaintext written from an altered object");

        // Another session's transcript is refused before anything is decrypted.
        store
            .put(
                path,
                Bytes::from(
                    crate::envelope::seal_bytes(&transcript, &key, &wrapped).expect("seal"),
                ),
            )
            .await
            .expect("put");
        let entry = sessionlake_schemas::manifest::ObjectEntry {
            sha256: crate::store::sha256_hex(&store.get(path).await.expect("get")),
            ..entry
        };
        let error = keys
            .open_raw_to(&store, &entry, "s-2", None, limit, Vec::new())
            .await
            .expect_err("other session");
        assert_eq!(error.kind(), LakeErrorKind::Integrity, "{error}");
    }

    #[test]
    fn test_keyring_debug_shows_no_key_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.json");
        let keyring = LocalKeyring::create_with(&path, None).expect("create");
        let file: KeyringFile =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("keyring file");
        let shown = format!("{keyring:?} {keyring:#?}");
        assert!(shown.contains(&file.key_id), "{shown}");
        for (field, encoded) in
            [("master_key", &file.master_key), ("signing_key_pkcs8", &file.signing_key_pkcs8)]
        {
            let bytes = B64.decode(encoded).expect("base64");
            crate::secret::assert_no_key_bytes(&shown, &bytes, field);
            // The private half of the Ed25519 key sits at the end of its PKCS#8 document.
            if bytes.len() > 32 {
                crate::secret::assert_no_key_bytes(&shown, &bytes[16..48], field);
            }
        }
    }

    #[test]
    fn test_kms_errors_name_the_code_and_never_the_raw_response() {
        use aws_sdk_kms::config::http::HttpResponse;
        use aws_sdk_kms::error::{ErrorMetadata, SdkError};
        use aws_sdk_kms::operation::decrypt::DecryptError;
        use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
        use aws_smithy_types::body::SdkBody;

        let response = |status: u16, body: &str| {
            HttpResponse::new(status.try_into().expect("status"), SdkBody::from(body.to_string()))
        };
        // The key material a successful answer carries, in an answer the SDK failed to read.
        let secret_key = "c2VjcmV0LWRhdGEta2V5LWJ5dGVzLTAxMjM0NTY3ODk=";
        let body = format!(r#"{{"KeyId":"k","Plaintext":"{secret_key}","CiphertextBlob":"x"#);
        let unreadable: SdkError<GenerateDataKeyError, HttpResponse> =
            SdkError::response_error("unexpected end of JSON", response(200, &body));
        let error = kms_error("GenerateDataKey", "alias/lake", unreadable);
        let text = format!("{error} {error:?}");
        assert!(!text.contains(secret_key) && !text.contains("Plaintext"), "{text}");
        assert!(text.contains("GenerateDataKey") && text.contains("alias/lake"), "{text}");
        assert_eq!(error.kind(), LakeErrorKind::Unavailable);

        let cases = [
            (
                "AccessDeniedException",
                "not authorized to perform: kms:Decrypt",
                LakeErrorKind::Denied,
            ),
            (
                "DisabledException",
                "arn:aws:kms:us-east-1:1:key/k is disabled.",
                LakeErrorKind::Denied,
            ),
            ("InvalidCiphertextException", "The ciphertext is invalid", LakeErrorKind::Integrity),
            ("ThrottlingException", "Rate exceeded", LakeErrorKind::Unavailable),
        ];
        for (code, message, kind) in cases {
            let raw_body = format!(r#"{{"__type":"{code}","message":"{message}","raw":"marker"}}"#);
            let metadata = ErrorMetadata::builder().code(code).message(message).build();
            let failed: SdkError<DecryptError, HttpResponse> =
                SdkError::service_error(DecryptError::generic(metadata), response(400, &raw_body));
            let error = kms_error("Decrypt", "arn:aws:kms:us-east-1:1:key/k", failed);
            let text = error.to_string();
            assert_eq!(
                text,
                format!(
                    "kms Decrypt with key arn:aws:kms:us-east-1:1:key/k failed: {code} (HTTP 400): \
                     {message}"
                ),
                "{code}"
            );
            assert_eq!(error.kind(), kind, "{code}");
        }
    }

    #[test]
    fn test_signatures_verify_and_reject_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("create");
        let signer = keyring.signer();
        let signature = signer.sign(b"manifest");
        assert!(verify_ed25519(signer.public_key(), b"manifest", &signature));
        assert!(!verify_ed25519(signer.public_key(), b"manifesT", &signature));
    }
}
