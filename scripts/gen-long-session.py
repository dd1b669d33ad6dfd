#!/usr/bin/env python3
# Usage: scripts/gen-long-session.py OUT.log MIB (RELIABILITY.md, Memory).
# A single-session transcript of about N MiB: ~1 KiB per command (prompt, command, 8 lines of output).
import sys
out, mib = sys.argv[1], int(sys.argv[2])
target = mib << 20
with open(out, "wb") as f:
    f.write(b"Script started on 2026-03-14 09:26:01+00:00 [COMMAND=\"bash\"]\n")
    written, n = 0, 0
    while written < target:
        block = []
        for _ in range(1000):
            block.append(f"[ec2-user@ip-10-0-0-1 ~]$ grep -n pattern{n} /var/log/app-{n % 97}.log\r\r\n")
            for line in range(8):
                block.append(f"{line}: 2026-03-14T09:{n % 60:02d}:00Z INFO request {n}-{line} served in {n % 1000} ms by worker {line} of pool app-{n % 97}; status=200 bytes={n * 7 % 100000}\r\n")
            n += 1
        data = "".join(block).encode()
        f.write(data)
        written += len(data)
    f.write(b"[ec2-user@ip-10-0-0-1 ~]$ exit\r\r\nexit\r\r\n\nScript done on 2026-03-14 12:00:00+00:00\n")
print(n)
