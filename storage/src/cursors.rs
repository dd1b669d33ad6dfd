//! Source progress (`state/cursors.json`), written only after the manifest commit that covers it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeResult};
use crate::store::LakeStore;

/// How far each source has been read, by source reference (`s3://b/k`, `cwl://group/stream`).
///
/// The value is the source's own position: an ETag for an S3 object, a forward token or event
/// count for a log stream, a content hash for a local file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursors {
    /// Format version (1).
    pub version: u32,
    /// Position by source reference.
    pub positions: BTreeMap<String, String>,
}

impl Cursors {
    /// Reads the cursors; an empty set if the lake has none yet.
    pub async fn load(store: &LakeStore) -> LakeResult<Cursors> {
        match store.get_opt(paths::CURSORS).await? {
            None => Ok(Cursors { version: 1, positions: BTreeMap::new() }),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                LakeError::format(format!(
                    "{} is not valid: {error}",
                    store.describe(paths::CURSORS)
                ))
            }),
        }
    }

    /// Writes the cursors.
    pub async fn save(&self, store: &LakeStore) -> LakeResult<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|error| LakeError::format(format!("failed to encode cursors: {error}")))?;
        store.put(paths::CURSORS, Bytes::from(json)).await.map(|_| ())
    }
}
