"""Starting and stopping: `emulator/run start|stop` and `running()` leave no process behind."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import create_job_queue, create_role, emulator_env, unique, wait_for

from emulator.control import Emulator, running

RUN = Path(__file__).resolve().parent.parent / "run"


def processes_with(marker: str) -> list[int]:
    """The PIDs of running processes whose environment holds `marker`: everything an emulator started,
    children of children included, inherits it."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile
            pass
    return found


def keep_everything_busy(aws) -> None:
    """Leave a Lambda function and a Batch job (with a grandchild in the background) running."""
    aws.client("lambda").invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"sleep": 60}')
    queue = create_job_queue(aws, command=["sh", "-c", "sleep 60 & sleep 60"])
    batch = aws.client("batch")
    job_id = batch.submit_job(jobName=unique("job"), **{key[0].lower() + key[1:]: value
                                                        for key, value in queue.items()})["jobId"]
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "RUNNING"


def test_run_start_and_stop_leave_no_process_behind(tmp_path):
    marker = f"BA_EMULATOR_TEST_MARKER={uuid.uuid4()}"
    env = {**os.environ, **emulator_env(tmp_path), "BA_EMULATOR_STATE_DIR": str(tmp_path / "state"),
           marker.split("=")[0]: marker.split("=")[1]}
    started = subprocess.run([RUN, "start"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:")
    endpoint = started.stdout.strip().split("=", 1)[1]
    try:
        status = subprocess.run([RUN, "status"], env=env, capture_output=True, text=True, timeout=10)
        assert status.stdout.strip() == started.stdout.strip()
        again = subprocess.run([RUN, "start"], env=env, capture_output=True, text=True, timeout=10)
        assert again.returncode == 1 and "already running" in again.stderr

        aws = Emulator(endpoint, tmp_path / "state")
        create_role(aws)
        keep_everything_busy(aws)
        # 3 services, the function, the job's shell and its two sleeps.
        wait_for(lambda: len(processes_with(marker)) >= 7, 5, "every process to be running")
    finally:
        stopped = subprocess.run([RUN, "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert processes_with(marker) == []
    assert list((tmp_path / "state" / "pids").glob("*")) == []
    status = subprocess.run([RUN, "status"], env=env, capture_output=True, text=True, timeout=10)
    assert status.returncode == 1


def test_running_stops_everything_when_the_body_fails(tmp_path):
    marker = str(uuid.uuid4())
    with pytest.raises(RuntimeError, match="a test failed here"):
        with running(tmp_path / "state", {**emulator_env(tmp_path), "BA_EMULATOR_TEST_MARKER": marker}) as aws:
            create_role(aws)
            keep_everything_busy(aws)
            wait_for(lambda: len(processes_with(marker)) >= 7, 5, "every process to be running")
            raise RuntimeError("a test failed here")
    assert processes_with(marker) == []
