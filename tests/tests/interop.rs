//! Engines other than sessionlake open the encrypted columns: pyarrow, with the standard key
//! material the files carry (PKMT1) and the lake's KMS client (`clients/python/`), and Spark
//! (local mode, parquet-java's crypto factory, `clients/java/`) find the rows `sessionlake
//! search` finds; after `shred`, a copy of the shredded session's file does not open for them
//! either, and everyone else's rows still do. Compacted files (rows of many sessions) carry keys of
//! their own: engines follow a `rekey` of them, and a shred closes copies of the old file.

use serde_json::Value;
use sessionlake_tests::{binary, copy_tree, python_on_moto, repo_root, run, s3_client, sdk_config};

/// The (session, seq) of the rows pyarrow finds matching `pattern` in `files`, and the files it
/// could not read with why.
fn pyarrow_search(lake: &str, pattern: &str, files: &[String]) -> (Vec<(String, u64)>, Value) {
    pyarrow_search_without(lake, pattern, files, &[])
}

/// The same, KMS refusing to decrypt under the keys `disabled` (as for a disabled key).
fn pyarrow_search_without(
    lake: &str,
    pattern: &str,
    files: &[String],
    disabled: &[&str],
) -> (Vec<(String, u64)>, Value) {
    let script = repo_root().join("tests/interop/pyarrow_search.py");
    let listed = serde_json::to_string(files).expect("files");
    let mut python = python_on_moto();
    python.env("SESSIONLAKE_TEST_DISABLED_KMS_KEYS", disabled.join(","));
    let ran = run(python.arg(script).args([lake, pattern, &listed]));
    assert_eq!(ran.code, 0, "pyarrow_search: {}", ran.stderr);
    rows_and_failures(ran.stdout.trim())
}

/// Reads a search script's `{"rows": [[session, seq], ...], "failures": {...}}`.
fn rows_and_failures(line: &str) -> (Vec<(String, u64)>, Value) {
    let found: Value = serde_json::from_str(line).expect("JSON");
    let rows = found["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row[0].as_str().expect("id").to_string(), row[1].as_u64().expect("seq")))
        .collect();
    (rows, found["failures"].clone())
}

/// The same with Spark, over the local files `files`.
fn spark_search(
    lake: &str,
    pattern: &str,
    files: &[std::path::PathBuf],
) -> (Vec<(String, u64)>, Value) {
    let script = repo_root().join("tests/interop/spark_search.py");
    let listed: Vec<String> = files.iter().map(|file| file.display().to_string()).collect();
    let listed = serde_json::to_string(&listed).expect("files");
    let ran = run(python_on_moto().arg(script).args([lake, pattern, &listed]));
    assert_eq!(ran.code, 0, "spark_search: {}", ran.stderr);
    rows_and_failures(ran.stdout.lines().last().unwrap_or_default())
}

/// Downloads the `s3://` objects `urls` into `folder`, by name.
async fn download(
    s3: &aws_sdk_s3::Client,
    urls: &[String],
    folder: &std::path::Path,
) -> Vec<std::path::PathBuf> {
    let mut saved = Vec::new();
    for url in urls {
        let (bucket, key) = url["s3://".len()..].split_once('/').expect("bucket/key");
        let object = s3.get_object().bucket(bucket).key(key).send().await.expect("get");
        let bytes = object.body.collect().await.expect("body").into_bytes();
        let path = folder.join(key.rsplit('/').next().expect("name"));
        std::fs::write(&path, bytes).expect("write");
        saved.push(path);
    }
    saved
}

/// A lake on moto S3 with the examples ingested, their keys under the KMS key it makes, and
/// its `sessionlake` commands.
struct S3Lake {
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    bucket: String,
    url: String,
    /// The ARN of the KMS key ingest wrapped keys under.
    key: String,
    work: tempfile::TempDir,
}

impl S3Lake {
    async fn ingested() -> S3Lake {
        let sdk = sdk_config().await;
        let s3 = s3_client().await;
        let [bucket] = sessionlake_tests::new_buckets(&s3, ["interop-lake"]).await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = new_key(&kms).await;
        let work = tempfile::tempdir().expect("tempdir");
        copy_tree(&repo_root().join("examples"), &work.path().join("examples"));
        let url = format!("s3://{bucket}/lake");
        let ingest = run(binary("sessionlake-ingest", true).current_dir(work.path()).args([
            "--lake",
            &url,
            "--keyring",
            "keyring.json",
            "--kms-key-id",
            &key,
            "--quiet",
        ]));
        assert_eq!(ingest.code, 0, "ingest: {}", ingest.stderr);
        S3Lake { s3, kms, bucket, url, key, work }
    }

    fn sessionlake(&self, args: &[&str]) -> sessionlake_tests::Ran {
        run(binary("sessionlake", true)
            .current_dir(self.work.path())
            .args(["--lake", &self.url, "--keyring", "keyring.json"])
            .args(args))
    }

    /// The live `commands` files, as `s3://` URLs, those naming `session` when one is given.
    fn files(&self, session: Option<&str>) -> Vec<String> {
        let ran = self.sessionlake(&["files", "--table", "commands", "--json"]);
        assert_eq!(ran.code, 0, "files: {}", ran.stderr);
        let all: Vec<String> = serde_json::from_str(ran.stdout.trim()).expect("a JSON list");
        all.into_iter().filter(|file| session.is_none_or(|id| file.contains(id))).collect()
    }

    /// The (session, seq) of the rows `sessionlake search` finds matching `pattern`.
    fn search(&self, pattern: &str) -> Vec<(String, u64)> {
        let ran = self.sessionlake(&["search", pattern, "--format", "json"]);
        assert!(ran.code <= 1, "search: {}", ran.stderr);
        let mut rows: Vec<(String, u64)> = ran
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["type"] != "summary")
            .map(|record| {
                let row = if record["data"].is_object() { &record["data"] } else { &record };
                (
                    row["session_id"].as_str().expect("id").to_string(),
                    row["seq"].as_u64().expect("seq"),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// Copies the object of `url` to `backup/<its name>` in the bucket (a backup, a replica);
    /// returns the copy's URL.
    async fn backup(&self, url: &str) -> String {
        let (_, key) = url["s3://".len()..].split_once('/').expect("bucket/key");
        let copy_key = format!("backup/{}", key.rsplit('/').next().expect("name"));
        self.copy(key, &copy_key).await;
        format!("s3://{}/{copy_key}", self.bucket)
    }

    /// Copies the object at `from` to `to`, in the bucket.
    async fn copy(&self, from: &str, to: &str) {
        let source = format!("{}/{from}", self.bucket);
        let copy = self.s3.copy_object().bucket(&self.bucket).copy_source(source).key(to);
        copy.send().await.expect("copy");
    }
}

/// Makes a KMS key on moto; returns its ARN.
async fn new_key(kms: &aws_sdk_kms::Client) -> String {
    let key = kms.create_key().send().await.expect("create key");
    key.key_metadata().expect("metadata").arn().expect("arn").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn test_pyarrow_reads_the_encrypted_commands_and_shredding_stops_it() {
    let lake = S3Lake::ingested().await;
    let (s3, search) = (&lake.s3, |pattern: &str| lake.search(pattern));
    let files = |session: Option<&str>| lake.files(session);
    let sessionlake = |args: &[&str]| lake.sessionlake(args);
    let lake_url = &lake.url;

    // The same regex, the same rows.
    let pattern = r"sudo|systemctl|\brm\b";
    let expected = search(pattern);
    assert!(expected.len() >= 2, "{expected:?}");
    let listed = files(None);
    let (found, failures) = pyarrow_search(lake_url, pattern, &listed);
    assert_eq!(failures, serde_json::json!({}), "every file opens");
    assert_eq!(found, expected);

    // A copy of one session's file (a backup, a replica), then the session is shredded.
    let (victim, _) = expected[0].clone();
    let copies: Vec<String> = files(Some(&victim));
    assert_eq!(copies.len(), 1, "{copies:?}");
    let local = tempfile::tempdir().expect("tempdir");
    let victim_copy = download(s3, &copies, local.path()).await;
    let copy = lake.backup(&copies[0]).await;
    let shred = sessionlake(&["shred", &victim, "--reason", "test", "--yes"]);
    assert_eq!(shred.code, 0, "shred: {}{}", shred.stdout, shred.stderr);
    let mut readable = files(None);
    assert!(readable.iter().all(|file| !file.contains(&victim)), "{readable:?}");
    readable.push(copy.clone());
    let (found, failures) = pyarrow_search(lake_url, pattern, &readable);
    let refused = failures[&copy].as_str().unwrap_or_default();
    assert!(refused.contains("does not exist") && refused.contains("shredded"), "{failures}");
    assert_eq!(failures.as_object().map(|f| f.len()), Some(1), "{failures}");
    let others: Vec<(String, u64)> = expected.into_iter().filter(|(id, _)| *id != victim).collect();
    assert_eq!(found, others);
    assert_eq!(search(pattern), others);

    // Spark, over local copies of the live files and of the shredded session's file.
    let mut spark_files = download(s3, &files(None), local.path()).await;
    spark_files.extend(victim_copy.iter().cloned());
    let (found, failures) = spark_search(lake_url, pattern, &spark_files);
    let copy = victim_copy[0].display().to_string();
    let refused = failures[&copy].as_str().unwrap_or_default();
    assert!(refused.contains("shredded"), "{failures}");
    assert_eq!(failures.as_object().map(|f| f.len()), Some(1), "{failures}");
    assert_eq!(found, others);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_pyarrow_follows_a_rekey_of_compacted_files_and_a_shred_closes_their_old_copies() {
    let lake = S3Lake::ingested().await;
    let compact = lake.sessionlake(&["compact", "--min-age", "0s", "--kms-key-id", &lake.key]);
    assert_eq!(compact.code, 0, "compact: {}", compact.stderr);
    let pattern = r"sudo|systemctl|\brm\b|ls|cat";
    let expected = lake.search(pattern);
    let compacted: Vec<String> =
        lake.files(None).into_iter().filter(|file| file.contains("/compact-")).collect();
    assert!(!compacted.is_empty(), "{:?}", lake.files(None));
    let (found, failures) = pyarrow_search(&lake.url, pattern, &lake.files(None));
    assert_eq!(failures, serde_json::json!({}), "every file opens");
    assert_eq!(found, expected);

    // The files' footers never change; a rekey re-wraps the key records they name, and the
    // engine follows it: with the old KMS key disabled, every file still opens.
    let second = new_key(&lake.kms).await;
    let rekey = lake.sessionlake(&["rekey", "--to-kms", &second, "--json"]);
    assert_eq!(rekey.code, 0, "rekey: {}", rekey.stderr);
    let (found, failures) =
        pyarrow_search_without(&lake.url, pattern, &lake.files(None), &[&lake.key]);
    assert_eq!(failures, serde_json::json!({}), "every file opens under the new key");
    assert_eq!(found, expected);

    // A backup of a compacted file holding a session, then the session is shredded: the file
    // is rewritten without it, and the old file's key goes with it, so the copy opens nowhere.
    let (victim, file) = compacted
        .iter()
        .find_map(|file| {
            let (rows, _) = pyarrow_search(&lake.url, pattern, std::slice::from_ref(file));
            Some((rows.first()?.0.clone(), file.clone()))
        })
        .expect("a compacted file with a matching row");
    let copy = lake.backup(&file).await;
    let shred = lake.sessionlake(&["shred", &victim, "--reason", "test", "--yes"]);
    assert_eq!(shred.code, 0, "shred: {}{}", shred.stdout, shred.stderr);
    let mut readable = lake.files(None);
    assert!(!readable.contains(&file), "{readable:?}");
    readable.push(copy.clone());
    let (found, failures) = pyarrow_search_without(&lake.url, pattern, &readable, &[&lake.key]);
    let refused = failures[&copy].as_str().unwrap_or_default();
    assert!(
        refused.contains("file key record") && refused.contains("does not exist"),
        "{failures}"
    );
    assert_eq!(failures.as_object().map(|f| f.len()), Some(1), "{failures}");
    let others: Vec<(String, u64)> = expected.into_iter().filter(|(id, _)| *id != victim).collect();
    assert!(!others.is_empty());
    assert_eq!(found, others);
    assert_eq!(lake.search(pattern), others);

    // A record copied over another file's (by whoever can write to the bucket) opens nothing:
    // the client checks the record is bound to its own path, as sessionlake does.
    let live = lake.files(None);
    let target = live.iter().find(|file| file.contains("/compact-")).expect("a compacted file");
    let (_, file_key) = target["s3://".len()..].split_once('/').expect("bucket/key");
    let (prefix, table_path) = file_key.split_once('/').expect("prefix/path");
    let record = format!("{prefix}/keys/files/{}", table_path.replace(".parquet", ".key.json"));
    let listed =
        lake.s3.list_objects_v2().bucket(&lake.bucket).prefix(format!("{prefix}/keys/sessions/"));
    let listed = listed.send().await.expect("list");
    let other = listed.contents().first().and_then(|object| object.key()).expect("a record");
    lake.copy(other, &record).await;
    let (_, failures) = pyarrow_search(&lake.url, pattern, std::slice::from_ref(target));
    let refused = failures[target.as_str()].as_str().unwrap_or_default();
    assert!(refused.contains("copied here"), "{failures}");
}
