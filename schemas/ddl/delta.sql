-- sessionlake's Delta tables: each table folder holds a Delta log (`<table>/_delta_log/`) that
-- lists exactly the live files of the signed chain (no replaced version, no file no commit
-- names), written after every commit. Replace <bucket>/<prefix>. The columns and their types
-- come from the log: unsigned 32-bit columns are `long` (bigint), unsigned 64-bit ones
-- `decimal(20,0)`, and `dt` is the partition. The encrypted columns (command, output, prompt,
-- cwd; access.parameters) are Parquet modular encryption with sessionlake's key metadata:
-- engines read every other column; `sessionlake sql` reads them all.

-- Athena (engine version 3): the schema is read from the log.
CREATE EXTERNAL TABLE sessionlake_commands
LOCATION 's3://<bucket>/<prefix>/commands/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE sessionlake_sessions
LOCATION 's3://<bucket>/<prefix>/sessions/'
TBLPROPERTIES ('table_type' = 'DELTA');

CREATE EXTERNAL TABLE sessionlake_access
LOCATION 's3://<bucket>/<prefix>/access/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Trino (the Delta Lake connector, catalog `delta`, schema `sessionlake`):
-- CALL delta.system.register_table(schema_name => 'sessionlake', table_name => 'commands',
--   table_location => 's3://<bucket>/<prefix>/commands/');
-- CALL delta.system.register_table(schema_name => 'sessionlake', table_name => 'sessions',
--   table_location => 's3://<bucket>/<prefix>/sessions/');
-- CALL delta.system.register_table(schema_name => 'sessionlake', table_name => 'access',
--   table_location => 's3://<bucket>/<prefix>/access/');

-- Spark SQL (with the delta-spark package):
-- CREATE TABLE sessionlake_commands USING DELTA LOCATION 's3://<bucket>/<prefix>/commands/';
