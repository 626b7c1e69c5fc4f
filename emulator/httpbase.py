"""What the router and the Lambda host share: a threaded HTTP/1.1 server on loopback and request-body reading."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a Lambda runtime's long poll must not keep the process alive at exit
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections open: the SDKs and the Lambda runtime clients pool them.
    protocol_version = "HTTP/1.1"

    def read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding (hyper sends either)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, document, headers: dict | None = None) -> None:
        self.send(status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})})
