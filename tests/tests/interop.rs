//! Engines other than sessionlake open the encrypted columns: pyarrow, with the standard key
//! material the files carry (PKMT1) and the lake's KMS client (`clients/python/`), and Spark
//! (local mode, parquet-java's crypto factory, `clients/java/`) find the rows `sessionlake
//! search` finds; after `shred`, a copy of the shredded session's file does not open for them
//! either, and everyone else's rows still do.

use serde_json::Value;
use sessionlake_tests::{
    binary, copy_tree, python_on_moto, repo_root, run, s3_client, sdk_config, unique,
};

/// The (session, seq) of the rows pyarrow finds matching `pattern` in `files`, and the files it
/// could not read with why.
fn pyarrow_search(lake: &str, pattern: &str, files: &[String]) -> (Vec<(String, u64)>, Value) {
    let script = repo_root().join("tests/interop/pyarrow_search.py");
    let listed = serde_json::to_string(files).expect("files");
    let ran = run(python_on_moto().arg(script).args([lake, pattern, &listed]));
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

#[tokio::test(flavor = "multi_thread")]
async fn test_pyarrow_reads_the_encrypted_commands_and_shredding_stops_it() {
    let sdk = sdk_config().await;
    let s3 = s3_client().await;
    let bucket = unique("interop-lake");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms.create_key().send().await.expect("data key");
    let key = key.key_metadata().expect("metadata").key_id().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &work.path().join("examples"));
    let lake = format!("s3://{bucket}/lake");
    let ingest = run(binary("sessionlake-ingest", true).current_dir(work.path()).args([
        "--lake",
        &lake,
        "--keyring",
        "keyring.json",
        "--kms-key-id",
        &key,
        "--quiet",
    ]));
    assert_eq!(ingest.code, 0, "ingest: {}", ingest.stderr);
    let sessionlake = |args: &[&str]| {
        run(binary("sessionlake", true)
            .current_dir(work.path())
            .args(["--lake", &lake, "--keyring", "keyring.json"])
            .args(args))
    };
    let files = |session: Option<&str>| -> Vec<String> {
        let ran = sessionlake(&["files", "--table", "commands", "--json"]);
        assert_eq!(ran.code, 0, "files: {}", ran.stderr);
        let all: Vec<String> = serde_json::from_str(ran.stdout.trim()).expect("a JSON list");
        all.into_iter().filter(|file| session.is_none_or(|id| file.contains(id))).collect()
    };
    let search = |pattern: &str| -> Vec<(String, u64)> {
        let ran = sessionlake(&["search", pattern, "--format", "json"]);
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
    };

    // The same regex, the same rows.
    let pattern = r"sudo|systemctl|\brm\b";
    let expected = search(pattern);
    assert!(expected.len() >= 2, "{expected:?}");
    let listed = files(None);
    let (found, failures) = pyarrow_search(&lake, pattern, &listed);
    assert_eq!(failures, serde_json::json!({}), "every file opens");
    assert_eq!(found, expected);

    // A copy of one session's file (a backup, a replica), then the session is shredded.
    let (victim, _) = expected[0].clone();
    let copies: Vec<String> = files(Some(&victim));
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (_, victim_key) = copies[0][5..].split_once('/').expect("bucket/key");
    let copy_key = format!("backup/{}", victim_key.rsplit('/').next().expect("name"));
    let local = tempfile::tempdir().expect("tempdir");
    let victim_copy = download(&s3, &copies, local.path()).await;
    s3.copy_object()
        .bucket(&bucket)
        .copy_source(format!("{bucket}/{victim_key}"))
        .key(&copy_key)
        .send()
        .await
        .expect("copy");
    let shred = sessionlake(&["shred", &victim, "--reason", "test", "--yes"]);
    assert_eq!(shred.code, 0, "shred: {}{}", shred.stdout, shred.stderr);
    let mut readable = files(None);
    assert!(readable.iter().all(|file| !file.contains(&victim)), "{readable:?}");
    let copy = format!("s3://{bucket}/{copy_key}");
    readable.push(copy.clone());
    let (found, failures) = pyarrow_search(&lake, pattern, &readable);
    let refused = failures[&copy].as_str().unwrap_or_default();
    assert!(refused.contains("does not exist") && refused.contains("shredded"), "{failures}");
    assert_eq!(failures.as_object().map(|f| f.len()), Some(1), "{failures}");
    let others: Vec<(String, u64)> = expected.into_iter().filter(|(id, _)| *id != victim).collect();
    assert_eq!(found, others);
    assert_eq!(search(pattern), others);

    // Spark, over local copies of the live files and of the shredded session's file.
    let mut spark_files = download(&s3, &files(None), local.path()).await;
    spark_files.extend(victim_copy.iter().cloned());
    let (found, failures) = spark_search(&lake, pattern, &spark_files);
    let copy = victim_copy[0].display().to_string();
    let refused = failures[&copy].as_str().unwrap_or_default();
    assert!(refused.contains("shredded"), "{failures}");
    assert_eq!(failures.as_object().map(|f| f.len()), Some(1), "{failures}");
    assert_eq!(found, others);
}
