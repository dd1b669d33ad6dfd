#!/usr/bin/env python3
"""Regenerates fuzz/seeds/ from the recorded corpus (../corpus) and a few hand-made inputs.

Run from anywhere: python3 fuzz/make_seeds.py. Needs the `cryptography` package (for the sealed
envelope seeds) and the `zstd` command. The seeds are committed; this script only documents where
they came from and rebuilds them if the corpus or the formats change.
"""

import hashlib
import json
import pathlib
import shutil
import struct
import subprocess

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FUZZ = pathlib.Path(__file__).resolve().parent
CORPUS = FUZZ.parent / "corpus"
SEEDS = FUZZ / "seeds"

# Small sessions of different shells, users and agents.
S3_SESSIONS = [
    "bob-1a3b5c7d9e1f3a5b7",
    "dana@example.com-2q4w6e8r0t2y4u6i8o0p2a4s6d",
    "bob-w4cz8ng2rk6tq9vx3mb7lh5yjs",
    "carol.diaz-07a16060613c408b5",
    "alice-0f2a4b6c8d0e2f4a6",
]
LEGACY_SESSIONS = ["bob-1a3b5c7d9e1f3a5b7"]
STREAM_SESSIONS = [
    "bob-1a3b5c7d9e1f3a5b7",
    "dana@example.com-2q4w6e8r0t2y4u6i8o0p2a4s6d",
    "dana@example.com-9k3l5m7n9p1q3r5s7t9u1v3w5x",
    "alice-0f2a4b6c8d0e2f4a6",
]
UPLOAD_SESSIONS = ["bob-1a3b5c7d9e1f3a5b7", "carol.diaz-07a16060613c408b5"]

KEY = bytes([7]) * 32  # the data key the envelope target uses
HEADER = {
    "version": 1,
    "algorithm": "AES-256-GCM-STREAM",
    "chunk_size": 65536,
    "compression": "zstd",
    "key": {
        "provider": "local",
        "key_id": "local:fuzz",
        "ciphertext": "AAAA",
        "context": {"sessionlake:subject": "fuzz"},
    },
}


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def events(session, name):
    return json.loads((CORPUS / session / name).read_text())["events"]


def transcript():
    out = SEEDS / "transcript"
    for session in S3_SESSIONS:
        shutil.copy(CORPUS / session / "s3.log", out / f"s3-{session}.log")
    for session in LEGACY_SESSIONS:
        shutil.copy(CORPUS / session / "s3-legacy.log", out / f"s3-legacy-{session}.log")
    # Streamed form: JSON Lines of {"timestamp":<ms>,"message":"<agent JSON>"}, as the
    # indexer's cloudwatch_raw() builds it from get-log-events output.
    for session in STREAM_SESSIONS:
        lines = [
            compact({"timestamp": e["timestamp"], "message": e["message"]})
            for e in events(session, "cloudwatch-stream.json")
        ]
        (out / f"stream-{session}.jsonl").write_text("".join(line + "\n" for line in lines))
    # Uploaded form: the event texts re-joined with "\n".
    for session in UPLOAD_SESSIONS:
        text = "\n".join(e["message"] for e in events(session, "cloudwatch-upload.json"))
        (out / f"upload-{session}.txt").write_text(text)


def zstd(data):
    return subprocess.run(
        ["zstd", "-q", "-c", "-3"], input=data, check=True, capture_output=True
    ).stdout


def seal(payload, chunk_size=65536):
    """Seals `payload` (already compressed) in the envelope format of schemas/src/envelope.rs."""
    header = dict(HEADER, chunk_size=chunk_size)
    json_bytes = compact(header).encode()
    head = b"SLE1" + struct.pack("<I", len(json_bytes)) + json_bytes
    aad = hashlib.sha256(head).digest()
    aead = AESGCM(KEY)
    chunks = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    if not chunks or len(chunks[-1]) == chunk_size:
        chunks.append(b"")
    body = b""
    for counter, chunk in enumerate(chunks):
        last = counter == len(chunks) - 1
        nonce = struct.pack(">QI", counter, int(last))
        body += aead.encrypt(nonce, chunk, aad)
    return head + body


def envelope():
    out = SEEDS / "envelope"
    text = (CORPUS / S3_SESSIONS[0] / "s3.log").read_bytes()
    (out / "sealed-empty.sle").write_bytes(seal(zstd(b"")))
    (out / "sealed-transcript.sle").write_bytes(seal(zstd(text)))
    # Several chunks (a small chunk size), so the look-ahead and last-chunk logic runs.
    (out / "sealed-chunks.sle").write_bytes(seal(zstd(text), chunk_size=97))
    # A bare zstd frame: the target also seals its input as a payload and decompresses it.
    (out / "frame.zst").write_bytes(zstd(text[:400]))
    (out / "header-only.sle").write_bytes(seal(b"")[: -16])


def manifest():
    out = SEEDS / "manifest"
    entry = {
        "path": "raw/dt=2026-03-14/alice-0123456789abcdef0.sle",
        "size": 1234,
        "sha256": "ab" * 32,
        "kind": "raw",
        "sessions": ["alice-0123456789abcdef0"],
    }
    parquet = {
        "path": "commands/dt=2026-03-14/part-0001.parquet",
        "size": 98765,
        "sha256": "cd" * 32,
        "kind": "commands",
        "sessions": ["alice-0123456789abcdef0", "bob-1a3b5c7d9e1f3a5b7"],
        "key": HEADER["key"],
    }
    signature = {"algorithm": "ed25519", "key_id": "local-fuzz", "value": "AAAA"}
    first = {
        "body": {
            "version": 1,
            "sequence": 0,
            "previous_sha256": None,
            "committed_at": "2026-03-14T09:30:00+00:00",
            "writer_id": "host/42",
            "action": "ingest",
            "reason": None,
            "added": [entry, parquet],
            "removed": [],
        },
        "signature": signature,
    }
    second = {
        "body": {
            "version": 1,
            "sequence": 7,
            "previous_sha256": "ef" * 32,
            "committed_at": "2026-03-15T00:00:00Z",
            "writer_id": "host/43",
            "action": "retention",
            "reason": "retention policy: 90 days",
            "added": [],
            "removed": [dict(entry, kind="quarantine", note="not a transcript")],
        },
        "signature": signature,
    }
    (out / "ingest.json").write_text(json.dumps(first, indent=2) + "\n")
    (out / "retention.json").write_text(compact(second))


def main():
    for target, build in [("transcript", transcript), ("envelope", envelope), ("manifest", manifest)]:
        folder = SEEDS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        build()
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"seeds: {sum(1 for p in SEEDS.rglob('*') if p.is_file())} files, {total} bytes")


if __name__ == "__main__":
    main()
