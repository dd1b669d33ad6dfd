#!/usr/bin/env python3
"""Reads encrypted Parquet with Spark local mode and a custom parquet-java KmsClient.

    read_spark.py SCENARIO PATH [PATH...]   (env: CLIENT=file|helper, KEYS=..., COLUMNS=a,b,
    VECTORIZED=true|false, LAKE=s3://..., JARMODE=jars|cp|both, FILTER=regex)
Prints timings and results as JSON lines."""
import json, os, sys, time
t0 = time.time()
from pyspark.sql import SparkSession
import pyspark

HERE = os.path.dirname(os.path.abspath(__file__))
JAR = os.path.join(HERE, "java", "sessionlake-spark-kms.jar")
scenario, paths = sys.argv[1], sys.argv[2:]
client = os.environ.get("CLIENT", "file")
jarmode = os.environ.get("JARMODE", "both")

b = (SparkSession.builder.master(os.environ.get("MASTER", "local[2]")).appName("sessionlake-" + scenario)
     .config("spark.ui.enabled", "false")
     .config("spark.driver.host", "127.0.0.1")
     .config("spark.driver.bindAddress", "127.0.0.1")
     .config("spark.sql.shuffle.partitions", "2")
     .config("spark.hadoop.parquet.crypto.factory.class",
             "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory")
     .config("spark.sql.parquet.enableVectorizedReader", os.environ.get("VECTORIZED", "true")))
if jarmode in ("jars", "both"):
    b = b.config("spark.jars", JAR)
if jarmode in ("cp", "both"):
    b = b.config("spark.driver.extraClassPath", JAR)
if client == "file":
    b = (b.config("spark.hadoop.parquet.encryption.kms.client.class", "sessionlake.spark.FileKmsClient")
          .config("spark.hadoop.sessionlake.kms.keys.file", os.environ["KEYS"]))
elif client == "direct":
    b = (b.config("spark.hadoop.parquet.encryption.kms.client.class", "sessionlake.spark.DirectAwsKmsClient")
          .config("spark.hadoop.sessionlake.lake", os.environ["LAKE"]))
else:
    helper = f"{sys.executable} {HERE}/sessionlake_unwrap.py {os.environ['LAKE']}"
    b = (b.config("spark.hadoop.parquet.encryption.kms.client.class", "sessionlake.spark.HelperKmsClient")
          .config("spark.hadoop.sessionlake.kms.helper", helper))
spark = b.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
t1 = time.time()
out = {"scenario": scenario, "pyspark": pyspark.__version__, "import_s": round(t0 and (t1 - t0), 2)}
if os.environ.get("IGNORE_CORRUPT"):
    spark.conf.set("spark.sql.files.ignoreCorruptFiles", "true")
try:
    if os.environ.get("SCHEMA_FROM"):
        df = spark.read.schema(spark.read.parquet(os.environ["SCHEMA_FROM"]).schema).parquet(*paths)
    else:
        df = spark.read.parquet(*paths)
    cols = os.environ.get("SELECT")
    if cols:
        df = df.select(*cols.split(","))
    if os.environ.get("FILTER"):
        from pyspark.sql.functions import col
        df = df.filter(col("command").rlike(os.environ["FILTER"]))
    rows = df.collect()
    t2 = time.time()
    out.update(ok=True, rows=len(rows), first=[r.asDict() for r in rows[:2]],
               schema=df.schema.simpleString()[:200], read_s=round(t2 - t1, 2))
except Exception as e:  # what Spark says
    t2 = time.time()
    out.update(cause_in_str=("shredded" in str(e) or "not in the keys file" in str(e)), str_len=len(str(e)))
    out.update(ok=False, error_type=type(e).__name__, read_s=round(t2 - t1, 2),
               error="\n".join(str(e).splitlines()[:25]))
spark.stop()
out["session_start_s"] = round(t1 - t0, 2)
out["total_s"] = round(time.time() - t0, 2)
print("RESULT " + json.dumps(out, default=str))
