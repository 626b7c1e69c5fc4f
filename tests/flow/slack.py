"""A Slack incoming webhook on loopback: records every message and answers from a script (e.g. one 429 first)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlackHandler(BaseHTTPRequestHandler):
    server: "FakeSlack"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, retry_after = self.server.next_answer()
        self.server.record(status, json.loads(body))
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        text = b"ok" if status == 200 else b"rate_limited"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


class FakeSlack(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SlackHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/XXXX"
        self.lock = threading.Lock()
        self.script: list[tuple[int, int | None]] = []
        self.requests: list[tuple[int, dict]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def answer_next(self, status: int, retry_after: int | None = None):
        with self.lock:
            self.script.append((status, retry_after))

    def next_answer(self):
        with self.lock:
            return self.script.pop(0) if self.script else (200, None)

    def record(self, status: int, payload: dict):
        with self.lock:
            self.requests.append((status, payload))

    def delivered(self) -> list[dict]:
        """Messages Slack accepted (200)."""
        with self.lock:
            return [payload for status, payload in self.requests if status == 200]

    def about(self, needle: str) -> list[dict]:
        return [m for m in self.delivered() if needle in m["text"] or needle in json.dumps(m)]

    def reset(self):
        with self.lock:
            self.script.clear()
            self.requests.clear()

    def stop(self):
        self.shutdown()
        self.server_close()
