-- sessionlake tables for Athena / Trino. Replace <bucket>/<prefix>.
-- The encrypted columns (command, output, prompt, cwd) are Parquet modular encryption; engines
-- without the keys read every other column. Use `sessionlake sql` to query the encrypted ones.
-- Types are those Athena / Trino read the files' columns as: unsigned 32-bit columns as bigint,
-- unsigned 64-bit ones as decimal(20,0) (a test compares them with the files).
CREATE EXTERNAL TABLE IF NOT EXISTS sessionlake_commands (
  session_id string, seq bigint, started_at timestamp, time_source string,
  principal string, run_as string, target string, region string, account string,
  output_truncated boolean, output_bytes decimal(20,0), raw_offset decimal(20,0),
  raw_len decimal(20,0), redactions bigint, confidence string, parser_version bigint,
  -- schema version 2 (null in files written before): whom the command ran as (root after
  -- `sudo su -`), the shell, kind (`shell`, or `repl` for a line typed into a program) and
  -- that program (sqlite3, psql, mysql, python, irb, node, redis-cli)
  effective_user string, shell string, kind string, program string
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://<bucket>/<prefix>/commands/'
TBLPROPERTIES ('projection.enabled'='true', 'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd', 'projection.dt.range'='2015-01-01,NOW',
  'storage.location.template'='s3://<bucket>/<prefix>/commands/dt=${dt}/');

CREATE EXTERNAL TABLE IF NOT EXISTS sessionlake_sessions (
  session_id string, principal string, run_as string, target string, region string,
  account string, started_at timestamp, ended_at timestamp, command_count bigint, source string,
  source_ref string, raw_object string, raw_sha256 string, key_id string,
  ingested_at timestamp, status string, parser_version bigint,
  -- schema version 2 (null in files written before): the shells seen, the share of the input
  -- understood, and a confidence (high/medium/low) with its reason
  shells string, input_explained double, confidence string, confidence_reason string
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://<bucket>/<prefix>/sessions/'
TBLPROPERTIES ('projection.enabled'='true', 'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd', 'projection.dt.range'='2015-01-01,NOW',
  'storage.location.template'='s3://<bucket>/<prefix>/sessions/dt=${dt}/');

-- One row per CloudTrail access event (StartSession, ResumeSession, TerminateSession, EC2
-- Instance Connect SendSSHPublicKey, Run Command SendCommand). `parameters` (request parameters
-- that can hold scripts, hosts and ports) is encrypted; every other column reads without keys.
-- dt is the event's day (UTC). Who touched a node:
--   SELECT event_time, kind, principal FROM sessionlake_access WHERE contains(targets, 'i-…')
CREATE EXTERNAL TABLE IF NOT EXISTS sessionlake_access (
  event_id string, event_time timestamp, kind string, principal string, principal_type string,
  source_ip string, user_agent string, targets array<string>, os_user string,
  document_name string, session_id string, command_id string, region string, account string,
  error_code string, source_ref string
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION 's3://<bucket>/<prefix>/access/'
TBLPROPERTIES ('projection.enabled'='true', 'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd', 'projection.dt.range'='2015-01-01,NOW',
  'storage.location.template'='s3://<bucket>/<prefix>/access/dt=${dt}/');
