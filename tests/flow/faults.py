"""A fault-injecting proxy in front of the emulator, for the Lambdas' and the worker's AWS calls.

The Lambdas and the worker of the test deployment use it as their AWS_ENDPOINT_URL; everything passes through
to the emulator's router unchanged unless a test has armed a rule:

  - `fail(action, times, ...)`: answer the next `times` calls of an EC2 or RDS action (`DeleteVolume`,
    `StartExportTask`) with an error; with `after_forward=True` the call reaches the emulator first and only its
    answer is replaced (a call that worked but whose answer was lost);
  - `report_volumes_creating()`: DescribeVolumes says `creating` instead of `available` (moto's volumes are
    available at once, so this is how "never becomes available" is shown);
  - `hide_tagged_volumes()`: DescribeVolumes filtered by a tag lists nothing, as EC2's eventually consistent
    listing may just after CreateVolume (moto's is consistent at once);
  - `fail_uploads()`: S3 PUTs (parts, objects; not the claims of `/.claims/`) answer 403 AccessDenied;
  - `stall_uploads()`: those S3 PUTs are held until `release()` (or a deadline), so a test can act while the
    worker is mid-archive with the volume attached;
  - `fail_backup(action, times, status, code, message)`: answer the next `times` AWS Backup `StartCopyJob` calls
    with that error (AWS Backup speaks REST-JSON: the code goes in `x-amzn-ErrorType`);
  - `before(action, hook)`: run `hook()` once, just before the next call of an EC2 or RDS action reaches the
    emulator, so a test can change the world between two steps (DeleteVolume runs between ArchiveJob and Verify).

Every EC2 and RDS action and every AWS Backup DeleteRecoveryPoint is recorded in `calls` (RDS's with their
parameters, so a test can see the master password that SetPassword sends and check it appears nowhere else), and
then passed on: DeleteRecoveryPoint reaches the emulator's recovery points (launcher.py's backup_recovery_points),
so a test sees both the call and its effect.
"""

import http.client
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from emulator import httpbase
from emulator.router import RouterHandler, service_of

STALL_LIMIT_SECONDS = 60  # a stalled request is answered 503 after this, whatever the test does


@dataclass
class Call:
    service: str
    action: str
    params: dict
    faulted: bool = False


@dataclass
class Rules:
    fail: dict = field(default_factory=dict)  # EC2/RDS action -> [remaining, status, code, message, after_forward]
    volumes_creating: bool = False
    tagged_volumes_hidden: bool = False
    uploads_fail: bool = False
    stall: threading.Event | None = None  # set = released
    hooks: dict = field(default_factory=dict)  # EC2/RDS action -> callable, run once
    backup_fail: dict = field(default_factory=dict)  # AWS Backup action -> [remaining, status, code, message]


class FaultProxy(httpbase.Server):
    def __init__(self, upstream_port: int):
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.upstream_port = upstream_port
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.rules = Rules()
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.stalled = threading.Event()  # set once a request is being held
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    # The RouterHandler's proxy() reads these.
    @property
    def moto_port(self):
        return self.upstream_port

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release()
        self.shutdown()
        self.server_close()

    def reset(self):
        with self.lock:
            self.release()
            self.rules = Rules()
            self.calls.clear()
            self.stalled.clear()

    def fail(self, action: str, times: int = 1, status: int = 503, code: str = "ServiceUnavailable",
             message: str = "injected by the test's fault proxy", after_forward: bool = False):
        with self.lock:
            self.rules.fail[action] = [times, status, code, message, after_forward]

    def fail_backup(self, action: str, times: int, status: int, code: str, message: str):
        with self.lock:
            self.rules.backup_fail[action] = [times, status, code, message]

    def before(self, action: str, hook):
        with self.lock:
            self.rules.hooks[action] = hook

    def report_volumes_creating(self):
        self.rules.volumes_creating = True

    def hide_tagged_volumes(self):
        self.rules.tagged_volumes_hidden = True

    def fail_uploads(self):
        self.rules.uploads_fail = True

    def stall_uploads(self):
        self.rules.stall = threading.Event()

    def release(self):
        if self.rules.stall is not None:
            self.rules.stall.set()

    def record(self, call: Call):
        with self.lock:
            self.calls.append(call)

    def actions(self, name: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.action == name]


class FaultHandler(RouterHandler):
    server: FaultProxy

    def log_request(self, code="-", size="-"):
        pass  # the router logs every request already

    def route(self):
        service = service_of(self.headers)
        path = self.path.split("?", 1)[0]
        if service in ("ec2", "rds") and self.command == "POST":
            return self.query(service)
        if service == "backup" and self.command == "PUT" and path == "/copy-jobs":
            with self.server.lock:
                rule = self.server.rules.backup_fail.get("StartCopyJob")
                faulted = bool(rule and rule[0] > 0)
                if faulted:
                    rule[0] -= 1
            self.server.record(Call("backup", "StartCopyJob", {}, faulted))
            if faulted:
                self.read_body()
                _, status, code, message = rule
                return self.send(status, json.dumps({"Message": message}).encode(),
                                 {"Content-Type": "application/json", "x-amzn-ErrorType": code})
        if service == "backup" and self.command == "DELETE" and "/recovery-points/" in path:
            self.server.record(Call("backup", "DeleteRecoveryPoint", recovery_point_of(path)))
        # The worker's uploads; not create-volume's claim, which comes before any volume or job.
        if service == "s3" and self.command == "PUT" and "/.claims/" not in path:
            rules = self.server.rules
            if rules.uploads_fail:
                self.read_body()
                self.server.record(Call("s3", "PutObject", {"path": path}, faulted=True))
                return self.send(403, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                                      b"<Message>Access Denied (injected)</Message></Error>",
                                 {"Content-Type": "application/xml"})
            if rules.stall is not None and not rules.stall.is_set():
                self.server.stalled.set()
                if not rules.stall.wait(STALL_LIMIT_SECONDS):
                    self.read_body()
                    return self.send(503, b"<Error><Code>SlowDown</Code><Message>stalled</Message></Error>")
        return self.proxy(self.server.upstream_port)

    def query(self, service: str):
        """EC2 and RDS speak the query protocol: the action is a form field, errors are XML (in each its own)."""
        body = self.read_body()
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        action = params.get("Action", "")
        with self.server.lock:
            rule = self.server.rules.fail.get(action)
            faulted = bool(rule and rule[0] > 0)
            if faulted:
                rule[0] -= 1
            hook = self.server.rules.hooks.pop(action, None)
        self.server.record(Call(service, action, params, faulted))
        if hook is not None:
            hook()
        if faulted:
            _, status, code, message, after_forward = rule
            if after_forward:
                self.forward(body)
            return self.send(status, query_error(service, code, message).encode(), {"Content-Type": "text/xml"})
        status, headers, answer = self.forward(body)
        if action == "DescribeVolumes" and self.server.rules.volumes_creating:
            answer = answer.replace(b"<status>available</status>", b"<status>creating</status>")
        by_tag = any(k.startswith("Filter.") and v.startswith("tag:") for k, v in params.items())
        if action == "DescribeVolumes" and by_tag and self.server.rules.tagged_volumes_hidden:
            answer = re.sub(rb"<volumeSet>.*</volumeSet>", b"<volumeSet/>", answer, flags=re.S)
        self.send(status, answer, {k: v for k, v in headers if k.lower() not in {"content-length", "transfer-encoding",
                                                                                  "connection"}})

    def forward(self, body: bytes):
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        headers = {k: v for k, v in self.forwarded_headers() if k.lower() != "content-length"}
        upstream.request(self.command, self.path, body, headers)
        response = upstream.getresponse()
        answer = response.read()
        upstream.close()
        return response.status, response.getheaders(), answer



def recovery_point_of(path: str) -> dict:
    """The parameters of DeleteRecoveryPoint, from its path /backup-vaults/{name}/recovery-points/{arn}."""
    vault, arn = path.removeprefix("/backup-vaults/").split("/recovery-points/", 1)
    return {"BackupVaultName": urllib.parse.unquote(vault), "RecoveryPointArn": urllib.parse.unquote(arn)}


def query_error(service: str, code: str, message: str) -> str:
    """An error document as EC2 or RDS writes it."""
    if service == "ec2":
        return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>")
    return (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>fault-proxy</RequestId></ErrorResponse>")


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
