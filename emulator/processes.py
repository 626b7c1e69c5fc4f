"""Child processes of the emulator: start them in their own process group with a PID file, stop them by PID,
and give Batch jobs and Lambda functions their environment.

Every process the emulator starts (moto, the router, the Lambda host, each Batch job and each Lambda
function) leaves a PID file in `<state dir>/pids/`, so that `emulator/run stop` can kill all of them by PID
even when the process that started them is gone. A PID file holds "<pid> <start time>": the kernel's start
time of the process guards against killing an unrelated process that reused the PID.
"""

import os
import signal
import subprocess
from pathlib import Path

# Credentials for the processes the emulator starts: moto accepts any; real ones must never reach them.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
DEFAULT_ACCOUNT = "123456789012"  # moto's: where a request acts without emulator/identity.py's ACCOUNT_HEADER
UNWANTED_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

# How long a process gets between SIGTERM and SIGKILL. AWS Batch and ECS wait 30 s; we stop only local test
# processes, for which 5 s is plenty (arbitrary).
STOP_GRACE_SECONDS = 5.0


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), or None if no such process is running
    (a zombie has already ended: it only waits for its parent to read its exit status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def spawn(argv, *, env, cwd, log_path: Path, pid_path: Path) -> subprocess.Popen:
    """Start `argv` in a new session (so its whole process group can be killed), output appended to
    `log_path`, and record it in `pid_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_path.write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    return proc


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid`; a group that is already gone is not an error."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM the process group of our child `proc`, SIGKILL it after `grace` seconds, reap it; returns its
    exit status. The group gets SIGKILL in the end in any case, as a container's processes all die with it."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()


def signal_pid_file(pid_path: Path, sig: int) -> None:
    """Send `sig` to the process group recorded in `pid_path` (not necessarily our child), if its leader is
    still the process that was recorded."""
    try:
        pid_text, started = pid_path.read_text().split()
    except (OSError, ValueError):
        return
    if start_time(int(pid_text)) == started:
        signal_group(int(pid_text), sig)


def exit_code(returncode: int) -> int:
    """A Popen return code as a container reports it: death by signal N is exit code 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def emulated_environment(endpoint: str, region: str) -> dict:
    """The environment a Batch job or a Lambda function starts from: the emulator's own, without any real
    AWS profile or session, with the emulator as its endpoint and dummy credentials."""
    env = {name: value for name, value in os.environ.items() if name not in UNWANTED_AWS_VARIABLES}
    env.update(DUMMY_CREDENTIALS, AWS_ENDPOINT_URL=endpoint, AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return env
