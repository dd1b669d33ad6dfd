#!/usr/bin/env bash
# Compiles the KMS clients against the jars inside the pyspark package and packs them.
set -euo pipefail
cd "$(dirname "$0")/java"
jars=$(../venv/bin/python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
rm -rf classes && mkdir -p classes
javac --release 17 -d classes -cp "$jars/*" src/sessionlake/spark/*.java
jar --create --file sessionlake-spark-kms.jar -C classes .
ls -la sessionlake-spark-kms.jar
