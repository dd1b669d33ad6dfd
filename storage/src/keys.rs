//! Key providers: where data keys come from and how they are wrapped.
//!
//! Every session gets its own data keys. A [`KeyProvider`] generates a key and returns it twice:
//! in plaintext (kept in memory only) and wrapped under a provider key, bound to an encryption
//! context. Two providers exist: [`KmsKeyProvider`] (AWS KMS `GenerateDataKey`/`Decrypt`) and
//! [`LocalKeyring`] (a 0600 file holding a master key, for the embedded default and tests).
//! [`Keys`] unwraps a key whichever provider wrapped it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use sessionlake_schemas::envelope::WrappedKey;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
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
}

fn ciphertext_of(wrapped: &WrappedKey) -> LakeResult<Vec<u8>> {
    B64.decode(&wrapped.ciphertext)
        .map_err(|_| LakeError::format(format!("wrapped key of {} is not base64", wrapped.key_id)))
}

fn context_aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    // A BTreeMap serialises in key order, so the bytes do not depend on insertion order.
    serde_json::to_vec(context).unwrap_or_default()
}

/// The on-disk form of a local keyring (version 1).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    version: u32,
    /// Id of the master key, e.g. `local:5f0c…`.
    key_id: String,
    /// The 256-bit master key, base64.
    master_key: String,
    /// Id of the manifest signing key.
    signing_key_id: String,
    /// The Ed25519 signing key, PKCS#8 v2, base64.
    signing_key_pkcs8: String,
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
        let rng = SystemRandom::new();
        let mut master = [0u8; 32];
        let mut id = [0u8; 8];
        rng.fill(&mut master)
            .and_then(|()| rng.fill(&mut id))
            .map_err(|_| LakeError::config("failed to draw random bytes for a new keyring"))?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| LakeError::config("failed to generate a signing key"))?;
        let file = KeyringFile {
            version: 1,
            key_id: format!("local:{}", hex::encode(id)),
            master_key: B64.encode(master),
            signing_key_id: format!("ed25519:{}", hex::encode(id)),
            signing_key_pkcs8: B64.encode(pkcs8.as_ref()),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|error| LakeError::config(format!("failed to encode keyring: {error}")))?;
        let won = write_private_file(path, &json)?;
        master.fill(0);
        if won {
            Self::parse(path, &json)
        } else {
            // Another process created the keyring first: use its keys, never ours.
            Self::open(path)
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> LakeResult<LocalKeyring> {
        let bad = |why: &str| LakeError::config(format!("keyring {} is {why}", path.display()));
        let file: KeyringFile =
            serde_json::from_slice(bytes).map_err(|error| bad(&format!("not valid: {error}")))?;
        if file.version != 1 {
            return Err(bad(&format!("version {}, this build reads version 1", file.version)));
        }
        let master = B64.decode(&file.master_key).map_err(|_| bad("not valid: master_key"))?;
        let unbound =
            UnboundKey::new(&AES_256_GCM, &master).map_err(|_| bad("not valid: master_key"))?;
        let pkcs8 =
            B64.decode(&file.signing_key_pkcs8).map_err(|_| bad("not valid: signing key"))?;
        let signing =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| bad("not valid: signing key"))?;
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
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| LakeError::config("failed to draw a random nonce"))?;
        let mut sealed = key.expose().to_vec();
        self.master
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context_aad(context)),
                &mut sealed,
            )
            .map_err(|_| LakeError::integrity("failed to wrap a data key"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(WrappedKey {
            provider: PROVIDER_LOCAL.to_string(),
            key_id: self.key_id.clone(),
            ciphertext: B64.encode(blob),
            context: context.clone(),
        })
    }
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
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| LakeError::config("failed to draw a random data key"))?;
        let key = DataKey::from_slice(&bytes).ok_or_else(|| LakeError::config("data key size"))?;
        bytes.fill(0);
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
        let blob = ciphertext_of(wrapped)?;
        if blob.len() < NONCE_LEN {
            return Err(LakeError::format("wrapped key is too short"));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| LakeError::format("wrapped key nonce"))?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .master
            .open_in_place(nonce, Aad::from(context_aad(&wrapped.context)), &mut buffer)
            .map_err(|_| {
                LakeError::integrity(format!(
                    "data key does not unwrap under {} with context {:?}",
                    self.key_id, wrapped.context
                ))
            })?;
        let key = DataKey::from_slice(plain)
            .ok_or_else(|| LakeError::format("unwrapped data key is not 32 bytes"));
        buffer.fill(0);
        key
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
}

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
    let text = aws_sdk_kms::error::DisplayErrorContext(&error).to_string();
    LakeError::new(kind, format!("kms {action} with key {key_id} failed: {text}"))
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
        let ciphertext = output
            .ciphertext_blob()
            .ok_or_else(|| LakeError::format("kms GenerateDataKey returned no ciphertext"))?;
        // KMS answers with the key's ARN; keep it so Decrypt can name the key.
        let key_id = output.key_id().unwrap_or(&self.key_id).to_string();
        Ok((
            plaintext,
            WrappedKey {
                provider: PROVIDER_KMS.to_string(),
                key_id,
                ciphertext: B64.encode(ciphertext.as_ref()),
                context,
            },
        ))
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
}

/// Unwraps data keys whichever provider wrapped them: the local keyring, or KMS (the client is
/// built on first use, so a local-only lake never loads AWS configuration).
#[derive(Clone)]
pub struct Keys {
    keyring: Option<Arc<LocalKeyring>>,
    kms: Arc<OnceLock<aws_sdk_kms::Client>>,
    sdk_config: Option<aws_config::SdkConfig>,
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
        Keys { keyring, kms: Arc::new(OnceLock::new()), sdk_config }
    }

    /// Unwraps `wrapped` with the provider that wrapped it.
    pub async fn decrypt(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        match wrapped.provider.as_str() {
            PROVIDER_LOCAL => match &self.keyring {
                Some(keyring) => keyring.decrypt_data_key(wrapped).await,
                None => Err(LakeError::config(format!(
                    "data key {} needs a local keyring (--keyring)",
                    wrapped.key_id
                ))),
            },
            PROVIDER_KMS => {
                let Some(config) = &self.sdk_config else {
                    return Err(LakeError::config(format!(
                        "data key {} needs AWS KMS, and no AWS configuration was loaded",
                        wrapped.key_id
                    )));
                };
                let client = self.kms.get_or_init(|| aws_sdk_kms::Client::new(config)).clone();
                KmsKeyProvider::new(client, wrapped.key_id.clone()).decrypt_data_key(wrapped).await
            }
            other => Err(LakeError::format(format!("unknown key provider {other:?}"))),
        }
    }
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
