#!/usr/bin/env python3
"""Writes N synthetic S3 transcripts of 150 commands each into DIR/examples/s3/ssm-logs/ (a
folder the embedded default ingests), for measuring queries over many sessions:

    scripts/gen-many-sessions.py DIR 2000 && cd DIR && sessionlake-ingest

Deterministic (seed 7). Session ids are <user>-<i as 17 hex digits>: alice-00000000000000000 is
the first. Each command is a tool name and 12 random words; output is 0-80 'x'.
"""
import os
import random
import sys

USERS = ["alice", "bob", "carol", "dan", "erin", "frank"]
WORDS = ("deploy restart grep tail cat systemctl journalctl curl kubectl docker psql aws rm cp mv "
         "find ls chmod").split()
PROMPT = "\x1b[?2004h[ssm-user@ip-10-0-0-12 ~]$ "


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen-many-sessions.py DIR SESSIONS")
    out_dir = os.path.join(sys.argv[1], "examples", "s3", "ssm-logs")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(7)
    total = 0
    for i in range(int(sys.argv[2])):
        sid = f"{USERS[i % len(USERS)]}-{i:017x}"
        parts = [
            f"Script started on 2026-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:29+00:00 "
            f'[COMMAND="cat /var/lib/amazon/ssm/i-0a1b2c3d4e5f67890/session/orchestration/{sid}/'
            'Standard_Stream/ipcTempFile.log" <not executed on terminal>]\n',
            PROMPT + "\r\x1b[K\r",
        ]
        for _ in range(150):
            tool = rng.choice(WORDS)
            args = " ".join(rng.choice(WORDS) + str(rng.randint(0, 10**9)) for _ in range(12))
            output = "x" * rng.randint(0, 80)
            parts.append(f"{PROMPT}{tool} {args}\r\r\n\x1b[?2004l\r{output}\r\r\n")
        parts.append(PROMPT + "exit\r\r\n\x1b[?2004l\rexit\r\r\n")
        data = "".join(parts).encode()
        with open(os.path.join(out_dir, f"{sid}.log"), "wb") as file:
            file.write(data)
        total += len(data)
    print(f"{total / 1e6:.1f} MB in {sys.argv[2]} sessions")


if __name__ == "__main__":
    main()
