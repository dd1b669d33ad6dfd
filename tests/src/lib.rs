//! Helpers for the end-to-end tests: the real binaries, moto's server on loopback (started by
//! `scripts/test`), and DuckDB from the test virtualenv.
//!
//! - [`binary`] and [`run`]: a workspace binary with a clean AWS environment (pointed at moto,
//!   or at nothing), run to its end; [`Background`] for one that serves.
//! - [`sdk_config`], [`s3_client`], [`unique`]: moto's endpoint and names no other test of the
//!   run uses; [`PrivateMoto`] and [`FaultProxy`] for a test that restarts or breaks it.
//! - [`copy_tree`], [`files_under`], [`duckdb`]: a scenario's folders, and DuckDB reading them.
//!
//! ```
//! use std::process::Command;
//!
//! use sessionlake_tests::{copy_tree, files_under, repo_root, run, unique};
//!
//! // A scenario's own copy of the shipped examples, to alter without touching another's.
//! let dir = tempfile::tempdir().expect("tempdir");
//! copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
//! let files = files_under(&dir.path().join("examples"));
//! assert!(files.iter().any(|path| path.starts_with("s3")), "{files:?}");
//!
//! // What a command printed and how it ended (the tests run the binaries this way).
//! let ran = run(Command::new("sh").args(["-c", "echo listed; echo refused >&2; exit 2"]));
//! assert_eq!((ran.code, ran.stdout.as_str(), ran.stderr.as_str()), (2, "listed\n", "refused\n"));
//!
//! // Bucket names of this test only: moto keeps every bucket for the whole run.
//! assert!(unique("lake").starts_with("lake-"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// Test credentials moto accepts; never real ones.
const TEST_ACCESS_KEY: &str = "testing";
const TEST_SECRET_KEY: &str = "testing";
/// Region of every test resource.
pub const TEST_REGION: &str = "us-east-1";

/// Returns the repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Returns moto's endpoint. Fails loudly when the tests were not started by `scripts/test`:
/// an end-to-end test that silently skips would be a test that cannot fail.
pub fn moto_endpoint() -> String {
    std::env::var("SESSIONLAKE_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!("SESSIONLAKE_TEST_ENDPOINT is not set: run the tests with ./scripts/test, which starts moto_server")
    })
}

/// Returns the SDK configuration for moto.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_for(&moto_endpoint()).await
}

/// Returns the SDK configuration for a moto server at `endpoint`.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_s3::config::Credentials::new(TEST_ACCESS_KEY, TEST_SECRET_KEY, None, None, "tests");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(TEST_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// Returns an S3 client for moto (path-style addressing).
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config =
        aws_sdk_s3::config::Builder::from(&sdk_config().await).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Returns a command running one of the workspace's binaries, with a clean AWS environment
/// pointing at moto (or at nothing, when `aws` is false).
/// A Python of the test tools (`SESSIONLAKE_TEST_PYTHON`) that reaches moto as the binaries do
/// (endpoint, test credentials and region).
pub fn python_on_moto() -> Command {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test")
    });
    let mut command = Command::new(python);
    on_moto(&mut command).env("AWS_DEFAULT_REGION", TEST_REGION).env_remove("AWS_PROFILE");
    command
}

/// Points `command` at moto: its endpoint, the test credentials and region.
fn on_moto(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
        .env("AWS_REGION", TEST_REGION)
}

pub fn binary(name: &str, aws: bool) -> Command {
    let path = assert_cmd::cargo::cargo_bin(name);
    let mut command = Command::new(path);
    for variable in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        command.env_remove(variable);
    }
    command.env("AWS_EC2_METADATA_DISABLED", "true");
    // Tables fit `COLUMNS` when it is set: the tests read them whole.
    command.env_remove("COLUMNS");
    for variable in [
        "SESSIONLAKE_LAKE",
        "SESSIONLAKE_KEYRING",
        "SESSIONLAKE_KEYRING_PASSPHRASE",
        "SESSIONLAKE_CONFIG",
        "SESSIONLAKE_FOLLOW",
        "SESSIONLAKE_POLL_INTERVAL",
        "SESSIONLAKE_MAX_IN_FLIGHT",
        "SESSIONLAKE_BATCH_SESSIONS",
        "SESSIONLAKE_MAX_TRAIL_RECORDS",
        "SESSIONLAKE_HOLD_ROWS_UP_TO",
        "SESSIONLAKE_SHUTDOWN_TIMEOUT",
        "SESSIONLAKE_RETRY_MAX_ATTEMPTS",
        "SESSIONLAKE_METRICS_ADDR",
        "SESSIONLAKE_METRICS_ALLOW_REMOTE",
        "SESSIONLAKE_IDLE_PERIOD",
        "SESSIONLAKE_SIGNING_KEY",
        "SESSIONLAKE_RESTART_WITHIN",
        "SESSIONLAKE_OBJECT_LOCK_MODE",
        "SESSIONLAKE_OBJECT_LOCK_DAYS",
        "SESSIONLAKE_JSON",
        "SESSIONLAKE_S3",
        "SESSIONLAKE_CLOUDWATCH",
        "SESSIONLAKE_LOCAL",
        "SESSIONLAKE_CLOUDTRAIL",
        "SESSIONLAKE_ONCE",
        "SESSIONLAKE_TZ",
        "SESSIONLAKE_PROFILE",
        "SESSIONLAKE_QUIET",
        "SESSIONLAKE_REGION",
    ] {
        command.env_remove(variable);
    }
    if aws {
        on_moto(&mut command);
    }
    command
}

/// Output of a finished command.
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Asserts the command ended with `code` and its standard error holds each of `needles`.
    #[track_caller]
    pub fn assert_stderr_holds(&self, code: i32, needles: &[&str]) {
        self.assert_holds(code, &self.stderr, needles);
    }

    /// Asserts the command ended with `code` and its standard output holds each of `needles`.
    #[track_caller]
    pub fn assert_stdout_holds(&self, code: i32, needles: &[&str]) {
        self.assert_holds(code, &self.stdout, needles);
    }

    #[track_caller]
    fn assert_holds(&self, code: i32, printed: &str, needles: &[&str]) {
        assert_eq!(self.code, code, "{}{}", self.stdout, self.stderr);
        for needle in needles {
            assert!(printed.contains(needle), "no {needle:?} in:\n{printed}");
        }
    }
}

/// Runs `command` and returns what it printed.
pub fn run(command: &mut Command) -> Ran {
    let output =
        command.output().unwrap_or_else(|error| panic!("failed to run {command:?}: {error}"));
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What a binary built by this repository reports of its allocator at debug level
/// (`sessionlake_storage::allocator::describe`, without the bytes allocated): jemalloc with the
/// settings of `.cargo/config.toml`.
pub const BUILT_ALLOCATOR: &str =
    r#"jemalloc, Ok(1) arenas, malloc_conf Ok("narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0")"#;

/// Returns the allocator a process reported in `stderr` (its one `allocator: ` line, logged at
/// debug level), without the bytes allocated, after checking that jemalloc had handed out the
/// process's memory so far (the global allocator it is, not only linked in).
#[track_caller]
pub fn reported_allocator(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|line| line.contains("allocator: ")).collect();
    assert_eq!(lines.len(), 1, "one process, one line: {stderr}");
    let line = lines[0].rsplit("allocator: ").next().unwrap_or_default();
    let (settings, allocated) =
        line.rsplit_once(", Ok(").unwrap_or_else(|| panic!("no byte count in {line:?}"));
    let allocated: u64 = allocated
        .strip_suffix(") bytes allocated")
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    // About 600 kB (ingest) to 900 kB (`sessionlake`) by the time they log it; 28,672 bytes,
    // jemalloc's own, when the binary does not make it its global allocator.
    assert!(allocated > 100_000, "{line}");
    settings.to_string()
}

/// Runs `sql` in DuckDB (the test virtualenv's) with `dir` as the working directory and returns
/// the rows as JSON arrays, one per line.
pub fn duckdb(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test")
    });
    let script = "import duckdb, json, sys\nfor row in duckdb.sql(sys.argv[1]).fetchall():\n    print(json.dumps(row, default=str))\n";
    let ran = run(Command::new(python).current_dir(dir).arg("-c").arg(script).arg(sql));
    assert_eq!(ran.code, 0, "duckdb failed on {sql}:\n{}", ran.stderr);
    ran.stdout.lines().map(|line| serde_json::from_str(line).expect("duckdb row is JSON")).collect()
}

/// Names unique to one test run: moto keeps state for the whole run of the suite.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Creates a bucket in moto for each of `prefixes`, named by [`unique`]; returns the names.
pub async fn new_buckets<const N: usize>(
    s3: &aws_sdk_s3::Client,
    prefixes: [&str; N],
) -> [String; N] {
    let names = prefixes.map(unique);
    for bucket in &names {
        s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
    }
    names
}

/// Copies a folder tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Lists the files under `dir`, relative paths, sorted; not the tables' Delta logs.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                // A table's Delta log is derived from the chain (sessionlake-delta), not an
                // object of the lake: tests that look at it name it.
                if !path.ends_with(sessionlake_schemas::paths::DELTA_LOG_DIR) {
                    stack.push(path);
                }
            } else {
                found.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// The one of `files` (as [`files_under`] lists them) that starts with `prefix`, as a string.
pub fn file_starting_with(files: &[PathBuf], prefix: &str) -> String {
    files
        .iter()
        .find(|path| path.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} object in {files:?}"))
        .to_string_lossy()
        .to_string()
}

/// A binary running in the background, with what it prints collected as it goes.
pub struct Background {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect_lines(
    pipe: impl std::io::Read + Send + 'static,
    into: std::sync::Arc<std::sync::Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = into.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            text.push_str(&line);
            text.push('\n');
        }
    })
}

impl Background {
    /// Starts `command` with its output piped and collected.
    pub fn spawn(command: &mut Command) -> Background {
        use std::process::Stdio;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("stdout"), stdout.clone()),
            collect_lines(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Background { child, stdout, stderr, readers }
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns what the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Returns what the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Sends a signal (`TERM`, `INT`) to the process.
    pub fn signal(&self, name: &str) {
        let sent = run(Command::new("kill").args(["-s", name, &self.pid().to_string()]));
        assert_eq!(sent.code, 0, "kill -s {name} failed: {}", sent.stderr);
    }

    /// Waits for the process to exit (killing it and failing after `timeout`) and returns
    /// what it printed.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Ran {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("process did not exit within {timeout:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A failed test must not leave a service running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A moto server of one test's own (the shared one keeps its state for the whole run): a restart
/// loses every key, bucket and stream, as when a KMS key is destroyed or made inaccessible.
pub struct PrivateMoto {
    port: u16,
    server: Option<Background>,
}

impl PrivateMoto {
    /// Starts a server on a free loopback port, with the test virtualenv's Python.
    pub fn start() -> PrivateMoto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let mut moto = PrivateMoto { port, server: None };
        moto.restart();
        moto
    }

    /// Returns the endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (if running) and starts an empty one on the same port.
    pub fn restart(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.signal("TERM");
            server.wait(std::time::Duration::from_secs(30));
        }
        let python = std::env::var("SESSIONLAKE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test")
        });
        let port = self.port.to_string();
        self.server = Some(Background::spawn(Command::new(python).args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port,
        ])));
        let address = format!("127.0.0.1:{port}");
        wait_until(std::time::Duration::from_secs(60), "a private moto server", || {
            std::net::TcpStream::connect(&address).ok()
        });
    }

    /// Returns `command` pointed at this server instead of the shared one.
    pub fn point<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("AWS_ENDPOINT_URL", self.endpoint())
    }
}

/// Calls `probe` every 100 ms until it returns something, and returns that; fails naming
/// `what` after `timeout`.
pub fn wait_until<T>(
    timeout: std::time::Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Sends `GET path` to a loopback HTTP server; returns the status code and body, or `None`
/// when nothing answers.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())?;
    Some((status, body))
}

/// Creates log group `group` with stream `stream` in moto holding the events of the example
/// CloudWatch stream `examples/cloudwatch/ssm-sessions/<stream>.json`, re-timed to a second
/// apart from ten minutes ago (moto drops events older than 14 days); returns their messages.
pub async fn put_example_stream(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<String> {
    let (_, messages) = example_stream(logs, group, stream).await;
    put_events(logs, group, stream, &messages).await;
    messages
}

/// Puts `messages` into stream `stream` of `group` (both exist), a second apart from ten
/// minutes ago.
pub async fn put_events(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    messages: &[String],
) {
    let start = chrono::Utc::now().timestamp_millis() - 600_000;
    put_events_at(logs, group, stream, messages, start, 1000).await;
}

/// Puts `messages` into stream `stream` of `group` (both exist), `step_ms` apart from
/// `start_ms` (milliseconds since the epoch).
pub async fn put_events_at(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    messages: &[String],
    start_ms: i64,
    step_ms: i64,
) {
    let events = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(start_ms + step_ms * i as i64)
                .message(message)
                .build()
                .expect("event")
        })
        .collect();
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("put events");
}

/// Creates log group `group` with an empty stream `stream` in moto, and returns the messages of
/// the example CloudWatch stream `examples/cloudwatch/ssm-sessions/<stream>.json`, to put.
pub async fn example_stream(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> (serde_json::Value, Vec<String>) {
    logs.create_log_group().log_group_name(group).send().await.expect("create log group");
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .expect("create stream");
    let example = repo_root().join(format!("examples/cloudwatch/ssm-sessions/{stream}.json"));
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example).expect("example")).expect("json");
    let messages = event_messages(&document);
    (document, messages)
}

/// The messages of the events of a CloudWatch stream as the examples hold it (`{"events": …}`).
pub fn event_messages(document: &serde_json::Value) -> Vec<String> {
    document["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["message"].as_str().expect("message").to_string())
        .collect()
}

/// The fault proxy (`tests/fault_proxy.py`) in front of the shared moto server: tests set the
/// share and kinds of faults per service (`set`) and point a binary at `endpoint`.
pub struct FaultProxy {
    address: String,
    _process: Background,
}

impl FaultProxy {
    pub fn start(seed: u64) -> FaultProxy {
        let python = std::env::var("SESSIONLAKE_TEST_PYTHON").expect("SESSIONLAKE_TEST_PYTHON");
        let upstream = moto_endpoint().rsplit(':').next().expect("moto port").to_string();
        let script = repo_root().join("tests/fault_proxy.py");
        let process =
            Background::spawn(Command::new(python).arg(script).args([upstream, seed.to_string()]));
        let port = wait_until(std::time::Duration::from_secs(60), "the fault proxy's port", || {
            process.stdout().lines().next().map(str::trim).map(str::to_string)
        });
        FaultProxy { address: format!("127.0.0.1:{port}"), _process: process }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sets the shares of faulty calls (`{"s3": 0.2, ...}`) and returns the proxy's counts.
    pub fn set(&self, settings: &serde_json::Value) -> serde_json::Value {
        use std::io::{Read as _, Write as _};
        let body = settings.to_string();
        let mut stream = std::net::TcpStream::connect(&self.address).expect("proxy");
        let request = format!(
            "POST /__faults__ HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let json = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
        serde_json::from_str(json).unwrap_or_else(|_| panic!("proxy answered {response:?}"))
    }
}
