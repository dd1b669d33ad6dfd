//! One session's evidence, read and checked: what `export` bundles. [`gather`] reads the
//! objects of one delivery of a session from the trusted live set (the transcript, its session
//! row, its commands, the public-key records of the keys that signed them), checks each against
//! its committed hash, opens the transcript and matches it to the hash its session row names,
//! verifies each manifest that committed them against a trusted key, and counts what the other
//! deliveries hold that this one lacks. [`read_rows`] reads one session's rows of a Parquet file
//! as [`Rows`] of [`Cell`]s, the form an export writes as JSON Lines and CSV.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::scalar::ScalarValue;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::encryption::decrypt::FileDecryptionProperties;
use sessionlake_schemas::manifest::{
    ObjectEntry, ObjectKind, SIGNATURE_ECDSA_P256, SIGNATURE_ED25519, session_sources,
};
use sessionlake_schemas::{ENCRYPTED_COLUMNS, SessionSource, columns};
use sessionlake_storage::keys::Keys;
use sessionlake_storage::manifest::{self, ChainLink};
use sessionlake_storage::signing::{p256_point_of_spki, verify_signature_bytes};
use sessionlake_storage::store::{LakeStore, sha256_hex};
use sessionlake_storage::trust::Snapshot;
use sessionlake_storage::{bail, ensure};

use crate::delivery::{chosen_source, removed_by, version_objects};
use crate::error::{Context as _, ErrorKind as _, ReadError, ReadErrorKind};
use crate::lake_tables;
use crate::verify::PinnedSigner;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A value of a table cell, as read from Parquet.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    /// µs since the epoch, UTC.
    Time(i64),
}

impl Cell {
    /// The cell as a JSON value (a time as RFC 3339 with µs, UTC).
    pub fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Text(text) => serde_json::Value::from(text.as_str()),
            Cell::Unsigned(n) => serde_json::Value::from(*n),
            Cell::Signed(n) => serde_json::Value::from(*n),
            Cell::Float(x) => serde_json::Value::from(*x),
            Cell::Bool(b) => serde_json::Value::from(*b),
            Cell::Time(micros) => serde_json::Value::from(rfc3339(*micros)),
        }
    }

    /// The cell as a CSV field (empty when null).
    pub fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Unsigned(n) => n.to_string(),
            Cell::Signed(n) => n.to_string(),
            Cell::Float(x) => x.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Time(micros) => rfc3339(*micros),
        }
    }
}

/// Formats µs since the epoch as RFC 3339 with µs, UTC (`2026-03-14T09:26:50.000000Z`).
fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| micros.to_string())
}

/// Rows of one table with named columns, in file order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    /// The column names, in file order.
    pub columns: Vec<String>,
    /// Each row's cells, one per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Rows {
    /// The position of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }

    /// The cell of column `name` in `row`.
    pub fn get<'a>(&self, row: &'a [Cell], name: &str) -> Option<&'a Cell> {
        self.index(name).and_then(|index| row.get(index))
    }

    /// The text in column `name` of `row`, if it is text.
    pub fn text(&self, row: &[Cell], name: &str) -> Option<String> {
        match self.get(row, name) {
            Some(Cell::Text(text)) => Some(text.clone()),
            _ => None,
        }
    }

    /// The time (µs since the epoch) in column `name` of `row`, if it is a time.
    pub fn time(&self, row: &[Cell], name: &str) -> Option<i64> {
        match self.get(row, name) {
            Some(Cell::Time(micros)) => Some(*micros),
            _ => None,
        }
    }

    /// The unsigned number in column `name` of `row`, if it is one.
    pub fn unsigned(&self, row: &[Cell], name: &str) -> Option<u64> {
        match self.get(row, name) {
            Some(Cell::Unsigned(n)) => Some(*n),
            _ => None,
        }
    }
}

fn cell_at(array: &dyn Array, row: usize, column: &str, object: &str) -> Result<Cell, ReadError> {
    if array.is_null(row) {
        return Ok(Cell::Null);
    }
    Ok(match array.data_type() {
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Cell::Text(array.as_string_view().value(row).to_string()),
        DataType::UInt8 => Cell::Unsigned(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Cell::Unsigned(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Cell::Unsigned(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Cell::Unsigned(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Int32 => Cell::Signed(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Cell::Signed(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Cell::Time(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        other => bail!(
            ReadErrorKind::Format,
            "column {column} of {object} has type {other}, unknown to export"
        ),
    })
}

/// Reads the rows of `session` from a Parquet file's verified bytes.
fn read_rows(
    object: &str,
    bytes: bytes::Bytes,
    decryption: Option<Arc<FileDecryptionProperties>>,
    expected: &datafusion::arrow::datatypes::Schema,
    session: &str,
) -> Result<Rows, ReadError> {
    let mut options = ArrowReaderOptions::new();
    if let Some(decryption) = decryption {
        options = options.with_file_decryption_properties(decryption);
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)
        .with_context_kind(ReadErrorKind::Format, || format!("failed to open {object}"))?;
    sessionlake_schemas::validate_schema(expected, builder.schema()).map_err(|why| {
        ReadErrorKind::Format.message(format!("{object} has the wrong schema: {why}"))
    })?;
    let mut table = Rows {
        columns: builder.schema().fields().iter().map(|field| field.name().clone()).collect(),
        rows: Vec::new(),
    };
    let session_column =
        table.index(columns::SESSION_ID).with_context_kind(ReadErrorKind::Format, || {
            format!("{object} has no {} column", columns::SESSION_ID)
        })?;
    let reader = builder
        .build()
        .with_context_kind(ReadErrorKind::Format, || format!("failed to read {object}"))?;
    for batch in reader {
        let batch: RecordBatch = batch
            .with_context_kind(ReadErrorKind::Format, || format!("failed to read {object}"))?;
        let ids = batch.column(session_column);
        let strings = ids.as_string_opt::<i32>();
        for row in 0..batch.num_rows() {
            // A compacted file holds other sessions' rows: compared without a copy each.
            let ours = match strings {
                Some(strings) => strings.is_valid(row) && strings.value(row) == session,
                None => matches!(
                    cell_at(ids.as_ref(), row, "session_id", object)?,
                    Cell::Text(id) if id == session
                ),
            };
            if !ours {
                continue;
            }
            let cells = table
                .columns
                .iter()
                .enumerate()
                .map(|(index, name)| cell_at(batch.column(index).as_ref(), row, name, object))
                .collect::<Result<Vec<_>, ReadError>>()?;
            table.rows.push(cells);
        }
    }
    Ok(table)
}

/// Returns the last manifest of `chain` that added `entry` as it is live now.
fn adding_link<'a>(chain: &'a [ChainLink], entry: &ObjectEntry) -> Option<&'a ChainLink> {
    chain.iter().rev().find(|link| adds(link, entry))
}

/// Returns whether manifest `link` adds `entry` as it is (path, size and hash).
fn adds(link: &ChainLink, entry: &ObjectEntry) -> bool {
    link.manifest.body.added.iter().any(|added| {
        added.path == entry.path && added.sha256 == entry.sha256 && added.size == entry.size
    })
}

/// What the lake holds for one session from one source, checked: every object read against
/// its committed hash, the transcript opened and matched to its session row, each manifest
/// that committed them verified against a trusted key.
pub struct Evidence {
    /// The delivery read.
    pub source: SessionSource,
    /// Every delivery of the session in the lake, the preferred first.
    pub sources: Vec<SessionSource>,
    /// The other deliveries holding commands this one lacks, with how many
    /// ([`sessionlake_schemas::comparable_command`], counted as a multiset).
    pub differing: Vec<(SessionSource, u64)>,
    /// Lake objects of the session as stored, with their entries.
    pub objects: Vec<(ObjectEntry, bytes::Bytes)>,
    /// The transcript's entry.
    pub raw_entry: ObjectEntry,
    /// The transcript, opened.
    pub transcript: Vec<u8>,
    /// The session's row of the `sessions` table.
    pub session_table: Rows,
    /// The session's commands, in `seq` order.
    pub commands: Rows,
    /// Manifests that committed the objects: link and file bytes.
    pub manifests: Vec<(ChainLink, bytes::Bytes)>,
    /// The keys that signed those manifests, each once, in the order first met.
    pub manifest_keys: Vec<SignerKey>,
    /// The head of the chain read.
    pub head: Option<ChainLink>,
}

impl Evidence {
    /// Returns the manifest of [`Evidence::manifests`] that committed `entry` as it is (the
    /// one [`gather`] checked: the last to add its path, size and hash).
    pub fn committed_by(&self, entry: &ObjectEntry) -> Option<&ChainLink> {
        self.manifests.iter().rev().map(|(link, _)| link).find(|link| adds(link, entry))
    }
}

/// A public key that signed something in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey {
    /// Id as signatures name it.
    pub key_id: String,
    /// [`SIGNATURE_ED25519`] or [`SIGNATURE_ECDSA_P256`].
    pub algorithm: String,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

impl SignerKey {
    /// Returns the key of `algorithm` whose public half is `public_key` as the lake's records
    /// store it (32 raw bytes for Ed25519, a SubjectPublicKeyInfo for ECDSA P-256).
    pub fn new(key_id: &str, algorithm: &str, public_key: &[u8]) -> Result<SignerKey, ReadError> {
        let spki = match algorithm {
            SIGNATURE_ED25519 => {
                ensure!(
                    public_key.len() == 32,
                    ReadErrorKind::Format,
                    "the Ed25519 key {key_id} has {} bytes, not 32",
                    public_key.len()
                );
                [&ED25519_SPKI_PREFIX[..], public_key].concat()
            }
            SIGNATURE_ECDSA_P256 => {
                p256_point_of_spki(public_key).map_err(|why| {
                    ReadErrorKind::Format.message(format!("the key {key_id} is not P-256: {why}"))
                })?;
                public_key.to_vec()
            }
            other => {
                bail!(
                    ReadErrorKind::Format,
                    "the key {key_id} signs with {other:?}, which export cannot check"
                )
            }
        };
        Ok(SignerKey { key_id: key_id.to_string(), algorithm: algorithm.to_string(), spki })
    }

    /// Returns the key as PEM (`-----BEGIN PUBLIC KEY-----`), as `openssl pkey -pubout` writes it.
    pub fn pem(&self) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.spki);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Returns the SHA-256 of the DER SubjectPublicKeyInfo: what
    /// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum` prints.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.spki)
    }

    /// Names the algorithm for people.
    pub fn algorithm_name(&self) -> &'static str {
        if self.algorithm == SIGNATURE_ECDSA_P256 { "ECDSA P-256 (AWS KMS)" } else { "Ed25519" }
    }
}

/// Reads and checks what the lake holds for `session` from `requested` (else its preferred
/// delivery): see [`Evidence`]. Manifests must be signed by one of `trusted`.
pub async fn gather(
    store: &LakeStore,
    keys: &Keys,
    snapshot: &Snapshot,
    trusted: &[PinnedSigner],
    session: &str,
    requested: Option<SessionSource>,
) -> Result<Evidence, ReadError> {
    let (chain, live) = (snapshot.chain(), snapshot.live());
    // Only the session key records the snapshot commits open anything, whoever calls.
    let keys = &keys.clone().with_committed(live);
    let sources = session_sources(live, session);
    if sources.is_empty() {
        let id = sessionlake_schemas::session_id::escaped(session);
        if let Some(link) = removed_by(chain, session) {
            bail!(
                ReadErrorKind::NotFound,
                "session {id} was removed by manifest {} at {} ({}): its keys are \
                 destroyed and nothing of it can be exported",
                link.manifest.body.sequence,
                link.manifest.body.committed_at,
                link.manifest.body.reason.as_deref().unwrap_or("no reason given")
            );
        }
        bail!(ReadErrorKind::NotFound, "no session named {id} in {}", store.location());
    }
    let source = chosen_source(&sources, requested, session, store.location())?;
    let mut entries: Vec<ObjectEntry> =
        version_objects(live, session, source).into_iter().cloned().collect();
    // The public-key records of the keys that signed the manifests committing these objects
    // (records are objects too: their own manifests join, until no new signer appears).
    loop {
        let signers: BTreeSet<&str> = entries
            .iter()
            .filter_map(|entry| adding_link(chain, entry))
            .map(|link| link.manifest.signature.key_id.as_str())
            .collect();
        let records: Vec<ObjectEntry> = signers
            .iter()
            .flat_map(|key_id| {
                [manifest::public_key_path(key_id), manifest::retired_key_path(key_id)]
            })
            .filter_map(|path| live.get(&path))
            .filter(|record| !entries.iter().any(|entry| entry.path == record.path))
            .cloned()
            .collect();
        if records.is_empty() {
            break;
        }
        entries.extend(records);
    }
    let one = |kind: ObjectKind| -> Result<Option<ObjectEntry>, ReadError> {
        let mut found = entries.iter().filter(|entry| entry.kind == kind);
        let first = found.next().cloned();
        ensure!(
            found.next().is_none(),
            ReadErrorKind::Integrity,
            "session {session} from {} has more than one live {kind:?} object",
            source.as_str()
        );
        Ok(first)
    };
    let raw_entry = one(ObjectKind::Raw)?.with_context_kind(ReadErrorKind::NotFound, || {
        format!("session {session} from {} has no live raw transcript", source.as_str())
    })?;
    let sessions_entry = one(ObjectKind::Sessions)?
        .with_context_kind(ReadErrorKind::NotFound, || {
            format!("session {session} from {} has no live sessions row", source.as_str())
        })?;
    let commands_entry = one(ObjectKind::Commands)?;

    let mut objects = Vec::with_capacity(entries.len());
    for entry in &entries {
        objects.push((entry.clone(), store.get_committed(entry).await?));
    }
    let bytes_of = |entry: &ObjectEntry| {
        objects.iter().find(|(e, _)| e.path == entry.path).map(|(_, bytes)| bytes.clone())
    };
    let sealed =
        bytes_of(&raw_entry).context_kind(ReadErrorKind::NotFound, "raw transcript read")?;
    let lake = sessionlake_storage::manifest::committed_lake_id(store, live).await?;
    let transcript = keys
        .open_raw(
            &raw_entry,
            &sealed,
            session,
            lake.as_deref(),
            sessionlake_storage::envelope::MAX_DECOMPRESSED_LEN,
        )
        .await?;

    let session_table = read_rows(
        &sessions_entry.path,
        bytes_of(&sessions_entry).context_kind(ReadErrorKind::NotFound, "sessions file read")?,
        None,
        &sessionlake_schemas::sessions_schema(),
        session,
    )?;
    let [session_row] = session_table.rows.as_slice() else {
        bail!(
            ReadErrorKind::Integrity,
            "{} holds {} rows of session {session}, not one",
            sessions_entry.path,
            session_table.rows.len()
        );
    };
    // The decrypted transcript is the one the session row committed, and lives where it says.
    let committed_sha = session_table.text(session_row, columns::RAW_SHA256).unwrap_or_default();
    let opened_sha = sha256_hex(&transcript);
    ensure!(
        opened_sha == committed_sha,
        ReadErrorKind::Integrity,
        "the transcript in {} hashes to {opened_sha}, but {} committed raw_sha256 {committed_sha}",
        raw_entry.path,
        sessions_entry.path
    );
    let named_raw = session_table.text(session_row, columns::RAW_OBJECT).unwrap_or_default();
    ensure!(
        named_raw == raw_entry.path,
        ReadErrorKind::Integrity,
        "{} names raw object {named_raw}, but the live raw object is {}",
        sessions_entry.path,
        raw_entry.path
    );

    let commands = match &commands_entry {
        Some(entry) => {
            let bytes =
                bytes_of(entry).context_kind(ReadErrorKind::NotFound, "commands file read")?;
            read_commands(keys, entry, bytes, session).await?
        }
        None => Rows::default(),
    };
    // What the other deliveries hold that this one lacks (a transcript rewritten at its
    // source, a stream misread): named in the bundle, never left out silently.
    let mut differing = Vec::new();
    for &other in sources.iter().filter(|other| **other != source) {
        let streamed = source.is_streamed() || other.is_streamed();
        let mut counts: HashMap<String, i64> = HashMap::new();
        for entry in version_objects(live, session, other) {
            if entry.kind == ObjectKind::Commands {
                let bytes = store.get_committed(entry).await?;
                let rows = read_commands(keys, entry, bytes, session).await?;
                for text in command_texts(&rows, streamed) {
                    *counts.entry(text).or_default() += 1;
                }
            }
        }
        for text in command_texts(&commands, streamed) {
            if let Some(count) = counts.get_mut(&text) {
                *count -= 1;
            }
        }
        let more: u64 = counts.values().filter(|n| **n > 0).map(|n| n.unsigned_abs()).sum();
        if more > 0 {
            differing.push((other, more));
        }
    }

    // The manifests that committed these objects, verbatim, each signed by a trusted key.
    let mut manifests: Vec<(ChainLink, bytes::Bytes)> = Vec::new();
    let mut manifest_keys = Vec::new();
    for (entry, _) in &objects {
        let link = adding_link(chain, entry).with_context_kind(ReadErrorKind::Integrity, || {
            format!("no manifest adds {} as it is live", entry.path)
        })?;
        if manifests.iter().any(|(known, _)| known.path == link.path) {
            continue;
        }
        let bytes = store.get(&link.path).await?;
        ensure!(
            sha256_hex(&bytes) == link.sha256,
            ReadErrorKind::Integrity,
            "{} changed while it was being read",
            store.describe(&link.path)
        );
        let signature = &link.manifest.signature;
        let Some(pin) = trusted.iter().find(|pin| pin.key_id == signature.key_id) else {
            let names: Vec<String> =
                trusted.iter().map(|pin| format!("{} ({})", pin.key_id, pin.origin)).collect();
            bail!(
                ReadErrorKind::Integrity,
                "{} is signed by {}, not by a key you trust ({}): pass that KMS key with \
                 --signing-key if it is the lake's",
                link.path,
                signature.key_id,
                names.join(", ")
            );
        };
        let value = base64::engine::general_purpose::STANDARD
            .decode(&signature.value)
            .with_context_kind(ReadErrorKind::Integrity, || {
                format!("{} has a signature that is not base64", link.path)
            })?;
        let message =
            link.manifest.body.signing_bytes().with_context_kind(ReadErrorKind::Format, || {
                format!("{} cannot be re-encoded", link.path)
            })?;
        verify_signature_bytes(&signature.algorithm, &pin.public_key, &message, &value).map_err(
            |why| {
                ReadErrorKind::Integrity.message(format!(
                    "{} has a bad signature ({why}); run `sessionlake verify`",
                    link.path
                ))
            },
        )?;
        if !manifest_keys.iter().any(|key: &SignerKey| key.key_id == pin.key_id) {
            manifest_keys.push(SignerKey::new(&pin.key_id, &signature.algorithm, &pin.public_key)?);
        }
        manifests.push((link.clone(), bytes));
    }
    manifests.sort_by_key(|(link, _)| link.manifest.body.sequence);

    Ok(Evidence {
        source,
        sources,
        differing,
        objects,
        raw_entry,
        transcript,
        session_table,
        commands,
        manifests,
        manifest_keys,
        head: chain.last().cloned(),
    })
}

/// Reads the rows of `session` from the `commands` file `entry` (its bytes checked against the
/// manifest), decrypted with its data key, in `seq` order.
async fn read_commands(
    keys: &Keys,
    entry: &ObjectEntry,
    bytes: bytes::Bytes,
    session: &str,
) -> Result<Rows, ReadError> {
    let wrapped = entry.key.as_ref().with_context_kind(ReadErrorKind::Integrity, || {
        format!("{} has no data key in its manifest entry", entry.path)
    })?;
    let key = keys.decrypt(wrapped).await.with_context_kind(ReadErrorKind::Lake, || {
        format!("failed to get the data key of {}", entry.path)
    })?;
    let secret = key.expose().to_vec();
    let decryption = FileDecryptionProperties::builder(secret.clone())
        .with_column_keys(ENCRYPTED_COLUMNS.to_vec(), vec![secret; ENCRYPTED_COLUMNS.len()])
        .and_then(|builder| builder.build())
        .with_context_kind(ReadErrorKind::Format, || {
            format!("failed to set up decryption of {}", entry.path)
        })?;
    let mut commands = read_rows(
        &entry.path,
        bytes,
        Some(decryption),
        &sessionlake_schemas::commands_schema(),
        session,
    )?;
    if let Some(seq) = commands.index(columns::SEQ) {
        commands.rows.sort_by_key(|row| match row.get(seq) {
            Some(Cell::Unsigned(n)) => *n,
            _ => u64::MAX,
        });
    }
    Ok(commands)
}

/// Returns the command text of each row of `commands` as deliveries compare, `streamed` when
/// one of the two is a CloudWatch stream ([`sessionlake_schemas::comparable_command`]).
fn command_texts(commands: &Rows, streamed: bool) -> impl Iterator<Item = String> + '_ {
    commands.rows.iter().map(move |row| {
        let text = commands.text(row, columns::COMMAND).unwrap_or_default();
        sessionlake_schemas::comparable_command(&text, streamed).into_owned()
    })
}

/// Columns of the access table an export shows of a session's CloudTrail events (plaintext
/// ones: no data key is used).
pub const ACCESS_EVENT_COLUMNS: [&str; 10] = [
    "event_time",
    "kind",
    "principal",
    "source_ip",
    "user_agent",
    "os_user",
    "document_name",
    "error_code",
    "event_id",
    "source_ref",
];

/// Reads the CloudTrail events of the lake's `access` table that name `session`
/// ([`ACCESS_EVENT_COLUMNS`], by time), from `snapshot` (the one the rest of the evidence is
/// read from: not a second reading of the chain, which a commit made meanwhile could make
/// disagree with the chain head an export names). Each file is hash-checked as it is read;
/// `memory_limit` bounds the query.
pub async fn access_events(
    store: &LakeStore,
    keys: &Keys,
    snapshot: &Snapshot,
    session: &str,
    memory_limit: usize,
) -> Result<Vec<RecordBatch>, ReadError> {
    let live = snapshot
        .live()
        .iter()
        .filter(|(_, entry)| entry.kind == ObjectKind::Access)
        .map(|(path, entry)| (path.clone(), entry.clone()))
        .collect();
    let lake_id = manifest::committed_lake_id(store, snapshot.live()).await?;
    let tables = lake_tables::LakeSnapshot { live, lake_id, checked: Arc::default() };
    let ctx = lake_tables::new_context(memory_limit)?;
    let keys = keys.clone().with_committed(snapshot.live());
    lake_tables::register(&ctx, store, &tables, keys, &|_| true)?;
    let sql = format!(
        "SELECT {} FROM access WHERE session_id = $1 ORDER BY event_time, event_id",
        ACCESS_EVENT_COLUMNS.join(", ")
    );
    let frame = ctx
        .sql(&sql)
        .await
        .context_kind(ReadErrorKind::Query, "failed to read the access table")?
        .with_param_values(vec![ScalarValue::from(session)])?;
    frame.collect().await.context_kind(ReadErrorKind::Query, "failed to read the access table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cells_as_json_and_csv() {
        let time = Cell::Time(1_773_480_410_123_456);
        assert_eq!(time.json(), serde_json::json!("2026-03-14T09:26:50.123456Z"));
        assert_eq!(time.csv(), "2026-03-14T09:26:50.123456Z");
        assert_eq!(Cell::Null.json(), serde_json::Value::Null);
        assert_eq!(Cell::Signed(-3).csv(), "-3");
    }

    #[test]
    fn test_public_key_pem_is_spki() {
        // A key made by `openssl genpkey -algorithm ed25519`, and its `openssl pkey -pubout`.
        let public = hex_bytes("00aa8aa7ce6afd709102618df83945f3d8f167076a412ff3b0f0b614109138e9");
        let key = SignerKey::new("ed25519:k", SIGNATURE_ED25519, &public).expect("key");
        assert_eq!(
            key.pem(),
            "-----BEGIN PUBLIC KEY-----\n\
             MCowBQYDK2VwAyEAAKqKp85q/XCRAmGN+DlF89jxZwdqQS/zsPC2FBCROOk=\n\
             -----END PUBLIC KEY-----\n"
        );
        assert!(SignerKey::new("ed25519:k", SIGNATURE_ED25519, &public[1..]).is_err());
        assert!(SignerKey::new("kms", SIGNATURE_ECDSA_P256, &public).is_err());
        assert!(SignerKey::new("x", "rsa", &public).is_err());
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
