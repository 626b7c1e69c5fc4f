"""Batch through the router: one local process per job, and `batch:submitJob.sync` waiting for it."""

import json

import pytest
from conftest import create_job_queue, create_state_machine, finished, history, unique, wait_for


@pytest.fixture(scope="module")
def queue(aws):
    return create_job_queue(aws)


def archive_flow(queue: dict) -> dict:
    """Submit the job and wait for it; on failure a Catch reaches the cleanup, then the execution fails with
    the original cause. (moto refuses a Fail state's ErrorPath that yields a `States.` name.)"""
    return {"StartAt": "Archive", "States": {
        "Archive": {"Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
                    "Parameters": {**queue, "JobName": "archive", "Parameters.$": "$.parameters"},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}],
                    "End": True},
        "Cleanup": {"Type": "Pass", "Next": "Failed"},
        "Failed": {"Type": "Fail", "Error": "ArchiveFailed", "CausePath": "$.error.Cause"}}}


def start_archive(aws, queue: dict, seconds: str, code: str) -> str:
    arn = create_state_machine(aws, archive_flow(queue))
    started = aws.client("stepfunctions").start_execution(
        stateMachineArn=arn, input=json.dumps({"parameters": {"seconds": seconds, "code": code}}))
    return started["executionArn"]


def submitted_job_id(aws, execution_arn: str) -> str:
    def job_id():
        for event in history(aws, execution_arn):
            if event["type"] == "TaskSubmitted":
                return json.loads(event["taskSubmittedEventDetails"]["output"])["JobId"]
        return None

    return wait_for(job_id, 5, "the job's submission")


def test_job_exiting_0_succeeds_the_execution_after_running(aws, queue):
    execution_arn = start_archive(aws, queue, seconds="1.5", code="0")
    job_id = submitted_job_id(aws, execution_arn)
    job = aws.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "RUNNING" and "exitCode" not in job["container"]

    execution = finished(aws, execution_arn, timeout=8)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["Status"] == "SUCCEEDED" and output["Container"]["ExitCode"] == 0
    assert output["StoppedAt"] - output["StartedAt"] >= 1500
    log = aws.job_log(job_id).read_text()
    assert f"job {job_id}: args 1.5 0; COLOUR=blue; endpoint {aws.endpoint}" in log
    assert "to stderr" in log


def test_job_exiting_3_fails_the_execution_through_the_catch(aws, queue):
    execution_arn = start_archive(aws, queue, seconds="0.5", code="3")
    execution = finished(aws, execution_arn, timeout=8)
    assert (execution["status"], execution["error"]) == ("FAILED", "ArchiveFailed"), execution
    cause = json.loads(execution["cause"])
    assert cause["Status"] == "FAILED" and cause["Container"]["ExitCode"] == 3
    assert cause["StatusReason"] == "Essential container in task exited"
    entered = {event["stateEnteredEventDetails"]["name"]: json.loads(event["stateEnteredEventDetails"]["input"])
               for event in history(aws, execution_arn) if "stateEnteredEventDetails" in event}
    assert list(entered) == ["Archive", "Cleanup", "Failed"]
    assert entered["Cleanup"]["error"]["Error"] == "States.TaskFailed"  # what the Catch saw


def submit(aws, queue: dict, **overrides) -> str:
    return aws.client("batch").submit_job(jobName=unique("job"), jobQueue=queue["JobQueue"],
                                          jobDefinition=queue["JobDefinition"], **overrides)["jobId"]


def status_of(aws, job_id: str) -> dict:
    return aws.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]


def stopped(aws, job_id: str, timeout: float = 8) -> dict:
    return wait_for(lambda: (job := status_of(aws, job_id))["status"] in ("SUCCEEDED", "FAILED") and job,
                    timeout, f"job {job_id} to stop")


def test_terminate_job_kills_the_process(aws, queue):
    job_id = submit(aws, queue, parameters={"seconds": "30", "code": "0"})
    assert status_of(aws, job_id)["status"] == "RUNNING"
    aws.client("batch").terminate_job(jobId=job_id, reason="operator said so")
    job = stopped(aws, job_id)
    assert (job["status"], job["statusReason"]) == ("FAILED", "operator said so")
    assert job["container"]["exitCode"] == 128 + 15  # SIGTERM, as a container reports it


def test_job_timeout_fails_the_job(aws, queue):
    job_id = submit(aws, queue, parameters={"seconds": "30", "code": "0"}, timeout={"attemptDurationSeconds": 1})
    job = stopped(aws, job_id)
    assert (job["status"], job["statusReason"]) == ("FAILED", "Job attempt duration exceeded timeout")


def test_container_overrides_apply(aws, queue):
    job_id = submit(aws, queue, containerOverrides={
        "command": ["sh", "-c", "echo override $COLOUR; exit 4"],
        "environment": [{"name": "COLOUR", "value": "red"}]})
    job = stopped(aws, job_id)
    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 4)
    assert "override red" in aws.job_log(job_id).read_text()


def test_job_whose_program_is_missing_fails_to_start(aws, queue):
    job_id = submit(aws, queue, containerOverrides={"command": ["no-such-program"]})
    job = stopped(aws, job_id)
    assert job["status"] == "FAILED" and job["statusReason"].startswith("CannotStartContainerError")
