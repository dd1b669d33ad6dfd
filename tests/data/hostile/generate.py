"""Writes the hostile inputs too big to commit into OUT_DIR, streamed (never held in memory):

- huge-line-0123456789abcdef8.log: a transcript whose body is one line of LINE_MIB MiB, no newline
- cloudwatch/huge-event-0123456789abcdef9.json: a stream with one 32 MiB event of escape sequences
- cloudtrail/bomb.json.gz: a gzip bomb (1 GiB of zeros in about 1 MiB) where a CloudTrail file or
  subscription payload is expected

Usage: generate.py OUT_DIR LINE_MIB
"""

import json
import os
import sys
import zlib

out, line_mib = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(out, "cloudwatch"), exist_ok=True)
os.makedirs(os.path.join(out, "cloudtrail"), exist_ok=True)

with open(os.path.join(out, "huge-line-0123456789abcdef8.log"), "wb") as f:
    f.write(b'Script started on 2026-03-14 09:26:01+00:00 [COMMAND="bash"]\n$ ')
    chunk = b"x" * (1 << 20)
    for _ in range(line_mib):
        f.write(chunk)

with open(os.path.join(out, "cloudwatch", "huge-event-0123456789abcdef9.json"), "w") as f:
    message = "\u001b[1m\u001b]0;" * (2 << 20)
    json.dump({"events": [{"timestamp": 1773482538500, "message": message}]}, f)

compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
with open(os.path.join(out, "cloudtrail", "bomb.json.gz"), "wb") as f:
    zeros = b"\0" * (1 << 24)
    for _ in range(64):
        f.write(compressor.compress(zeros))
    f.write(compressor.flush())
