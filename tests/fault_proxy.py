"""A fault-injecting HTTP proxy on loopback, between the service under test and moto's server.

Usage: fault_proxy.py UPSTREAM_PORT SEED

Listens on a free 127.0.0.1 port and prints it on the first line of stdout. Each request is told
apart by service: KMS and CloudWatch Logs by their `X-Amz-Target` header (`TrentService.*`,
`Logs_*`), everything else is S3. For each request a generator seeded with SEED decides whether it
is forwarded or gets a fault, with the share of faults set per service; the faults are:

- `500`: HTTP 500 (`InternalError` for S3, `InternalFailure` for JSON protocols)
- `503`: HTTP 503 (`ServiceUnavailable`)
- `throttle`: `SlowDown` (S3, HTTP 503) or `ThrottlingException` (JSON, HTTP 400)
- `reset`: the connection is reset (TCP RST) before any response; half of these are reset
  after the request reached moto, so the request took effect but its answer is lost
- `delay`: the request is forwarded after a pause of up to 1.5 s
- `denied`: KMS only, `AccessDeniedException` (HTTP 400), what KMS answers when the key
  policy or IAM refuses the caller
- `disabled`: KMS only, `DisabledException` (HTTP 400), what KMS answers for a disabled key
  (moto records DisableKey but still decrypts with the key)

Control (answered by the proxy itself, never forwarded):
- `POST /__faults__` with a JSON body `{"s3": 0.2, "logs": 0.2, "kms": 1.0, "kinds": [...]}`
  sets the shares (0 to 1) and, optionally, the kinds drawn from; `"hold": {"path": "x",
  "seconds": 3}` delays every request whose path contains `x` (`"hold": null` stops), to widen
  a window a test wants to kill the client in. `"kms_actions": ["Decrypt"]` limits the KMS
  faults to those actions (the part of `X-Amz-Target` after the dot); `null` or `[]`: all.
  `"deny": {"path": "x"}` answers every S3 request whose path contains `x` with
  `AccessDenied` (HTTP 403), as S3 does for an object the caller may not read (`null` stops).
- `GET /__faults__` returns the counts so far: `{"forwarded": {...}, "injected": {...}}`.

Draws come from one seeded generator in arrival order: with one client connection the faults are
the same on every run; with several, which request gets which fault depends on timing, while the
share stays about the one set. A service whose share is above 0 never has more than
2/share - 1 requests in a row without a fault (the next is one, whatever the draw; at 20% that
makes the share about 22%): a run that makes few calls to a service (17 to CloudWatch Logs)
still has faults there, which the draw alone missed once in a few dozen runs.
"""

import json
import random
import socket
import socketserver
import struct
import sys
import threading
import time

KINDS = ["500", "503", "throttle", "reset", "delay"]
# Kinds only ever drawn when a test asks for them (they are not transient).
EXTRA_KINDS = ["denied", "disabled"]
ANSWERED = ("500", "503", "throttle", "denied", "disabled")


class State:
    def __init__(self, seed):
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.shares = {"s3": 0.0, "logs": 0.0, "kms": 0.0}
        self.kinds = list(KINDS)
        self.forwarded = {"s3": 0, "logs": 0, "kms": 0}
        self.injected = {}
        # Requests of each service forwarded since its last fault.
        self.clean = {"s3": 0, "logs": 0, "kms": 0}
        self.hold = None
        self.deny = None
        self.kms_actions = None

    def draw(self, service, action):
        with self.lock:
            share = self.shares.get(service, 0.0)
            if service == "kms" and self.kms_actions and action not in self.kms_actions:
                share = 0.0
            roll = self.random.random()
            kind = self.random.choice(self.kinds)
            pause = self.random.uniform(0.05, 1.5)
            after = self.random.random() < 0.5
            overdue = share > 0.0 and self.clean.get(service, 0) + 1 >= round(2.0 / share)
            if roll >= share and not overdue:
                self.forwarded[service] += 1
                self.clean[service] = self.clean.get(service, 0) + 1
                return None, pause, after
            self.clean[service] = 0
            key = f"{service}:{kind}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return kind, pause, after


def read_line(stream):
    line = stream.readline(65537)
    if not line:
        raise EOFError
    return line


def read_message_head(stream):
    """Returns the start line and header lines (bytes, CRLF kept) and the headers (lower-case)."""
    start = read_line(stream)
    while start in (b"\r\n", b"\n"):
        start = read_line(stream)
    lines = [start]
    headers = {}
    while True:
        line = read_line(stream)
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines, headers


def read_body(stream, headers, until_close=False):
    """Returns the raw body bytes as sent (chunked framing kept)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = read_line(stream)
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = read_line(stream)
                    parts.append(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(parts)
            parts.append(stream.read(size + 2))
    if "content-length" in headers:
        return stream.read(int(headers["content-length"]))
    if until_close:
        return stream.read()
    return b""


def action_of(headers):
    return headers.get("x-amz-target", "").rpartition(".")[2]


def service_of(headers):
    target = headers.get("x-amz-target", "")
    if target.startswith("TrentService"):
        return "kms"
    if target.startswith("Logs_"):
        return "logs"
    return "s3"


def fault_response(service, kind, action=""):
    if service == "s3":
        status, code = {
            "denied": (403, "AccessDenied"),
            "500": (500, "InternalError"),
            "503": (503, "ServiceUnavailable"),
            "throttle": (503, "SlowDown"),
        }[kind]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            "<Message>injected by the fault proxy</Message><RequestId>fault</RequestId></Error>"
            % code
        ).encode()
        content_type = "application/xml"
    else:
        status, code = {
            "denied": (400, "AccessDeniedException"),
            "disabled": (400, "DisabledException"),
            "500": (500, "InternalFailure" if service == "logs" else "KMSInternalException"),
            # What each service answers when it is overloaded (KMS has no 503 code of its own).
            "503": (503, "ServiceUnavailableException" if service == "logs" else "DependencyTimeoutException"),
            "throttle": (400, "ThrottlingException"),
        }[kind]
        message = {
            "AccessDeniedException": "User: arn:aws:iam::123456789012:user/test is not "
            "authorized to perform: kms:%s (injected by the fault proxy)" % action,
            "DisabledException": "arn:aws:kms:us-east-1:123456789012:key/%s is disabled." % "key",
        }.get(code, "injected by the fault proxy")
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    reason = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nx-amzn-ErrorType: {code}\r\n\r\n"
    ).encode()
    return head + body


def client_gone(connection):
    """Returns whether the client closed its end (a killed process's socket is closed)."""
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        connection.setblocking(True)


def reset(connection):
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        state = self.server.state
        try:
            while True:
                lines, headers = read_message_head(self.rfile)
                body = read_body(self.rfile, headers)
                path = lines[0].split(b" ")[1] if len(lines[0].split(b" ")) > 1 else b"/"
                if path.startswith(b"/__faults__"):
                    self.control(lines[0], body)
                    continue
                service = service_of(headers)
                with state.lock:
                    hold = state.hold
                    deny = state.deny
                if service == "s3" and deny and deny["path"].encode() in path:
                    denied = fault_response(service, "denied")
                    if lines[0].startswith(b"HEAD "):
                        denied = denied.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
                    self.wfile.write(denied)
                    self.wfile.flush()
                    continue
                if hold and hold["path"].encode() in path:
                    time.sleep(float(hold["seconds"]))
                    if client_gone(self.connection):
                        return  # killed while held: the request never reaches the service
                action = action_of(headers)
                kind, pause, after = state.draw(service, action)
                if kind == "reset" and not after:
                    reset(self.connection)
                    return
                if kind == "delay":
                    time.sleep(pause)
                if kind in ANSWERED:
                    self.wfile.write(fault_response(service, kind, action))
                    self.wfile.flush()
                    continue
                response, keep = self.forward(lines, headers, body)
                if kind == "reset":
                    reset(self.connection)
                    return
                self.wfile.write(response)
                self.wfile.flush()
                if not keep:
                    return
        except (EOFError, ConnectionError, OSError, ValueError):
            return

    def forward(self, lines, headers, body):
        """Sends one request to moto on a fresh connection; returns the raw response."""
        upstream = socket.create_connection(("127.0.0.1", self.server.upstream_port))
        try:
            head = [line for line in lines if not line.lower().startswith(b"connection:")]
            head.insert(len(head) - 1, b"Connection: close\r\n")
            upstream.sendall(b"".join(head) + body)
            stream = upstream.makefile("rb")
            response_lines, response_headers = read_message_head(stream)
            status = response_lines[0].split(b" ")[1] if len(response_lines[0].split()) > 1 else b""
            no_body = lines[0].startswith(b"HEAD ") or status in (b"204", b"304")
            framed = "content-length" in response_headers or "chunked" in response_headers.get(
                "transfer-encoding", ""
            ).lower()
            response_body = b"" if no_body else read_body(stream, response_headers, until_close=True)
            if not framed and not no_body:
                # Close-delimited: frame it for the client, which keeps its connection.
                response_lines = [
                    line
                    for line in response_lines
                    if not line.lower().startswith((b"connection:", b"content-length:"))
                ]
                response_lines.insert(
                    len(response_lines) - 1, b"Content-Length: %d\r\n" % len(response_body)
                )
            response_lines = [l for l in response_lines if not l.lower().startswith(b"connection:")]
            return b"".join(response_lines) + response_body, True
        finally:
            upstream.close()

    def control(self, start, body):
        state = self.server.state
        if start.startswith(b"POST"):
            settings = json.loads(body or b"{}")
            with state.lock:
                for service in ("s3", "logs", "kms"):
                    if service in settings:
                        state.shares[service] = float(settings[service])
                if "hold" in settings:
                    state.hold = settings["hold"]
                if "deny" in settings:
                    state.deny = settings["deny"]
                if "kinds" in settings:
                    state.kinds = [
                        kind for kind in settings["kinds"] if kind in KINDS + EXTRA_KINDS
                    ]
                if "kms_actions" in settings:
                    state.kms_actions = settings["kms_actions"] or None
        with state.lock:
            answer = json.dumps(
                {"shares": state.shares, "forwarded": state.forwarded, "injected": state.injected}
            ).encode()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(answer)
            + answer
        )
        self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    upstream_port, seed = int(sys.argv[1]), int(sys.argv[2])
    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(seed)
    server.upstream_port = upstream_port
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
