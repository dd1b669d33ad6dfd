//! Column names of the `commands`, `sessions` and `access` tables. Code refers to these, never to literals.

/// Session id, `<principal>-<suffix>` as SSM makes it.
pub const SESSION_ID: &str = "session_id";
/// Position of the command within its session, from 0.
pub const SEQ: &str = "seq";
/// When the command started (µs since the epoch, UTC); null when the input has no time for it.
pub const STARTED_AT: &str = "started_at";
/// Where `started_at` came from: see [`crate::TimeSource`].
pub const TIME_SOURCE: &str = "time_source";
/// IAM ARN or user name of the person who started the session.
pub const PRINCIPAL: &str = "principal";
/// OS user the shell ran as.
pub const RUN_AS: &str = "run_as";
/// Managed node the session ran on (`i-…`, `mi-…`, `ecs:…`).
pub const TARGET: &str = "target";
/// AWS region of the session.
pub const REGION: &str = "region";
/// AWS account id of the session.
pub const ACCOUNT: &str = "account";
/// Working directory, when the prompt shows it. Encrypted.
pub const CWD: &str = "cwd";
/// The prompt printed before the command. Encrypted.
pub const PROMPT: &str = "prompt";
/// The command as the shell received it, after line editing, secrets masked. Encrypted.
pub const COMMAND: &str = "command";
/// What the command printed, capped, secrets masked. Encrypted.
pub const OUTPUT: &str = "output";
/// True when `output` was cut at the cap.
pub const OUTPUT_TRUNCATED: &str = "output_truncated";
/// Size of the full output in bytes, before the cap.
pub const OUTPUT_BYTES: &str = "output_bytes";
/// Offset of the command's bytes (prompt to end of output) in the decrypted raw transcript.
pub const RAW_OFFSET: &str = "raw_offset";
/// Length of that byte range.
pub const RAW_LEN: &str = "raw_len";
/// Number of secrets masked in `command` and `output`.
pub const REDACTIONS: &str = "redactions";
/// How sure the parser is that this row is a command the user ran: see [`crate::Confidence`].
pub const CONFIDENCE: &str = "confidence";
/// Version of the parser that produced the row.
pub const PARSER_VERSION: &str = "parser_version";
/// Who the command ran as at that moment (`root` after `sudo su -`, `bob` for `sudo -u bob
/// CMD`), from the prompts and the commands; null when nothing tells. Schema version 2.
pub const EFFECTIVE_USER: &str = "effective_user";
/// The shell that read the command (`bash`, `zsh`, `fish`, `sh`); null when nothing tells.
/// Schema version 2.
pub const SHELL: &str = "shell";
/// The program a `repl` row was typed into (`sqlite3`, `psql`, `mysql`, `python`, `irb`,
/// `node`, `redis-cli`); null for shell commands. Schema version 2.
pub const PROGRAM: &str = "program";

/// The shells the session's commands were read by, in order of appearance, comma-separated
/// (`bash,zsh`). Schema version 2.
pub const SHELLS: &str = "shells";
/// Share of the transcript's bytes the rows explain (prompts, commands and their output), 0–1.
/// Schema version 2.
pub const INPUT_EXPLAINED: &str = "input_explained";
/// Why the session's `confidence` (in `sessions`: `high`, `medium` or `low`) is what it is.
/// Schema version 2.
pub const CONFIDENCE_REASON: &str = "confidence_reason";

/// When the session ended, as far as the input tells.
pub const ENDED_AT: &str = "ended_at";
/// Number of commands extracted from the session.
pub const COMMAND_COUNT: &str = "command_count";
/// Which input the session came from: see [`crate::SessionSource`].
pub const SOURCE: &str = "source";
/// Where in that input: `bucket/key` or `group/stream` or a file path.
pub const SOURCE_REF: &str = "source_ref";
/// Lake path of the encrypted raw transcript.
pub const RAW_OBJECT: &str = "raw_object";
/// SHA-256 (hex) of the original transcript bytes as received.
pub const RAW_SHA256: &str = "raw_sha256";
/// Id of the key-provider key that wraps the session's data keys.
pub const KEY_ID: &str = "key_id";
/// When the session was written to the lake.
pub const INGESTED_AT: &str = "ingested_at";
/// Outcome of parsing: see [`crate::SessionStatus`].
pub const STATUS: &str = "status";
/// Hive partition column (session start date, UTC); in the path, not in the files.
pub const DT: &str = "dt";

/// CloudTrail `eventID` of an access event: unique per event, the table's dedupe key.
pub const EVENT_ID: &str = "event_id";
/// CloudTrail `eventTime` of an access event (µs since the epoch, UTC).
pub const EVENT_TIME: &str = "event_time";
/// What kind of access (see [`crate::AccessKind`]); in `commands` (schema version 2), what kind
/// of input the row is: `shell` (a command a shell read) or `repl` (a line typed into a
/// program the shell started, named by [`PROGRAM`]). Null in older files: `shell`.
pub const KIND: &str = "kind";
/// CloudTrail `userIdentity.type`: `IAMUser`, `AssumedRole`, `Root`, `AWSService`, ….
pub const PRINCIPAL_TYPE: &str = "principal_type";
/// CloudTrail `sourceIPAddress` (an IP, or a service name for calls AWS made on one's behalf).
pub const SOURCE_IP: &str = "source_ip";
/// CloudTrail `userAgent`.
pub const USER_AGENT: &str = "user_agent";
/// Managed nodes the event targets: instance ids, or `tag:Key=Value` for Run Command tag targets.
pub const TARGETS: &str = "targets";
/// OS user an EC2 Instance Connect key was pushed for (`instanceOSUser`).
pub const OS_USER: &str = "os_user";
/// SSM document (`AWS-StartPortForwardingSession`, `AWS-StartSSHSession`, `AWS-RunShellScript`).
pub const DOCUMENT_NAME: &str = "document_name";
/// The event's request parameters that can hold what a person typed (Run Command scripts,
/// port-forwarding hosts and ports), as JSON text. Encrypted.
pub const PARAMETERS: &str = "parameters";
/// Run Command `commandId`.
pub const COMMAND_ID: &str = "command_id";
/// CloudTrail `errorCode` when the call failed (a refused access is evidence too).
pub const ERROR_CODE: &str = "error_code";
