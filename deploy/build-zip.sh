#!/usr/bin/env bash
# Builds the code zip of deploy/template.yaml's function: sessionlake-lambda (release), checked to
# need no newer glibc than Amazon Linux 2023's (2.34, the provided.al2023 runtime), named
# `bootstrap`, zipped. With an s3:// URL it also uploads the zip there.
#
#   deploy/build-zip.sh [s3://BUCKET/KEY]
#   SESSIONLAKE_LAMBDA_BINARY=path/to/sessionlake-lambda deploy/build-zip.sh   # zip a built binary
#
# Writes target/lambda/sessionlake-lambda.zip. An x86_64 Linux host with glibc 2.34 or older, or
# a newer one whose build still asks no more than 2.34 (checked below), builds a binary the
# runtime can start; for arm64 cross-build instead (`cargo lambda build --release --arm64`) and
# set the function's Architectures to arm64.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${SESSIONLAKE_LAMBDA_BINARY:-}
if [ -z "$binary" ]; then
  cargo build --release --bin sessionlake-lambda
  binary=target/release/sessionlake-lambda
fi

# The newest glibc symbol version the binary needs, against the runtime's glibc.
runtime_glibc=2.34
needed=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)
if [ "$(printf '%s\n%s\n' "$needed" "$runtime_glibc" | sort -V | tail -1)" != "$runtime_glibc" ]; then
  echo "build-zip: $binary needs glibc $needed, provided.al2023 has $runtime_glibc: build on an" \
    "older distribution or with cargo lambda (zig)" >&2
  exit 2
fi

mkdir -p target/lambda
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp "$binary" "$staging/bootstrap"
chmod 0755 "$staging/bootstrap"
rm -f target/lambda/sessionlake-lambda.zip
python3 - "$staging/bootstrap" target/lambda/sessionlake-lambda.zip <<'PY'
import sys, zipfile
source, target = sys.argv[1:]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(source, "rb") as binary:
        archive.writestr(info, binary.read())
PY
echo "build-zip: target/lambda/sessionlake-lambda.zip (bootstrap needs glibc $needed)" >&2

if [ $# -gt 0 ]; then
  aws s3 cp target/lambda/sessionlake-lambda.zip "$1"
fi
