"""A pyarrow KMS client that opens the encrypted columns of a sessionlake lake.

sessionlake writes the encrypted columns (`commands`: command, output, prompt, cwd; `access`:
parameters) with Parquet modular encryption, a plaintext footer, and standard key material
(PKMT1, single wrapping): `masterKeyID` names the lake's key record or KMS key, and
`wrappedDEK` is sessionlake's own wrapped-key record (base64 of its JSON: provider, key id,
ciphertext, encryption context). This client unwraps it the way sessionlake does:

- `kms`: AWS KMS `Decrypt` with the record's encryption context (a key moved to another
  session, role or lake does not open);
- `session`: the key record the key id names (`keys/sessions/<stem>.key.json`, a session's; or
  `keys/files/<file>.key.json`, a compacted or access file's own) is read from the lake and its
  key unwrapped by KMS, then the data key is opened with AES-256-GCM under it (nonce first, the
  context's JSON as additional data). A shredded session has no record, nor has a compacted
  file that held it: its rows do not open, anywhere. `sessionlake rekey` re-wraps the records,
  so this client follows a rekey although the files' footers never change;
- `local` (the local keyring): only sessionlake opens it.

Unwrapped session keys are cached for the client's life (pyarrow caches data keys itself).

    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe
    from sessionlake_kms import decryption_properties

    properties = decryption_properties("s3://my-session-lake/lake")
    table = pq.read_table(path, decryption_properties=properties)

Needs boto3 and cryptography; AWS credentials and region as boto3 finds them
(`AWS_ENDPOINT_URL` for an emulator). The reader needs `s3:GetObject` on the lake's
`keys/sessions/` and `keys/files/`, and `kms:Decrypt` on the key.
"""

import base64
import json
import sys
import threading

import boto3
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_LEN = 12


class SessionlakeKeyError(Exception):
    """A data key that does not open, with the reason."""


def _context_aad(context):
    # sessionlake binds a wrapped key to its context: the JSON of the context, keys sorted,
    # no spaces (serde_json's compact form of a BTreeMap).
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class SessionlakeKmsClient(pe.KmsClient):
    """Unwraps sessionlake's wrapped keys for pyarrow (see the module's documentation)."""

    def __init__(self, lake, s3=None, kms=None):
        super().__init__()
        if not lake.startswith("s3://"):
            raise ValueError(f"lake {lake!r} is not an s3:// URL")
        bucket, _, prefix = lake[len("s3://"):].partition("/")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._s3 = s3 or boto3.client("s3")
        self._kms = kms or boto3.client("kms")
        self._session_keys = {}
        self._lock = threading.Lock()

    def wrap_key(self, key_bytes, master_key_identifier):
        raise SessionlakeKeyError("sessionlake's lake is written by sessionlake only")

    def unwrap_key(self, wrapped_key, master_key_identifier):
        try:
            record = json.loads(base64.b64decode(wrapped_key))
        except (ValueError, TypeError) as error:
            raise SessionlakeKeyError(f"key {master_key_identifier}: not a sessionlake wrapped key ({error})")
        return self._unwrap(record)

    def _unwrap(self, record):
        provider, key_id = record.get("provider"), record.get("key_id")
        context = record.get("context") or {}
        ciphertext = base64.b64decode(record["ciphertext"])
        if provider == "kms":
            try:
                answer = self._kms.decrypt(KeyId=key_id, CiphertextBlob=ciphertext, EncryptionContext=context)
            except Exception as error:  # botocore's ClientError and transport errors alike
                raise SessionlakeKeyError(f"KMS key {key_id} does not unwrap the data key: {error}")
            return answer["Plaintext"]
        if provider == "session":
            session_key = self._session_key(key_id, context.get("sessionlake:subject"))
            nonce, sealed = ciphertext[:NONCE_LEN], ciphertext[NONCE_LEN:]
            try:
                return AESGCM(session_key).decrypt(nonce, sealed, _context_aad(context))
            except Exception:
                raise SessionlakeKeyError(f"the data key does not open under the session key {key_id}")
        raise SessionlakeKeyError(
            f"key {key_id} is wrapped by the {provider!r} provider: only sessionlake opens it")

    def _session_key(self, path, subject):
        with self._lock:
            if (path, subject) in self._session_keys:
                return self._session_keys[(path, subject)]
        key = f"{self._prefix}/{path}" if self._prefix else path
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            if path.startswith("keys/files/"):
                raise SessionlakeKeyError(
                    f"file key record s3://{self._bucket}/{key} does not exist: the file was "
                    "rewritten or removed (a session in it shredded or expired, or compacted "
                    "again), or the lake is not the one that wrote this file")
            raise SessionlakeKeyError(
                f"session key record s3://{self._bucket}/{key} does not exist: the session was "
                "shredded (or the lake is not the one that wrote this file)")
        record = json.loads(body)
        # The checks sessionlake makes (storage/src/session_keys.rs, read_record): a record is
        # bound to its own path, and holds the key of the data key's subject; a copy planted
        # under another name opens nothing.
        bound = record["key"].get("context") or {}
        if bound.get("sessionlake:record", path) != path:
            raise SessionlakeKeyError(
                f"s3://{self._bucket}/{key} holds the key of {bound['sessionlake:record']}, copied here")
        if bound.get("sessionlake:subject") != subject:
            raise SessionlakeKeyError(
                f"s3://{self._bucket}/{key} holds the key of {bound.get('sessionlake:subject')!r}, "
                f"not of {subject!r}")
        if record["key"].get("provider") == "session":
            raise SessionlakeKeyError(f"s3://{self._bucket}/{key} is wrapped by another record")
        session_key = self._unwrap(record["key"])
        with self._lock:
            self._session_keys[(path, subject)] = session_key
        return session_key


def main(argv):
    """`sessionlake_kms.py unwrap LAKE MASTER_KEY_ID WRAPPED_DEK`: prints the data key, base64,
    or the reason on stderr and exits 1. The Java client for Spark
    (clients/java/src/sessionlake/spark/HelperKmsClient.java) runs it, so the unwrap rules
    live here only."""
    if len(argv) != 5 or argv[1] != "unwrap":
        print(f"usage: {argv[0]} unwrap LAKE MASTER_KEY_ID WRAPPED_DEK", file=sys.stderr)
        return 2
    lake, master, wrapped = argv[2:5]
    try:
        key = SessionlakeKmsClient(lake).unwrap_key(wrapped, master)
    except Exception as error:  # the reason is the answer
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(base64.b64encode(key).decode())
    return 0


def decryption_properties(lake, s3=None, kms=None):
    """Returns pyarrow FileDecryptionProperties that open the files of the lake at `lake`."""
    factory = pe.CryptoFactory(lambda _config: SessionlakeKmsClient(lake, s3=s3, kms=kms))
    return factory.file_decryption_properties(pe.KmsConnectionConfig(), pe.DecryptionConfiguration())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
