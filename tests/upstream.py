"""A real HTTP/1.1 upstream on 127.0.0.1 that records exactly what it receives."""

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReceivedRequest:
    """One request as the upstream read it off the socket."""

    method: str
    target: str
    headers: list  # of (name, value), in the order and case received
    body: bytes

    def header(self, name):
        """Return the first value of header ``name`` (case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def header_values(self, name):
        lower = name.lower()
        return [value for key, value in self.headers if key.lower() == lower]

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass
class CannedResponse:
    status: int = 200
    headers: list = field(default_factory=list)
    body: bytes = b""
    delay_seconds: float = 0.0


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.read_body()
        received = ReceivedRequest(self.command, self.path, list(self.headers.items()), body)
        self.server.upstream.received.append(received)
        canned = self.server.upstream.response_for(received)
        if canned.delay_seconds:
            time.sleep(canned.delay_seconds)
        if canned.status == 0:
            # Status 0 closes the connection without a response.
            self.close_connection = True
            return
        payload = canned.body
        header_names = {name.lower() for name, _ in canned.headers}
        if not payload and canned.status == 200 and not canned.headers:
            payload = json.dumps(
                {
                    "method": received.method,
                    "target": received.target,
                    "body_sha256": hashlib.sha256(body).hexdigest(),
                    "body_length": len(body),
                }
            ).encode()
            canned_headers = [("Content-Type", "application/json")]
        else:
            canned_headers = canned.headers
        self.send_response(canned.status)
        for name, value in canned_headers:
            self.send_header(name, value)
        bodiless = self.command == "HEAD" or canned.status in (204, 304)
        if "content-length" not in header_names and canned.status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not bodiless:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class RecordingUpstream:
    """A threaded HTTP server on an ephemeral port of 127.0.0.1.

    By default it returns 200 with a JSON summary of the request, and ``respond``
    sets a canned response for the paths under a prefix.
    """

    def __init__(self, tls_context=None):
        self.received = []
        self.routes = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
        self.server.daemon_threads = True
        self.server.upstream = self
        self.scheme = "http"
        if tls_context is not None:
            # The handshake runs in accept(); a client that rejects the
            # certificate makes accept() fail, which the server ignores.
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.server.server_address
        return f"{self.scheme}://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def respond(self, path_prefix, status=200, headers=None, body=b"", delay_seconds=0.0):
        self.routes.insert(0, (path_prefix, CannedResponse(status, list(headers or []), body, delay_seconds)))

    def response_for(self, received):
        for prefix, canned in self.routes:
            if received.path.startswith(prefix):
                return canned
        return CannedResponse()

    @property
    def last(self):
        return self.received[-1]
