//! Object names inside a lake. The layout is the same on a local folder and on S3:
//!
//! ```text
//! raw/dt=YYYY-MM-DD/<session-id>.<source>.<version>.zst.sle   original transcript: zstd, then AEAD
//! commands/dt=YYYY-MM-DD/<session-id>.<source>.<version>.parquet  one row per command
//! sessions/dt=YYYY-MM-DD/<session-id>.<source>.<version>.parquet  one row per session
//! commands/dt=YYYY-MM-DD/compact-<version>.parquet  compacted: one version each of many sessions
//! sessions/dt=YYYY-MM-DD/compact-<version>.parquet  compacted: one version each of many sessions
//! access/dt=YYYY-MM-DD/<trail-file-id>.<version>.parquet  one row per CloudTrail access event
//! quarantine/<source>/<object-id>.sle                input that could not be parsed, encrypted
//! manifest/<sequence>.json                           the signed commit chain
//! keys/<key-id>.json                                 public keys that verify manifest signatures
//! keys/sessions/<session-id>.<source>.<version>.key.json  the key of one session version
//! keys/files/<table>/dt=YYYY-MM-DD/<name>.key.json   the key of one compacted or `access` file
//! state/cursors.json                                 source progress, written after the manifest
//! ```
//!
//! One *version* of one session from one source is one set of objects; the version is new on every
//! write, so nothing live is ever overwritten. The manifest decides what is live: a commit that
//! writes a new version of a session removes the older one, and objects left by a write that
//! never committed (a crash) are not live, so readers never see them twice (`verify` lists them).

use crate::SessionSource;

/// Folder of raw transcripts.
pub const RAW_DIR: &str = "raw";
/// Folder of the `commands` table.
pub const COMMANDS_DIR: &str = "commands";
/// Folder of the `sessions` table.
pub const SESSIONS_DIR: &str = "sessions";
/// Folder of the `access` table.
pub const ACCESS_DIR: &str = "access";
/// Folder of the manifest chain.
pub const MANIFEST_DIR: &str = "manifest";
/// Folder of signed checkpoints (the live set as of a manifest).
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Folder of quarantined input.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Folder of legal holds.
pub const HOLDS_DIR: &str = "holds";
/// Folder of public keys.
pub const KEYS_DIR: &str = "keys";
/// Source cursors.
pub const CURSORS: &str = "state/cursors.json";
/// The lake's identity ([`crate::manifest::LakeIdentity`]), created once, committed, never
/// rewritten.
pub const LAKE_IDENTITY: &str = "lake.json";

/// Digits of a manifest sequence number in its name, so that names sort in commit order.
pub const MANIFEST_SEQUENCE_DIGITS: usize = 20;

/// Returns the `dt=` partition value for a time in µs since the epoch (UTC).
pub fn partition_date(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Converts days since 1970-01-01 into a (year, month, day) of the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days`, exact for every `i64` day count we can meet.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Returns the lake path of a session's raw transcript.
pub fn raw_object(dt: &str, session_id: &str, source: SessionSource, version: &str) -> String {
    format!("{RAW_DIR}/dt={dt}/{}.zst.sle", session_stem(session_id, source, version))
}

/// Returns the file-name stem shared by every object of one version of one session.
pub fn session_stem(session_id: &str, source: SessionSource, version: &str) -> String {
    format!("{session_id}.{}.{version}", source.as_str())
}

/// Returns whether `path` is an object of `session_id` from `source`, whatever its version.
/// Session ids may contain `.`, so the name is read from the right: `<id>.<source>.<version>`
/// then the extension.
pub fn is_session_object(path: &str, session_id: &str, source: SessionSource) -> bool {
    session_version(path).is_some_and(|(id, found, _)| id == session_id && found == source)
}

/// Start of the name of a compacted `commands` or `sessions` file (`sessionlake compact`).
pub const COMPACTED_PREFIX: &str = "compact-";

/// Returns the lake path of a compacted `commands` or `sessions` file (`table` is
/// [`COMMANDS_DIR`] or [`SESSIONS_DIR`]): the rows of one version each of many sessions of day
/// `dt`. The name has no `.` before its extension, so it is never mistaken for one session's
/// object ([`is_session_object`]).
pub fn compacted_object(table: &str, dt: &str, version: &str) -> String {
    format!("{table}/dt={dt}/{COMPACTED_PREFIX}{version}.parquet")
}

/// Returns the subject a compacted file's data key is bound to: its file name without the
/// extension (`compact-<version>`), or `None` when `path` is not a compacted file.
pub fn compacted_key_subject(path: &str) -> Option<&str> {
    compacted_version(path)?;
    path.rsplit('/').next()?.strip_suffix(".parquet")
}

/// Folder of a table's Delta log (`commands/_delta_log/`): derived from the chain, never named
/// by it (see the `sessionlake-delta` crate).
pub const DELTA_LOG_DIR: &str = "_delta_log";

/// Returns whether `path` is in a table's Delta log.
pub fn is_delta_log(path: &str) -> bool {
    path.split('/').nth(1) == Some(DELTA_LOG_DIR)
}

/// Returns whether `path` is a compacted file.
pub fn is_compacted(path: &str) -> bool {
    compacted_version(path).is_some()
}

/// Returns the version in a compacted file's name, or `None` when `path` is not one.
pub fn compacted_version(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let version = name.strip_prefix(COMPACTED_PREFIX)?.strip_suffix(".parquet")?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(version)
}

/// Returns the session, source and version of an object of one session version
/// (`<id>.<source>.<version>` and an extension), or `None` for any other path.
pub fn session_version(path: &str) -> Option<(&str, SessionSource, &str)> {
    let name = path.rsplit('/').next().unwrap_or_default();
    let extensions = [".zst.sle", ".parquet", SESSION_KEY_EXTENSION];
    let stem = extensions.iter().find_map(|ext| name.strip_suffix(ext))?;
    let (rest, version) = stem.rsplit_once('.')?;
    let (id, found_source) = rest.rsplit_once('.')?;
    let source = SessionSource::from_name(found_source)?;
    Some((id, source, version))
}

/// Returns the lake path of a `commands` file.
pub fn commands_object(dt: &str, stem: &str) -> String {
    format!("{COMMANDS_DIR}/dt={dt}/{stem}.parquet")
}

/// Returns the lake path of a `sessions` file.
pub fn sessions_object(dt: &str, stem: &str) -> String {
    format!("{SESSIONS_DIR}/dt={dt}/{stem}.parquet")
}

/// Folder of session key records.
pub const SESSION_KEYS_DIR: &str = "keys/sessions";
/// Extension of a session key record.
pub const SESSION_KEY_EXTENSION: &str = ".key.json";

/// Returns the lake path of the key record of one version of a session
/// ([`crate::manifest::SessionKeyRecord`]).
pub fn session_key_object(stem: &str) -> String {
    format!("{SESSION_KEYS_DIR}/{stem}{SESSION_KEY_EXTENSION}")
}

/// Returns whether `path` is a session key record's.
pub fn is_session_key_record(path: &str) -> bool {
    path.strip_prefix(SESSION_KEYS_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// Folder of file key records: the key of one compacted `commands` file or one `access` file,
/// which wraps that file's data key alone. Shredding or expiring a session rewrites the files
/// that hold its rows and deletes the old files' records, so every copy of an old file becomes
/// unreadable too; `rekey` re-wraps the records, which engines reading the files' standard key
/// material look up (their footers never change).
pub const FILE_KEYS_DIR: &str = "keys/files";

/// Returns the lake path of the key record of the table file at `file_path`
/// (`keys/files/<the file's path without .parquet>.key.json`), or `None` when `file_path` is not
/// a Parquet file's.
pub fn file_key_object(file_path: &str) -> Option<String> {
    let stem = file_path.strip_suffix(".parquet")?;
    Some(format!("{FILE_KEYS_DIR}/{stem}{SESSION_KEY_EXTENSION}"))
}

/// Returns the path of the table file whose key the file key record at `path` holds, or `None`
/// when `path` is not a file key record's.
pub fn file_of_key_record(path: &str) -> Option<String> {
    let stem = path.strip_prefix(FILE_KEYS_DIR)?.strip_prefix('/')?;
    Some(format!("{}.parquet", stem.strip_suffix(SESSION_KEY_EXTENSION)?))
}

/// Returns the version in an `access` file's name, or `None` when `path` is not one.
pub fn access_version(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(ACCESS_DIR)?.strip_prefix('/')?;
    let name = rest.rsplit('/').next()?;
    let (_, version) = name.strip_suffix(".parquet")?.rsplit_once('.')?;
    Some(version)
}

/// Returns whether `path` is a file key record's ([`file_key_object`]).
pub fn is_file_key_record(path: &str) -> bool {
    path.strip_prefix(FILE_KEYS_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// Returns the lake path of an `access` file: the events of one CloudTrail file (named by
/// `trail_file_id`, a hash of where the file came from) that happened on day `dt`.
pub fn access_object(dt: &str, trail_file_id: &str, version: &str) -> String {
    format!("{ACCESS_DIR}/dt={dt}/{trail_file_id}.{version}.parquet")
}

/// Returns the CloudTrail file id an `access` file's path names (the subject of its data key).
pub fn trail_file_id_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(ACCESS_DIR)?.strip_prefix('/')?;
    let name = rest.rsplit('/').next().unwrap_or_default();
    let (id, _version) = name.strip_suffix(".parquet")?.rsplit_once('.')?;
    Some(id)
}

/// Returns the lake path of a quarantined input.
pub fn quarantine_object(source: &str, object_id: &str) -> String {
    format!("{QUARANTINE_DIR}/{source}/{object_id}.sle")
}

/// Returns the lake path of manifest number `sequence`.
pub fn manifest_object(sequence: u64) -> String {
    format!("{MANIFEST_DIR}/{sequence:0width$}.json", width = MANIFEST_SEQUENCE_DIGITS)
}

/// Parses the sequence number out of a manifest path; `None` for anything else.
pub fn manifest_sequence(path: &str) -> Option<u64> {
    let name = path.strip_prefix(MANIFEST_DIR)?.strip_prefix('/')?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == MANIFEST_SEQUENCE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Returns the path of the checkpoint of the live set as of manifest `sequence`.
pub fn checkpoint_object(sequence: u64) -> String {
    format!("{CHECKPOINT_DIR}/{sequence:0width$}.json", width = MANIFEST_SEQUENCE_DIGITS)
}

/// Returns the path of a part of the checkpoint of manifest `sequence`, named by the SHA-256
/// (hex) of its bytes.
pub fn checkpoint_part_object(sequence: u64, sha256: &str) -> String {
    format!("{CHECKPOINT_DIR}/{sequence:0width$}/{sha256}.json", width = MANIFEST_SEQUENCE_DIGITS)
}

/// Parses the sequence number out of a checkpoint path; `None` for anything else.
pub fn checkpoint_sequence(path: &str) -> Option<u64> {
    let name = path.strip_prefix(CHECKPOINT_DIR)?.strip_prefix('/')?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == MANIFEST_SEQUENCE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Returns the `dt` partition value in a table path (`commands/dt=2026-03-14/x.parquet`).
pub fn dt_of(path: &str) -> Option<&str> {
    path.split('/').find_map(|part| part.strip_prefix("dt="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_partition_date() {
        let cases = [
            (0, "1970-01-01"),
            (1_773_480_413_000_000, "2026-03-14"),
            (951_782_400_000_000, "2000-02-29"),
            (-1, "1969-12-31"),
        ];
        for (micros, expected) in cases {
            assert_eq!(partition_date(micros), expected, "{micros}");
        }
    }

    #[test]
    fn test_manifest_names_round_trip_and_sort() {
        assert_eq!(manifest_object(7), "manifest/00000000000000000007.json");
        assert_eq!(manifest_sequence(&manifest_object(42)), Some(42));
        assert_eq!(manifest_sequence("manifest/7.json"), None);
        assert_eq!(manifest_sequence("raw/00000000000000000007.json"), None);
        assert!(manifest_object(9) < manifest_object(10));
    }

    #[test]
    fn test_session_objects_are_recognised_by_session_and_source() {
        let path = raw_object("2026-03-14", "a-b-0123456789abcdef0", SessionSource::S3, "v1");
        assert_eq!(path, "raw/dt=2026-03-14/a-b-0123456789abcdef0.s3.v1.zst.sle");
        assert!(is_session_object(&path, "a-b-0123456789abcdef0", SessionSource::S3));
        assert!(!is_session_object(&path, "b-0123456789abcdef0", SessionSource::S3));
        assert!(!is_session_object(&path, "a-b-0123456789abcdef0", SessionSource::Local));
        assert!(!is_session_object(&path, "a", SessionSource::S3));
        // An id that looks like another id's prefix with a source in it.
        let other = raw_object("2026-03-14", "x.s3.y", SessionSource::S3, "v2");
        assert!(!is_session_object(&other, "x", SessionSource::S3));
        assert!(is_session_object(&other, "x.s3.y", SessionSource::S3));
    }

    #[test]
    fn test_access_objects_are_recognised_by_trail_file() {
        let path = access_object("2026-03-14", "ab12", "v1");
        assert_eq!(path, "access/dt=2026-03-14/ab12.v1.parquet");
        assert_eq!(trail_file_id_of(&path), Some("ab12"));
        assert_eq!(trail_file_id_of("commands/dt=2026-03-14/ab12.v1.parquet"), None);
        assert_eq!(dt_of(&path), Some("2026-03-14"));
    }

    #[test]
    fn test_compacted_objects_are_no_session_object() {
        let path = compacted_object(COMMANDS_DIR, "2026-03-14", "18f3a2b4c5d6e7f8");
        assert_eq!(path, "commands/dt=2026-03-14/compact-18f3a2b4c5d6e7f8.parquet");
        assert!(is_compacted(&path));
        assert_eq!(session_version(&path), None);
        for source in SessionSource::ALL {
            assert!(!is_session_object(&path, "compact", source), "{path}");
        }
        assert_eq!(dt_of(&path), Some("2026-03-14"));
        assert_eq!(compacted_key_subject(&path), Some("compact-18f3a2b4c5d6e7f8"));
        assert_eq!(compacted_key_subject("commands/dt=2026-03-14/a.s3.v1.parquet"), None);
        for path in [
            "commands/dt=2026-03-14/a.s3.v1.parquet",
            "commands/dt=2026-03-14/compact-.parquet",
            "commands/dt=2026-03-14/compact-v.1.parquet",
            "commands/dt=2026-03-14/compact-s3-v1.parquet",
        ] {
            assert!(!is_compacted(path), "{path}");
        }
        let own = commands_object("2026-03-14", &session_stem("a.b", SessionSource::S3, "v1"));
        assert_eq!(session_version(&own), Some(("a.b", SessionSource::S3, "v1")));
        let key = session_key_object(&session_stem("a", SessionSource::Local, "v2"));
        assert_eq!(session_version(&key), Some(("a", SessionSource::Local, "v2")));
    }

    #[test]
    fn test_file_key_records_are_named_after_their_file_and_are_no_session_object() {
        let compacted = compacted_object(COMMANDS_DIR, "2026-03-14", "18f3a2b4c5d6e7f8");
        let record = file_key_object(&compacted).expect("a parquet file");
        assert_eq!(record, "keys/files/commands/dt=2026-03-14/compact-18f3a2b4c5d6e7f8.key.json");
        let access =
            file_key_object(&access_object("2026-03-14", "0a1b2c", "v7")).expect("parquet");
        assert_eq!(access, "keys/files/access/dt=2026-03-14/0a1b2c.v7.key.json");
        for path in [&record, &access] {
            assert!(is_file_key_record(path), "{path}");
            assert!(!is_session_key_record(path), "{path}");
            assert_eq!(session_version(path), None, "{path}");
            assert!(!is_compacted(path), "{path}");
        }
        assert_eq!(file_of_key_record(&record).as_deref(), Some(compacted.as_str()));
        assert_eq!(file_of_key_record("keys/sessions/a.s3.v1.key.json"), None);
        assert_eq!(access_version("access/dt=2026-03-14/0a1b2c.v7.parquet"), Some("v7"));
        assert_eq!(access_version("commands/dt=2026-03-14/a.s3.v1.parquet"), None);
        assert!(!is_file_key_record("keys/filesx/a.key.json"));
        assert!(!is_file_key_record(&session_key_object("a.s3.v1")));
        assert_eq!(file_key_object("raw/dt=2026-03-14/a.s3.v1.zst.sle"), None);
    }

    #[test]
    fn test_dt_of() {
        assert_eq!(dt_of("commands/dt=2026-03-14/a.parquet"), Some("2026-03-14"));
        assert_eq!(dt_of("manifest/1.json"), None);
    }
}
