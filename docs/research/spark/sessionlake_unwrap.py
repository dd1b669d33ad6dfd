#!/usr/bin/env python3
"""Helper for HelperKmsClient: `sessionlake_unwrap.py LAKE MASTER_KEY_ID WRAPPED_DEK` prints
base64(data key) on stdout, or the reason on stderr and exits 1. Reuses the lake's pyarrow KMS
client (clients/python/sessionlake_kms.py) unchanged."""
import base64, sys
sys.path.insert(0, "/work/main/clients/python")
from sessionlake_kms import SessionlakeKmsClient  # noqa: E402

def main():
    lake, master, wrapped = sys.argv[1:4]
    try:
        key = SessionlakeKmsClient(lake).unwrap_key(wrapped, master)
    except Exception as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(base64.b64encode(key).decode())

main()
