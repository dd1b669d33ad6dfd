//! Session keys: one key per session version, between the provider key and the data keys, so
//! that a session can be crypto-shredded.
//!
//! ```text
//! provider key (KMS or keyring) ──wraps──► session key  (keys/sessions/<stem>.key.json)
//! session key (AES-256-GCM)     ──wraps──► data key of each object of that session version
//!                                           (raw header, commands file's manifest entry)
//! ```
//!
//! A compacted `commands` file and an `access` file hold rows of many sessions: each has a key of
//! its own the same way, a *file key* (`keys/files/<the file's path>.key.json`,
//! [`SessionKey::create_for_file`]), which goes with its file: a commit that removes the file
//! removes its record ([`file_key_records`]). A shred rewrites the files holding a session
//! without it and deletes the old files with their records, so every copy of an old file
//! becomes unreadable too; `rekey` re-wraps file keys like session keys, which is what engines
//! reading the files' standard key material need, as footers never change.
//!
//! A data key wrapped this way names provider [`PROVIDER_SESSION`] and, as its key id, the path
//! of the record holding the session key. Deleting a session's records (`sessionlake shred`)
//! leaves no key that opens its objects, wherever copies of them are (a bucket replica, a
//! backup, an export of the ciphertext); the provider key alone no longer helps. The records
//! are committed in the manifest like any object, so verify tells a shred from a deletion.

use std::collections::BTreeMap;

use bytes::Bytes;
use ring::aead::LessSafeKey;
use sessionlake_schemas::envelope::{
    CONTEXT_RECORD, CONTEXT_ROLE, ROLE_FILE, ROLE_SESSION, WrappedKey,
};
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind, SessionKeyRecord};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::keys::{KeyProvider, aead_unwrap, aead_wrap};
use crate::secret::DataKey;
use crate::store::LakeStore;

/// Name of the session-key "provider" in [`WrappedKey::provider`].
pub const PROVIDER_SESSION: &str = "session";

/// The key of one session version, in memory.
pub struct SessionKey {
    record: String,
    provider_key_id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey").field("record", &self.record).finish_non_exhaustive()
    }
}

impl SessionKey {
    /// Makes a session key for `context`'s session from `provider`, writes its record to `path`
    /// (durable before any object uses it) and returns it with the record's manifest entry,
    /// to be committed with the objects.
    pub async fn create(
        store: &LakeStore,
        provider: &dyn KeyProvider,
        context: BTreeMap<String, String>,
        session_id: &str,
        path: &str,
    ) -> LakeResult<(SessionKey, ObjectEntry)> {
        let owner =
            Owner { role: ROLE_SESSION, session_id, sessions: vec![session_id.to_string()] };
        Self::create_record(store, provider, context, owner, path).await
    }

    /// Makes the key of the one table file (a compacted `commands` file, an `access` file) to be
    /// written at `file` from `provider`, writes its record (`paths::file_key_object`, durable
    /// before the file uses it) and returns it with the record's manifest entry, to be committed
    /// with the file. `context` names the lake and the file's subject, as its data key's does.
    /// The record names no session (its `session_id` is empty): it goes with its file
    /// ([`file_key_records`]), not with a session.
    pub async fn create_for_file(
        store: &LakeStore,
        provider: &dyn KeyProvider,
        context: BTreeMap<String, String>,
        file: &str,
    ) -> LakeResult<(SessionKey, ObjectEntry)> {
        let path = paths::file_key_object(file).ok_or_else(|| {
            LakeError::format(format!("{file} is not a table file: it has no file key"))
        })?;
        let owner = Owner { role: ROLE_FILE, session_id: "", sessions: Vec::new() };
        Self::create_record(store, provider, context, owner, &path).await
    }

    async fn create_record(
        store: &LakeStore,
        provider: &dyn KeyProvider,
        mut context: BTreeMap<String, String>,
        owner: Owner<'_>,
        path: &str,
    ) -> LakeResult<(SessionKey, ObjectEntry)> {
        context.insert(CONTEXT_ROLE.to_string(), owner.role.to_string());
        // The record's path names the session version (or the file): no two share a context,
        // so a caching provider never hands one the key of another (one that was shredded).
        context.insert(CONTEXT_RECORD.to_string(), path.to_string());
        let (key, wrapped) = provider.generate_data_key(context).await?;
        let provider_key_id = wrapped.key_id.clone();
        let record = SessionKeyRecord {
            session_id: owner.session_id.to_string(),
            created_at: chrono::Utc::now().to_rfc3339(),
            key: wrapped,
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|error| LakeError::format(format!("failed to encode {path}: {error}")))?;
        let stored = store.put(path, Bytes::from(json)).await?;
        let entry = stored.into_entry(ObjectKind::SessionKey, owner.sessions);
        let session_key =
            SessionKey { record: path.to_string(), provider_key_id, key: key.aes_256_gcm() };
        Ok((session_key, entry))
    }

    /// Returns the id of the provider key that wraps this session key (a KMS key ARN, or the
    /// keyring's key id).
    pub fn provider_key_id(&self) -> &str {
        &self.provider_key_id
    }

    /// Returns a fresh data key, and the same wrapped under this session key, bound to
    /// `context`.
    pub fn generate_data_key(
        &self,
        context: BTreeMap<String, String>,
    ) -> LakeResult<(DataKey, WrappedKey)> {
        let key = DataKey::random()?;
        let wrapped = self.wrap(&key, context)?;
        Ok((key, wrapped))
    }

    /// Returns `key` wrapped under this session key, bound to `context`.
    pub fn wrap(&self, key: &DataKey, context: BTreeMap<String, String>) -> LakeResult<WrappedKey> {
        Ok(WrappedKey {
            provider: PROVIDER_SESSION.to_string(),
            key_id: self.record.clone(),
            ciphertext: aead_wrap(&self.key, key, &context)?,
            context,
        })
    }
}

/// Whose key a record holds.
struct Owner<'a> {
    /// The record's role in its key's context ([`ROLE_SESSION`], [`ROLE_FILE`]).
    role: &'static str,
    /// The session, empty for a file key.
    session_id: &'a str,
    /// The sessions its manifest entry names.
    sessions: Vec<String>,
}

/// Returns the live key records of the files `removed` names whose data key is wrapped under a
/// file key ([`SessionKey::create_for_file`]), leaving out those `removed` names already: a
/// file's key leaves the live set in the commit that removes the file, and is deleted with it,
/// so a copy of the old file (a backup, a bucket replica) opens no more once it is deleted.
pub fn file_key_records(
    removed: &[ObjectEntry],
    live: &std::collections::BTreeMap<String, ObjectEntry>,
) -> Vec<ObjectEntry> {
    let named: std::collections::BTreeSet<&str> =
        removed.iter().map(|entry| entry.path.as_str()).collect();
    let mut records = std::collections::BTreeMap::new();
    for entry in removed {
        let Some(wrapped) = &entry.key else { continue };
        // Only the file's own record (named after it) goes with it.
        let own = paths::file_key_object(&entry.path).is_some_and(|own| own == wrapped.key_id);
        if wrapped.provider != PROVIDER_SESSION || !own || named.contains(wrapped.key_id.as_str()) {
            continue;
        }
        if let Some(record) = live.get(&wrapped.key_id) {
            // It goes for the reason its file goes.
            let note = entry.note.clone().or_else(|| record.note.clone());
            records.insert(record.path.clone(), ObjectEntry { note, ..record.clone() });
        }
    }
    records.into_values().collect()
}

/// Reads the session key record a data key names; a missing record is the clear error of a
/// shredded session.
pub(crate) async fn read_record(
    store: &LakeStore,
    wrapped: &WrappedKey,
    committed: Option<&std::collections::HashMap<String, (u64, String)>>,
) -> LakeResult<SessionKeyRecord> {
    let path = &wrapped.key_id;
    let expected = match committed.map(|records| records.get(path.as_str())) {
        Some(None) => {
            return Err(LakeError::integrity(format!(
                "the session key {} is not committed by the trusted chain: its objects are not \
                 opened",
                store.describe(path)
            )));
        }
        Some(Some(expected)) => Some(expected),
        None => None,
    };
    let bytes = store.get_opt(path).await?.ok_or_else(|| {
        LakeError::new(
            LakeErrorKind::NotFound,
            format!(
                "the session key {} is gone (the session was shredded, or its key record \
                 deleted): its objects cannot be decrypted",
                store.describe(path)
            ),
        )
    })?;
    if let Some((size, sha256)) = expected {
        let found = crate::store::sha256_hex(&bytes);
        if bytes.len() as u64 != *size || &found != sha256 {
            return Err(LakeError::integrity(format!(
                "{} was altered: {} bytes sha256 {found}, committed {size} bytes sha256 {sha256}",
                store.describe(path),
                bytes.len()
            )));
        }
    }
    let record: SessionKeyRecord = serde_json::from_slice(&bytes).map_err(|error| {
        LakeError::format(format!("{} is not a session key record: {error}", store.describe(path)))
    })?;
    if let Some(bound_to) = record.key.context.get(CONTEXT_RECORD)
        && bound_to != path
    {
        return Err(LakeError::integrity(format!(
            "{} holds the session key of {bound_to}, copied here",
            store.describe(path)
        )));
    }
    let subject = sessionlake_schemas::envelope::CONTEXT_SUBJECT;
    if record.key.context.get(subject) != wrapped.context.get(subject) {
        return Err(LakeError::integrity(format!(
            "{} holds the key of session {:?}, not of {:?}",
            store.describe(path),
            record.key.context.get(subject),
            wrapped.context.get(subject)
        )));
    }
    Ok(record)
}

/// Unwraps a data key wrapped under `session_key`.
pub(crate) fn unwrap_data_key(session_key: &DataKey, wrapped: &WrappedKey) -> LakeResult<DataKey> {
    aead_unwrap(&session_key.aes_256_gcm(), wrapped, &wrapped.key_id)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::{Keys, LocalKeyring};
    use crate::store::LakeLocation;

    fn context(session: &str, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("sessionlake:subject".to_string(), session.to_string()),
            ("sessionlake:role".to_string(), role.to_string()),
        ])
    }

    #[tokio::test]
    async fn test_data_keys_open_through_the_record_until_it_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let keyring = Arc::new(keyring);
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::new(object_store::memory::InMemory::new()),
        );
        let path = "keys/sessions/s-1.local.v1.key.json";
        let (session_key, entry) =
            SessionKey::create(&store, keyring.as_ref(), context("s-1", "raw"), "s-1", path)
                .await
                .expect("create");
        assert_eq!(
            (entry.kind, entry.sessions.clone()),
            (ObjectKind::SessionKey, vec!["s-1".into()])
        );
        let record: SessionKeyRecord =
            serde_json::from_slice(&store.get(path).await.expect("record")).expect("json");
        assert_eq!(record.key.context["sessionlake:role"], "session");
        assert_eq!(session_key.provider_key_id(), keyring.key_id());
        let session_key_bytes = keyring.decrypt_data_key(&record.key).await.expect("unwrap");
        crate::secret::assert_no_key_bytes(
            &format!("{session_key:?} {session_key:#?}"),
            session_key_bytes.expose(),
            "SessionKey",
        );

        let (key, wrapped) = session_key.generate_data_key(context("s-1", "raw")).expect("key");
        assert_eq!((wrapped.provider.as_str(), wrapped.key_id.as_str()), (PROVIDER_SESSION, path));
        let keys = Keys::new(Some(Arc::clone(&keyring)), None).with_store(store.clone());
        assert_eq!(keys.decrypt(&wrapped).await.expect("open").expose(), key.expose());

        // A data key claiming another session does not open through this record.
        let moved = WrappedKey { context: context("s-2", "raw"), ..wrapped.clone() };
        let fresh = Keys::new(Some(Arc::clone(&keyring)), None).with_store(store.clone());
        assert_eq!(
            fresh.decrypt(&moved).await.expect_err("moved").kind(),
            LakeErrorKind::Integrity
        );

        // Shredded: the record is gone, and with it every way to the data key.
        store.delete(path).await.expect("delete");
        let fresh = Keys::new(Some(keyring), None).with_store(store);
        let error = fresh.decrypt(&wrapped).await.expect_err("shredded");
        assert_eq!(error.kind(), LakeErrorKind::NotFound);
        assert!(error.to_string().contains("shredded"), "{error}");
    }

    /// A caching provider hands the same data key out again for the same context: a session
    /// version ingested after a shred, within the cache's age, must still get a new session
    /// key, or its record would re-wrap the shredded one.
    #[tokio::test]
    async fn test_each_session_version_gets_a_new_key_through_a_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let keyring: Arc<dyn KeyProvider> = Arc::new(keyring);
        let cached = crate::key_cache::CachingKeyProvider::new(
            Arc::clone(&keyring),
            crate::key_cache::KeyCachePolicy::default(),
        );
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::new(object_store::memory::InMemory::new()),
        );
        let first_path = "keys/sessions/s-1.local.v1.key.json";
        let second_path = "keys/sessions/s-1.local.v2.key.json";
        let (first, _) =
            SessionKey::create(&store, &cached, context("s-1", "raw"), "s-1", first_path)
                .await
                .expect("first version");
        // Shredded.
        store.delete(first_path).await.expect("delete");
        let (_second, _) =
            SessionKey::create(&store, &cached, context("s-1", "raw"), "s-1", second_path)
                .await
                .expect("second version");
        let record: SessionKeyRecord =
            serde_json::from_slice(&store.get(second_path).await.expect("record")).expect("json");
        assert_eq!(record.key.context[CONTEXT_RECORD], second_path);

        // A data key of the shredded version does not open under the new version's key.
        let (_, old_wrapped) = first.generate_data_key(context("s-1", "raw")).expect("key");
        let aimed = WrappedKey { key_id: second_path.to_string(), ..old_wrapped };
        let session_key = keyring.decrypt_data_key(&record.key).await.expect("new session key");
        assert!(unwrap_data_key(&session_key, &aimed).is_err(), "the shredded key came back");

        // A record copied under another version's name is refused.
        let copied = store.get(second_path).await.expect("record");
        store.put(first_path, copied).await.expect("copy");
        let keys = Keys::new(None, None).with_store(store);
        let (_, wrapped) = first.generate_data_key(context("s-1", "raw")).expect("key");
        let error = keys.decrypt(&wrapped).await.expect_err("copied record");
        assert_eq!(error.kind(), LakeErrorKind::Integrity, "{error}");
    }
}
