"""Start and stop the local emulated AWS: moto (launcher.py), the router (router.py) and the Lambda host
(lambda_host.py), all on 127.0.0.1.

    emulator/run start    prints AWS_ENDPOINT_URL=http://127.0.0.1:PORT once everything answers
    emulator/run stop     stops every process it started, Batch jobs and Lambda functions included
    emulator/run status   prints the endpoint; exit 0 if it answers, 1 if not

From Python, `running()` guarantees the stop, also when the body raises:

    from emulator.control import running
    with running(env={"BA_LAMBDA_DIR": "target/debug"}) as aws:
        sfn = aws.client("stepfunctions")

The state directory (BA_EMULATOR_STATE_DIR, default $BA_HOME/emulator) holds `endpoint`, `pids/` (one file per
process started, see processes.py) and `logs/` (moto.log, router.log, lambda-host.log, jobs/, lambda/).
Settings are read from the environment at start: BA_EMULATOR_PORT (the router's port, default: any free
one), BA_EMULATOR_TIME_SCALE, BA_EMULATOR_PATCHES (launcher.py), BA_BIN_DIR, BA_BATCH_ENTRYPOINT (router.py),
BA_LAMBDA_DIR, BA_LAMBDA_MAP (lambda_host.py); relative paths are taken from the caller's directory.
"""

import contextlib
import http.client
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script by emulator/run
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator import processes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60  # moto imports in ~3 s here; generous for a loaded CI machine
SERVICES = ("moto", "router", "lambda-host")
PATH_SETTINGS = ("BA_BIN_DIR", "BA_LAMBDA_DIR", "BA_LAMBDA_MAP")
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = processes.DEFAULT_ACCOUNT  # clients with the dummy credentials act there


def default_state_dir() -> Path:
    if os.environ.get("BA_EMULATOR_STATE_DIR"):
        return Path(os.environ["BA_EMULATOR_STATE_DIR"])
    return Path(os.environ.get("BA_HOME", "/var/cache/backup-archiver")) / "emulator"


@dataclass
class Emulator:
    endpoint: str
    state_dir: Path

    def client(self, service: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT,
               role: str | None = None):
        """A boto3 client for the emulator (no retries that would hide errors): with the credentials of the
        deployment's `role` (an ARN), its calls then made in the role's account and recorded and checked as that
        role's; else with dummy credentials in `account` (moto's by default), like an operator's, not recorded
        (emulator/identity.py)."""
        import boto3
        from botocore.config import Config

        from emulator import identity

        key, secret = (identity.access_key(role), identity.SECRET) if role else ("test", "test")
        client = boto3.client(service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id=key,
                              aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
        return identity.in_account(client, account) if account != DEFAULT_ACCOUNT and not role else client

    def calls(self, start: int = 0) -> list[dict]:
        """The calls the deployment's identities made, from the `start`-th on (emulator/calls.py)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/_emulator/calls?start={start}", timeout=30) as answer:
            return json.loads(answer.read())["calls"]

    def fail_next_export(self, cause: str) -> None:
        """Make the next RDS export started end FAILED with this FailureCause (launcher.py's export_progress)."""
        from emulator.launcher import EXPORT_FAILURES_PATH

        host, port = self.endpoint.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", EXPORT_FAILURES_PATH, json.dumps({"cause": cause}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"the emulator refused the export failure: HTTP {response.status}")

    def add_recovery_point(self, point: dict, account: str | None = None, region: str | None = None) -> None:
        """Register an AWS Backup recovery point, as the backup job that made it would (launcher.py's
        backup_recovery_points): {"RecoveryPointArn", "BackupVaultName", "ResourceArn", "CreationDate", …}, in
        `account` (default moto's) and `region` (default the ARN's). With "BackupJobId" in `point`, that job's
        "Backup Job State Change" (COMPLETED) goes to the default bus of that account and region."""
        import urllib.request

        from emulator.launcher import RECOVERY_POINTS_PATH

        point = {**point, **({"AccountId": account} if account else {}), **({"Region": region} if region else {})}
        request = urllib.request.Request(self.endpoint + RECOVERY_POINTS_PATH, data=json.dumps(point).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 201:
                raise RuntimeError(f"the emulator refused the recovery point: HTTP {answer.status}")

    def job_log(self, job_id: str) -> Path:
        return self.state_dir / "logs" / "jobs" / f"{job_id}.log"

    def function_log(self, name: str) -> Path:
        return self.state_dir / "logs" / "lambda" / f"{name}.log"

    def configure_rds(self, **settings) -> dict:
        """What the router makes of RDS (see router.py): `hold_creating=True` keeps every DB instance and
        cluster `creating`; `server={"host", "port", "socket_dir", "superuser"}` maps their endpoints to a local
        PostgreSQL and applies master passwords to it; `server=None` unmaps. Returns the settings in force."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/_emulator/rds", data=json.dumps(settings).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_pid_files(state_dir: Path) -> list[Path]:
    """The PID files of processes still running; the others are removed."""
    live = []
    for pid_path in sorted((state_dir / "pids").glob("*.pid")):
        try:
            pid, started = pid_path.read_text().split()
            alive = processes.start_time(int(pid)) == started
        except FileNotFoundError:  # its process ended and removed it since the listing
            continue
        except ValueError:
            alive = False
        if alive:
            live.append(pid_path)
        else:
            pid_path.unlink(missing_ok=True)
    return live


def healthy(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("http://").split(":")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        connection.request("GET", "/_emulator/health")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def start(state_dir: Path | None = None, env: dict | None = None) -> Emulator:
    """Start moto, the router and the Lambda host; return once the router says all are up. On failure,
    everything started is stopped again and RuntimeError says why, with the end of the logs."""
    state_dir = (state_dir or default_state_dir()).resolve()
    if live_pid_files(state_dir):
        raise RuntimeError(f"the emulator in {state_dir} is already running; stop it first")
    for old_log in (state_dir / "logs").rglob("*.log"):
        old_log.unlink()

    settings = {**os.environ, **(env or {})}
    for name in PATH_SETTINGS:  # the services run from the repository root
        if settings.get(name):
            settings[name] = str(Path(settings[name]).resolve())
    router_port = int(settings.get("BA_EMULATOR_PORT") or free_port())
    moto_port, lambda_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{router_port}"
    python = [sys.executable, "-u", "-m"]
    commands = {
        # The interpreter inside moto calls AWS at MOTO_PORT: the router's port brings those calls back here.
        "moto": python + ["emulator.launcher", str(moto_port)],
        "router": python + ["emulator.router", "--port", str(router_port), "--moto-port", str(moto_port),
                            "--lambda-port", str(lambda_port), "--state-dir", str(state_dir)],
        "lambda-host": python + ["emulator.lambda_host", "--port", str(lambda_port), "--moto-port",
                                 str(moto_port), "--endpoint", endpoint, "--state-dir", str(state_dir)],
    }
    started = {}
    for name, argv in commands.items():
        started[name] = processes.spawn(
            argv, env={**settings, "MOTO_PORT": str(router_port)}, cwd=ROOT,
            log_path=state_dir / "logs" / f"{name}.log", pid_path=state_dir / "pids" / f"{name}.pid")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not healthy(endpoint):
        exited = [name for name, proc in started.items() if proc.poll() is not None]
        if exited or time.monotonic() > deadline:
            stop(state_dir)
            why = f"{', '.join(exited)} exited" if exited else f"no answer in {START_TIMEOUT_SECONDS} s"
            raise RuntimeError(f"the emulator did not start: {why}\n{log_tails(state_dir)}")
        time.sleep(0.1)
    (state_dir / "endpoint").write_text(endpoint + "\n")
    return Emulator(endpoint, state_dir)


def stop(state_dir: Path | None = None) -> None:
    """Stop every process recorded in the state directory. Repeat until none is left, since the router or
    the Lambda host may start a job or a function while they are being stopped."""
    state_dir = (state_dir or default_state_dir()).resolve()
    for _ in range(5):
        pid_files = live_pid_files(state_dir)
        if not pid_files:
            break
        for pid_path in pid_files:  # all get SIGTERM at once, so the grace periods overlap
            processes.signal_pid_file(pid_path, processes.signal.SIGTERM)
        deadline = time.monotonic() + processes.STOP_GRACE_SECONDS
        while live_pid_files(state_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid_path in live_pid_files(state_dir):
            processes.signal_pid_file(pid_path, processes.signal.SIGKILL)
    (state_dir / "endpoint").unlink(missing_ok=True)


def log_tails(state_dir: Path, lines: int = 20) -> str:
    tails = []
    for name in SERVICES:
        log = state_dir / "logs" / f"{name}.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log}\n" + "\n".join(tail))
    return "\n".join(tails)


@contextlib.contextmanager
def running(state_dir: Path | None = None, env: dict | None = None):
    """The emulator for the duration of a `with` block, stopped on the way out whatever happens."""
    emulator = start(state_dir, env)
    try:
        yield emulator
    finally:
        stop(emulator.state_dir)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) == 2 else None
    state_dir = default_state_dir()
    if command == "start":
        try:
            emulator = start(state_dir)
        except RuntimeError as error:
            print(f"emulator: {error}", file=sys.stderr)
            return 1
        print(f"AWS_ENDPOINT_URL={emulator.endpoint}")
        print(f"emulator: running; logs in {emulator.state_dir / 'logs'}; stop with `emulator/run stop`",
              file=sys.stderr)
        return 0
    if command == "stop":
        stop(state_dir)
        return 0
    if command == "status":
        endpoint_file = state_dir / "endpoint"
        endpoint = endpoint_file.read_text().strip() if endpoint_file.exists() else None
        if endpoint and healthy(endpoint):
            print(f"AWS_ENDPOINT_URL={endpoint}")
            return 0
        print(f"emulator: not running (state in {state_dir})", file=sys.stderr)
        return 1
    print("usage: emulator/run start|stop|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
