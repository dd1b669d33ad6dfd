#!/usr/bin/env python3
"""Searches local copies of a sessionlake lake's `commands` files with Spark alone (local
mode), as an analyst's cluster would: Parquet modular encryption through parquet-java's
`PropertiesDrivenCryptoFactory` and sessionlake's Java KMS client (clients/java, built into
target/sessionlake-spark-kms.jar by scripts/spark-client), which asks the Python client to
unwrap each key. Prints {"rows": [[session_id, seq], ...], "failures": {file: error}} for the
rows whose `command` matches PATTERN.

    spark_search.py LAKE PATTERN FILES_JSON

AWS as boto3 finds it (AWS_ENDPOINT_URL for moto), for the unwrapping helper.
"""

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
JAR = ROOT / "target" / "sessionlake-spark-kms.jar"
CLIENT = ROOT / "clients" / "python" / "sessionlake_kms.py"

# Everything on loopback; Spark's launcher reads COLUMNS as a number.
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ.pop("COLUMNS", None)
java17 = pathlib.Path("/usr/lib/jvm/java-17-openjdk-amd64")
if "JAVA_HOME" not in os.environ and java17.is_dir():
    os.environ["JAVA_HOME"] = str(java17)

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.functions import col  # noqa: E402


def main():
    lake, pattern, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sessionlake-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.jars", str(JAR))
        .config("spark.hadoop.parquet.crypto.factory.class",
                "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory")
        .config("spark.hadoop.parquet.encryption.kms.client.class", "sessionlake.spark.HelperKmsClient")
        .config("spark.hadoop.sessionlake.kms.helper", f"{sys.executable} {CLIENT} unwrap {lake}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    rows, failures = [], {}
    try:
        for path in files:
            try:
                found = (spark.read.parquet(path).select("session_id", "seq", "command")
                         .filter(col("command").rlike(pattern)).collect())
            except Exception as error:  # what Spark says is the result
                failures[path] = str(error)
                continue
            rows.extend([row["session_id"], int(row["seq"])] for row in found)
    finally:
        spark.stop()
    print(json.dumps({"rows": sorted(rows), "failures": failures}))


if __name__ == "__main__":
    main()
