"""The emulator's only endpoint: sends Lambda Invoke to the local Lambda host, runs Batch jobs as local processes,
and proxies everything else to moto unchanged, except that a call signed by one of the deployment's identities
(emulator/identity.py) is made in its role's account and recorded for the IAM check (emulator/calls.py).

    python -m emulator.router --port R --moto-port M --lambda-port L --state-dir DIR

moto runs with MOTO_PORT=R, so the Step Functions interpreter's own calls (lambda:invoke, batch:submitJob.sync
polling DescribeJobs) come back through here too.

Batch jobs. SubmitJob goes to moto (which validates it and keeps the record) and then starts one local
process for the job, chosen as AWS Batch would run the container:
  argv = BA_BATCH_ENTRYPOINT (optional, split like a shell; stands for the image's ENTRYPOINT)
         + the command (containerOverrides.command, else the job definition's), with each `Ref::name`
           replaced by the job's parameters (SubmitJob's, else the job definition's defaults);
  argv[0] without a slash is looked up in BA_BIN_DIR first, then in PATH;
  environment = the emulator's own, plus AWS_ENDPOINT_URL (this router), the credentials of the job role (else
           of the job account's ecsInstanceRole, emulator/identity.py), the region and AWS_BATCH_JOB_ID, plus the
           job's environment (job definition and overrides);
  stdout and stderr go to <state dir>/logs/jobs/<job id>.log;
  timeout = the job's or job definition's attemptDurationSeconds, in real seconds.
DescribeJobs then reports RUNNING until the process exits, then SUCCEEDED (exit 0) or FAILED with
container.exitCode (128 + N for death by signal N) and statusReason, so `batch:submitJob.sync` really waits.
TerminateJob stops the process (SIGTERM, then SIGKILL). Array jobs run one process; dependsOn is ignored.

RDS. moto's DB instances and clusters are `available` at once and have no server behind them. POST
/_emulator/rds (see control.Emulator.configure_rds) sets, for every instance and cluster:
  hold_creating: DescribeDBInstances and DescribeDBClusters report `creating` instead of `available`, so a
           test can show a database that never becomes available;
  server: {"host", "port", "socket_dir", "superuser"} of a local PostgreSQL: DescribeDB* report its host and
           port as the endpoint (the dump job connects there), and a ModifyDBInstance / ModifyDBCluster that sets
           MasterUserPassword applies it to the instance's MasterUsername role on that server, as RDS would.
           The password goes to psql on its standard input, never in arguments or logs.
"""

import argparse
import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from emulator import calls, httpbase, identity, processes

LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/[^/?]+/invocations(\?.*)?$")

# Batch's REST paths (botocore's and the Rust SDK's models); no other service uses them.
BATCH_ACTIONS = {"/v1/submitjob": "submit", "/v1/describejobs": "describe", "/v1/terminatejob": "terminate"}

# Headers that belong to one connection, not to the request: never forwarded (RFC 9110, 7.6.1). `Expect`
# is answered here (100 Continue) before the body is read.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "expect",
}

STREAM_CHUNK = 1 << 20  # bodies (S3 parts) are relayed in 1 MiB pieces, never held whole (arbitrary size)

# The statusReason AWS Batch gives a job whose container exited by itself, and the one for a timeout.
EXITED_REASON = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"


# How long psql may take to set a password on the local server (arbitrary; it takes milliseconds).
PSQL_TIMEOUT_SECONDS = 30


def service_of(headers) -> str:
    """The service of a SigV4-signed request: `Credential=KEY/DATE/REGION/SERVICE/aws4_request`."""
    authorization = headers.get("Authorization", "")
    try:
        return authorization.split("Credential=", 1)[1].split("/")[3]
    except IndexError:
        return ""


def now_ms() -> int:
    return int(time.time() * 1000)


class LocalJob:
    """One Batch job running as a local process; its fields are what DescribeJobs reports."""

    def __init__(self, job_id: str, log_path: Path):
        self.job_id = job_id
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = now_ms()
        self.stopped_at: int | None = None
        self.exit_code: int | None = None
        self.reason: str | None = None  # set by TerminateJob or the timeout before the process ends

    def finish(self, exit_code: int | None, reason: str | None = None) -> None:
        self.exit_code = exit_code
        self.reason = self.reason or reason or EXITED_REASON
        self.stopped_at = now_ms()

    @property
    def status(self) -> str:
        if self.stopped_at is None:
            return "RUNNING"
        return "SUCCEEDED" if self.exit_code == 0 and self.reason == EXITED_REASON else "FAILED"

    def describe_onto(self, job: dict) -> None:
        """Overwrite moto's view of the job (SUCCEEDED at once) with the process's."""
        job["status"] = self.status
        job["startedAt"] = self.started_at
        container = job.setdefault("container", {})
        if self.stopped_at is None:
            for field in ("stoppedAt", "statusReason"):
                job.pop(field, None)
            container.pop("exitCode", None)
            return
        job["stoppedAt"] = self.stopped_at
        job["statusReason"] = self.reason
        attempt_container = {"logStreamName": str(self.log_path)}
        if self.exit_code is not None:
            container["exitCode"] = attempt_container["exitCode"] = self.exit_code
        job["attempts"] = [{
            "container": attempt_container, "startedAt": self.started_at, "stoppedAt": self.stopped_at,
            "statusReason": self.reason,
        }]

    def summary(self) -> dict:
        return {"status": self.status, "exitCode": self.exit_code, "statusReason": self.reason,
                "pid": self.proc.pid if self.proc else None, "log": str(self.log_path)}


class Router(httpbase.Server):
    def __init__(self, port: int, moto_port: int, lambda_port: int, state_dir: Path):
        super().__init__(("127.0.0.1", port), RouterHandler)
        self.moto_port = moto_port
        self.lambda_port = lambda_port
        self.state_dir = state_dir
        self.endpoint = f"http://127.0.0.1:{port}"
        self.jobs: dict[str, LocalJob] = {}  # single dict operations are atomic: no lock needed
        self.entrypoint = shlex.split(os.environ.get("BA_BATCH_ENTRYPOINT", ""))
        self.bin_dir = Path(os.environ["BA_BIN_DIR"]) if os.environ.get("BA_BIN_DIR") else None
        self.rds = {"hold_creating": False, "server": None}  # see the module's docstring
        self.recorder = calls.Recorder(moto_port)

    def resolve(self, program: str) -> str:
        if "/" not in program and self.bin_dir is not None:
            candidate = self.bin_dir / program
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        return program  # Popen searches PATH

    def start_job(self, description: dict, job_definition: dict) -> LocalJob:
        job_id = description["jobId"]
        job = LocalJob(job_id, self.state_dir / "logs" / "jobs" / f"{job_id}.log")
        self.jobs[job_id] = job
        container = description.get("container", {})
        parameters = description.get("parameters") or {}
        argv = self.entrypoint + [substitute(arg, parameters) for arg in container.get("command") or []]
        if not argv:
            job.finish(None, "CannotStartContainerError: the job has no command "
                             "(set one in the job definition, or set BA_BATCH_ENTRYPOINT)")
            return job
        argv[0] = self.resolve(argv[0])
        _, _, _, region, account, _ = description["jobArn"].split(":", 5)
        env = processes.emulated_environment(self.endpoint, region)
        # Batch gives the container its job role's credentials (DescribeJobs reports the job definition's, see
        # launcher.py's batch_job_roles), else the instance role's, conventionally ecsInstanceRole. They name the
        # role (emulator/identity.py): the job's calls act in the role's account and are checked as its.
        role = container.get("jobRoleArn") or f"arn:aws:iam::{account}:role/ecsInstanceRole"
        env.update(identity.credentials(role))
        env.update(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT="1",
                   AWS_BATCH_JQ_NAME=description.get("jobQueue", "").rsplit("/", 1)[-1])
        env.update({item["name"]: item["value"] for item in container.get("environment") or []})
        timeout = (description.get("timeout") or job_definition.get("timeout") or {}).get("attemptDurationSeconds")
        pid_path = self.state_dir / "pids" / f"job-{job_id}.pid"
        try:
            job.proc = processes.spawn(argv, env=env, cwd=None, log_path=job.log_path, pid_path=pid_path)
        except OSError as error:
            job.finish(None, f"CannotStartContainerError: {error}")
            return job
        print(f"job {job_id}: started pid {job.proc.pid}: {shlex.join(argv)}", file=sys.stderr)
        threading.Thread(target=self.watch_job, args=(job, timeout, pid_path), daemon=True).start()
        return job

    def watch_job(self, job: LocalJob, timeout: float | None, pid_path: Path) -> None:
        try:
            job.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            job.reason = TIMEOUT_REASON
        # Stop a timed-out job, and whatever any job left behind: a container's processes all end with its
        # main process.
        returncode = processes.stop_process(job.proc)
        pid_path.unlink(missing_ok=True)
        job.finish(processes.exit_code(returncode))
        print(f"job {job.job_id}: {job.status} exit code {job.exit_code} ({job.reason})", file=sys.stderr)

    def terminate_job(self, job_id: str, reason: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.proc is not None and job.stopped_at is None:
            job.reason = reason
            threading.Thread(target=processes.stop_process, args=(job.proc,), daemon=True).start()

    def stop_jobs(self) -> None:
        running = [job.proc for job in list(self.jobs.values()) if job.proc is not None and job.stopped_at is None]
        threads = [threading.Thread(target=processes.stop_process, args=(proc,)) for proc in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def substitute(arg: str, parameters: dict) -> str:
    """AWS Batch's `Ref::name` placeholders; longer names first, so that Ref::volume_id is not read as
    Ref::volume followed by `_id`."""
    for name in sorted(parameters, key=len, reverse=True):
        arg = arg.replace(f"Ref::{name}", str(parameters[name]))
    return arg


class RouterHandler(httpbase.Handler):
    server: Router

    def do_request(self) -> None:
        self.body = None  # one handler serves the requests of a keep-alive connection in turn
        try:
            self.route()
        except ConnectionRefusedError as error:  # moto or the Lambda host is not (yet, or any more) there
            self.send_json(502, {"message": f"emulator: {error}"})

    def route(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/_emulator/health":
            return self.health()
        if path == "/_emulator/jobs":
            return self.send_json(200, {job_id: job.summary() for job_id, job in list(self.server.jobs.items())})
        if path == "/_emulator/calls":  # ?start=N: the calls recorded from the N-th on
            start = int(urllib.parse.parse_qs(self.path.partition("?")[2]).get("start", ["0"])[0])
            return self.send_json(200, {"calls": self.server.recorder.since(start)})
        self.identify()
        if path == "/_emulator/rds":
            if self.command == "POST":
                self.server.rds.update(json.loads(self.read_body() or b"{}"))
            return self.send_json(200, self.server.rds)
        if self.command == "POST" and service_of(self.headers) == "rds":
            return self.rds_call()
        if self.command == "POST" and LAMBDA_INVOKE.match(self.path):
            return self.proxy(self.server.lambda_port)
        action = BATCH_ACTIONS.get(path.lower()) if self.command == "POST" else None
        if action == "submit":
            return self.batch_submit()
        if action == "describe":
            return self.batch_describe()
        if action == "terminate":
            return self.batch_terminate()
        return self.proxy(self.server.moto_port)

    def read_body(self) -> bytes:
        """The request body, read once (the recorder and the handler both read it)."""
        if self.body is None:
            self.body = super().read_body()
        return self.body

    def identify(self) -> None:
        """If one of the deployment's identities signed the call (emulator/identity.py): make it in its role's
        account, which moto and the Lambda host read from identity.ACCOUNT_HEADER (set here whatever the caller
        sent), and record it (S3 bodies are not read: no authorization depends on them but DeleteObjects', a POST)."""
        role = identity.role_of_request(self.headers)
        if role is None:
            return
        del self.headers[identity.ACCOUNT_HEADER]
        self.headers[identity.ACCOUNT_HEADER] = identity.account_of(role)
        body = self.read_body() if service_of(self.headers) != "s3" or self.command == "POST" else b""
        self.server.recorder.record(self.command, self.path, self.headers, body)

    def log_request(self, code="-", size="-") -> None:
        if not self.path.startswith("/_emulator/"):  # `run start` polls health ten times a second
            super().log_request(code, size)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request

    def forwarded_headers(self) -> list[tuple[str, str]]:
        return [(name, value) for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP]

    def proxy(self, port: int) -> None:
        """Relay the request to `port` and its answer back, streaming bodies that have a length."""
        upstream = http.client.HTTPConnection("127.0.0.1", port)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        whole = self.body is not None or self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        for name, value in self.forwarded_headers():
            if not (whole and name.lower() == "content-length"):
                upstream.putheader(name, value)
        if whole:  # read already (by the recorder), or chunked: sent whole with its length
            body = self.read_body()
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
        else:
            upstream.endheaders()
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                piece = self.rfile.read(min(remaining, STREAM_CHUNK))
                if not piece:
                    break
                upstream.send(piece)
                remaining -= len(piece)
        response = upstream.getresponse()
        self.send_response_only(response.status, response.reason)
        self.log_request(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        length = response.getheader("Content-Length")
        if length is None:  # werkzeug may omit it: send the whole body with its length
            body = response.read()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_header("Content-Length", length)
            self.end_headers()
            while piece := response.read(STREAM_CHUNK):
                self.wfile.write(piece)
        upstream.close()

    def moto(self, path: str, body: bytes) -> tuple[int, list, bytes]:
        """POST `body` to moto with the caller's headers (they carry the account and region)."""
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.moto_port)
        headers = dict(kv for kv in self.forwarded_headers() if kv[0].lower() != "content-length")
        upstream.request("POST", path, body, headers)
        response = upstream.getresponse()
        answer = response.read()
        upstream.close()
        return response.status, response.getheaders(), answer

    def relay(self, status: int, headers: list, body: bytes) -> None:
        self.send(status, body, {name: value for name, value in headers
                                 if name.lower() not in HOP_BY_HOP | {"content-length"}})

    def batch_submit(self) -> None:
        status, headers, answer = self.moto(self.path, self.read_body())
        if status == 200:
            job_id = json.loads(answer)["jobId"]
            _, _, described = self.moto("/v1/describejobs", json.dumps({"jobs": [job_id]}).encode())
            description = json.loads(described)["jobs"][0]
            definition = {}
            if not description.get("timeout"):  # the job definition's timeout applies then
                _, _, found = self.moto("/v1/describejobdefinitions",
                                        json.dumps({"jobDefinitions": [description["jobDefinition"]]}).encode())
                definition = (json.loads(found).get("jobDefinitions") or [{}])[0]
            self.server.start_job(description, definition)
        self.relay(status, headers, answer)

    def batch_describe(self) -> None:
        status, headers, answer = self.moto(self.path, self.read_body())
        if status == 200:
            document = json.loads(answer)
            for job in document.get("jobs", []):
                local = self.server.jobs.get(job.get("jobId"))
                if local is not None:
                    local.describe_onto(job)
            answer = json.dumps(document).encode()
        self.relay(status, headers, answer)

    def batch_terminate(self) -> None:
        body = self.read_body()
        status, headers, answer = self.moto(self.path, body)
        if status == 200:
            request = json.loads(body or b"{}")
            self.server.terminate_job(request.get("jobId", ""), request.get("reason", "Terminated"))
        self.relay(status, headers, answer)

    def rds_call(self) -> None:
        """An RDS Query call, relayed to moto and adjusted as the module's docstring says."""
        body = self.read_body()
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        action = params.get("Action", "")
        status, headers, answer = self.moto(self.path, body)
        settings = self.server.rds
        if status == 200 and action in ("DescribeDBInstances", "DescribeDBClusters"):
            answer = describe_as_configured(answer.decode(), action, settings).encode()
        if status == 200 and action in ("ModifyDBInstance", "ModifyDBCluster") and params.get("MasterUserPassword"):
            if settings.get("server"):
                user = re.search(r"<MasterUsername>([^<]*)</MasterUsername>", answer.decode())
                set_password(settings["server"], user.group(1) if user else "", params["MasterUserPassword"])
        self.relay(status, headers, answer)

    def health(self) -> None:
        checks = {"moto": (self.server.moto_port, "/moto-api/config"),
                  "lambda": (self.server.lambda_port, "/_emulator/health")}
        report = {}
        for name, (port, path) in checks.items():
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", path)
                report[name] = connection.getresponse().status < 500
                connection.close()
            except OSError:
                report[name] = False
        self.send_json(200 if all(report.values()) else 503, report)


def describe_as_configured(xml: str, action: str, settings: dict) -> str:
    """DescribeDBInstances / DescribeDBClusters with the status and endpoint the test configured."""
    if settings.get("hold_creating"):
        tag = "DBInstanceStatus" if action == "DescribeDBInstances" else "Status"
        xml = xml.replace(f"<{tag}>available</{tag}>", f"<{tag}>creating</{tag}>")
    server = settings.get("server")
    if server:
        host, port = server["host"], str(server["port"])
        if action == "DescribeDBInstances":  # <Endpoint><Address>…</Address><Port>…</Port>…</Endpoint>
            def endpoint(match):
                inner = re.sub(r"<Address>[^<]*</Address>", f"<Address>{host}</Address>", match.group(0))
                return re.sub(r"<Port>[^<]*</Port>", f"<Port>{port}</Port>", inner)
            xml = re.sub(r"<Endpoint>.*?</Endpoint>", endpoint, xml, flags=re.S)
        else:  # a cluster's <Endpoint>host</Endpoint>, <ReaderEndpoint> and <Port>
            xml = re.sub(r"<Endpoint>[^<]*</Endpoint>", f"<Endpoint>{host}</Endpoint>", xml)
            xml = re.sub(r"<ReaderEndpoint>[^<]*</ReaderEndpoint>", f"<ReaderEndpoint>{host}</ReaderEndpoint>", xml)
            xml = re.sub(r"<Port>[^<]*</Port>", f"<Port>{port}</Port>", xml)
    return xml


def set_password(server: dict, user: str, password: str) -> None:
    """ALTER ROLE on the local PostgreSQL over its Unix socket as its superuser; SQL on standard input."""
    literal = "'" + password.replace("'", "''") + "'"
    identifier = '"' + user.replace('"', '""') + '"'
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server["socket_dir"], "-p", str(server["port"]),
            "-U", server.get("superuser", "postgres"), "-d", "postgres"]
    result = subprocess.run(argv, input=f"ALTER ROLE {identifier} PASSWORD {literal};\n", text=True,
                            capture_output=True, timeout=PSQL_TIMEOUT_SECONDS)
    outcome = "set" if result.returncode == 0 else f"NOT set (psql exit {result.returncode}: {result.stderr.strip()})"
    print(f"rds: master password of role {user} on port {server['port']} {outcome}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--lambda-port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    router = Router(args.port, args.moto_port, args.lambda_port, args.state_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"router on {router.endpoint}: moto on {args.moto_port}, Lambda host on {args.lambda_port}",
          file=sys.stderr)
    try:
        router.serve_forever()
    finally:
        router.stop_jobs()


if __name__ == "__main__":
    main()
