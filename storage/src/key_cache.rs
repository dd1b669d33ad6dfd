//! Data-key caching, bounded in age and uses, like the AWS Encryption SDK's caching
//! cryptographic materials manager.
//!
//! Without a cache, every object costs a KMS call to seal and another to open. With it:
//! - [`CachingKeyProvider`] hands out the same data key again for the same encryption context
//!   (the same lake, session and role: a live CloudWatch stream rewritten every poll) until the
//!   key is older than [`KeyCachePolicy::max_age`] or has sealed [`KeyCachePolicy::max_uses`]
//!   objects. Reuse is safe because no object is sealed under the data key itself: raw objects
//!   derive their body key with HKDF from a random per-object salt
//!   ([`sessionlake_schemas::envelope`]), and Parquet modular encryption draws a random nonce
//!   prefix per file.
//! - [`KeyCache`] remembers unwrapped keys by their wrapped form, so a search that opens a
//!   thousand files of one lake asks KMS once per distinct key, and not again within `max_age`.
//!
//! Cached keys live in memory only, as [`DataKey`]s: never printed, zeroed when evicted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sessionlake_schemas::envelope::WrappedKey;

use crate::error::LakeResult;
use crate::keys::KeyProvider;
use crate::secret::DataKey;

/// How long and how often a cached data key may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCachePolicy {
    /// A key older than this is dropped (the AWS Encryption SDK requires a bound; 5 minutes by
    /// default here).
    pub max_age: Duration,
    /// A generated key seals at most this many objects.
    pub max_uses: u64,
    /// Keys held at once; the oldest go first.
    pub capacity: usize,
}

impl Default for KeyCachePolicy {
    fn default() -> Self {
        KeyCachePolicy { max_age: Duration::from_secs(300), max_uses: 100, capacity: 4096 }
    }
}

impl KeyCachePolicy {
    /// A policy that caches nothing.
    pub const DISABLED: KeyCachePolicy =
        KeyCachePolicy { max_age: Duration::ZERO, max_uses: 0, capacity: 0 };

    fn enabled(&self) -> bool {
        self.capacity > 0 && self.max_uses > 0 && !self.max_age.is_zero()
    }
}

struct Entry {
    key: DataKey,
    wrapped: WrappedKey,
    created: Instant,
    uses: u64,
}

/// Keys by an identity string, within a [`KeyCachePolicy`].
pub struct KeyCache {
    policy: KeyCachePolicy,
    entries: Mutex<HashMap<String, Entry>>,
    /// When expired keys were last dropped (a sweep visits every entry: once per
    /// [`SWEEP_INTERVAL`], or when the cache is full, not on every insert).
    swept: Mutex<Instant>,
}

/// How often `put` drops expired keys when the cache is not full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("policy", &self.policy)
            .field("entries", &self.len())
            .finish()
    }
}

impl KeyCache {
    /// Returns an empty cache.
    pub fn new(policy: KeyCachePolicy) -> Self {
        KeyCache { policy, entries: Mutex::new(HashMap::new()), swept: Mutex::new(Instant::now()) }
    }

    /// Returns the number of keys held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|entries| entries.len()).unwrap_or(0)
    }

    /// Returns true when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the key cached under `id`, counting one use, if it is still within the policy.
    fn take(&self, id: &str) -> Option<(DataKey, WrappedKey)> {
        if !self.policy.enabled() {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-update: start afresh.
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| {
            let mut entries = poisoned.into_inner();
            entries.clear();
            entries
        });
        let fresh = entries.get(id).is_some_and(|entry| {
            entry.created.elapsed() < self.policy.max_age && entry.uses < self.policy.max_uses
        });
        if !fresh {
            entries.remove(id);
            return None;
        }
        let entry = entries.get_mut(id)?;
        entry.uses += 1;
        Some((entry.key.clone(), entry.wrapped.clone()))
    }

    /// Caches `key` under `id`, already used once.
    fn put(&self, id: String, key: &DataKey, wrapped: &WrappedKey) {
        if !self.policy.enabled() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let max_age = self.policy.max_age;
        let due = self.swept.lock().map(|mut swept| {
            let due = swept.elapsed() >= SWEEP_INTERVAL;
            if due {
                *swept = Instant::now();
            }
            due
        });
        if entries.len() >= self.policy.capacity || due.unwrap_or(true) {
            entries.retain(|_, entry| entry.created.elapsed() < max_age);
        }
        while entries.len() >= self.policy.capacity {
            let oldest = entries.iter().min_by_key(|(_, entry)| entry.created).map(|(id, _)| id);
            let Some(oldest) = oldest.cloned() else { break };
            entries.remove(&oldest);
        }
        let entry =
            Entry { key: key.clone(), wrapped: wrapped.clone(), created: Instant::now(), uses: 1 };
        entries.insert(id, entry);
    }

    /// Returns the unwrapped key of `wrapped`, from the cache or from `unwrap`.
    pub async fn unwrap_with<F, Fut>(&self, wrapped: &WrappedKey, unwrap: F) -> LakeResult<DataKey>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = LakeResult<DataKey>>,
    {
        let id = wrapped_identity(wrapped);
        if let Some((key, _)) = self.take(&id) {
            return Ok(key);
        }
        let key = unwrap().await?;
        self.put(id, &key, wrapped);
        Ok(key)
    }
}

/// Identity of a wrapped key: the provider, the wrapping key, the ciphertext and the context.
fn wrapped_identity(wrapped: &WrappedKey) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        wrapped.provider,
        wrapped.key_id,
        wrapped.ciphertext,
        context_identity(&wrapped.context)
    )
}

fn context_identity(context: &BTreeMap<String, String>) -> String {
    serde_json::to_string(context).unwrap_or_default()
}

/// A [`KeyProvider`] that reuses generated keys per encryption context and remembers unwrapped
/// ones, within a [`KeyCachePolicy`].
pub struct CachingKeyProvider {
    inner: Arc<dyn KeyProvider>,
    generated: KeyCache,
    unwrapped: KeyCache,
}

impl fmt::Debug for CachingKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingKeyProvider")
            .field("inner", &self.inner)
            .field("generated", &self.generated)
            .field("unwrapped", &self.unwrapped)
            .finish()
    }
}

impl CachingKeyProvider {
    /// Wraps `inner` in caches bounded by `policy`.
    pub fn new(inner: Arc<dyn KeyProvider>, policy: KeyCachePolicy) -> Self {
        CachingKeyProvider {
            inner,
            generated: KeyCache::new(policy),
            unwrapped: KeyCache::new(policy),
        }
    }
}

#[async_trait]
impl KeyProvider for CachingKeyProvider {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }

    async fn generate_data_key(
        &self,
        context: BTreeMap<String, String>,
    ) -> LakeResult<(DataKey, WrappedKey)> {
        let id = format!("{}\u{0}{}", self.inner.key_id(), context_identity(&context));
        if let Some(cached) = self.generated.take(&id) {
            return Ok(cached);
        }
        let (key, wrapped) = self.inner.generate_data_key(context).await?;
        self.generated.put(id, &key, &wrapped);
        Ok((key, wrapped))
    }

    async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
        self.unwrapped.unwrap_with(wrapped, || self.inner.decrypt_data_key(wrapped)).await
    }

    async fn wrap_data_key(
        &self,
        key: &DataKey,
        context: BTreeMap<String, String>,
    ) -> LakeResult<WrappedKey> {
        self.inner.wrap_data_key(key, context).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Counts calls; key bytes are the call number, so reuse is visible.
    #[derive(Debug, Default)]
    struct Counting {
        generated: AtomicU64,
        unwrapped: AtomicU64,
    }

    #[async_trait]
    impl KeyProvider for Counting {
        fn key_id(&self) -> &str {
            "counting"
        }

        async fn generate_data_key(
            &self,
            context: BTreeMap<String, String>,
        ) -> LakeResult<(DataKey, WrappedKey)> {
            let n = self.generated.fetch_add(1, Ordering::SeqCst) as u8;
            let key = DataKey::from_slice(&[n; 32]).expect("32 bytes");
            let wrapped = WrappedKey {
                provider: "counting".into(),
                key_id: "counting".into(),
                ciphertext: n.to_string(),
                context,
            };
            Ok((key, wrapped))
        }

        async fn decrypt_data_key(&self, wrapped: &WrappedKey) -> LakeResult<DataKey> {
            self.unwrapped.fetch_add(1, Ordering::SeqCst);
            let n: u8 = wrapped.ciphertext.parse().expect("a number");
            Ok(DataKey::from_slice(&[n; 32]).expect("32 bytes"))
        }

        async fn wrap_data_key(
            &self,
            _key: &DataKey,
            _context: BTreeMap<String, String>,
        ) -> LakeResult<WrappedKey> {
            unreachable!("not used by these tests")
        }
    }

    fn context(session: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("sessionlake:subject".to_string(), session.to_string())])
    }

    fn provider(policy: KeyCachePolicy) -> (Arc<Counting>, CachingKeyProvider) {
        let counting = Arc::new(Counting::default());
        let caching = CachingKeyProvider::new(Arc::clone(&counting) as _, policy);
        (counting, caching)
    }

    #[tokio::test]
    async fn test_generated_keys_are_reused_per_context_up_to_max_uses() {
        let policy = KeyCachePolicy { max_uses: 3, ..KeyCachePolicy::default() };
        let (counting, caching) = provider(policy);
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let (key, _) = caching.generate_data_key(context("s-1")).await.expect("key");
            firsts.push(key.expose()[0]);
        }
        // Three objects share the first key; the fourth gets a fresh one.
        assert_eq!(firsts, vec![0, 0, 0, 1]);
        let (other, wrapped) = caching.generate_data_key(context("s-2")).await.expect("key");
        assert_eq!(other.expose()[0], 2, "another context never shares a key");
        assert_eq!(wrapped.context, context("s-2"));
        assert_eq!(counting.generated.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn test_expired_or_disabled_cache_asks_every_time() {
        let expired = KeyCachePolicy { max_age: Duration::from_nanos(1), ..Default::default() };
        for policy in [expired, KeyCachePolicy::DISABLED] {
            let (counting, caching) = provider(policy);
            for _ in 0..3 {
                caching.generate_data_key(context("s-1")).await.expect("key");
            }
            assert_eq!(counting.generated.load(Ordering::SeqCst), 3, "{policy:?}");
        }
    }

    #[tokio::test]
    async fn test_unwrapped_keys_are_remembered_by_wrapped_form() {
        let (counting, caching) = provider(KeyCachePolicy::default());
        let (key, wrapped) = caching.generate_data_key(context("s-1")).await.expect("key");
        for _ in 0..5 {
            let opened = caching.decrypt_data_key(&wrapped).await.expect("unwrap");
            assert_eq!(opened.expose(), key.expose());
        }
        assert_eq!(counting.unwrapped.load(Ordering::SeqCst), 1);
        // The same ciphertext under another context is another key: asked again.
        let moved = WrappedKey { context: context("s-9"), ..wrapped };
        caching.decrypt_data_key(&moved).await.expect("unwrap");
        assert_eq!(counting.unwrapped.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn test_debug_shows_no_cached_key_bytes() {
        let cache = KeyCache::new(KeyCachePolicy::default());
        let key = DataKey::random().expect("random");
        let wrapped = WrappedKey {
            provider: "counting".into(),
            key_id: "counting".into(),
            ciphertext: "0".into(),
            context: context("s-1"),
        };
        cache.put("s-1".into(), &key, &wrapped);
        assert_eq!(cache.len(), 1);
        let caching = CachingKeyProvider::new(Arc::new(Counting::default()), Default::default());
        for shown in [format!("{cache:?} {cache:#?}"), format!("{caching:?} {caching:#?}")] {
            crate::secret::assert_no_key_bytes(&shown, key.expose(), "KeyCache");
        }
    }

    #[tokio::test]
    async fn test_capacity_evicts_the_oldest() {
        let policy = KeyCachePolicy { capacity: 2, ..KeyCachePolicy::default() };
        let (counting, caching) = provider(policy);
        for session in ["a", "b", "c", "c", "a"] {
            caching.generate_data_key(context(session)).await.expect("key");
        }
        // a, b, c generated; c reused; a was evicted when c arrived, so generated again.
        assert_eq!(counting.generated.load(Ordering::SeqCst), 4);
        assert_eq!(caching.generated.len(), 2);
    }
}
