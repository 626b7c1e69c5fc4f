"""Lambda through the router and the Lambda host: Step Functions tasks, Invoke's error contract, processes."""

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

from conftest import ROLE_ARN, run_state_machine, unique

from emulator import identity
from emulator.lambda_host import POOL_SIZE

ECHO_ARN = "arn:aws:lambda:us-east-1:123456789012:function:echo"


def invoke(aws, name: str, event: dict) -> tuple[dict, dict]:
    """Invoke `name` with boto3; returns (the response without its payload, the decoded payload)."""
    response = aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response, json.loads(response.pop("Payload").read())


def test_lambda_invoke_task_returns_the_function_result(aws):
    definition = {"StartAt": "Plan", "States": {"Plan": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "echo", "Payload": {"snapshot.$": "$.snapshot"}},
        "ResultSelector": {"result.$": "$.Payload"}, "End": True}}}
    execution = run_state_machine(aws, definition, {"snapshot": "snap-0123"})
    assert execution["status"] == "SUCCEEDED", execution
    result = json.loads(execution["output"])["result"]
    assert result["function"] == "echo" and result["event"] == {"snapshot": "snap-0123"}
    # What the function's process was given: the emulator's endpoint and dummy credentials, its name.
    assert result["env"]["AWS_ENDPOINT_URL"] == aws.endpoint
    assert result["env"]["AWS_ACCESS_KEY_ID"] == "test" and result["env"]["AWS_REGION"] == "us-east-1"


def test_function_error_is_caught_by_its_error_type(aws):
    definition = {"StartAt": "Plan", "States": {
        "Plan": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:mapped",
                 "Parameters": {"fail": "VolumeNotReady"},
                 "Catch": [{"ErrorEquals": ["Other"], "Next": "Wrong"},
                           {"ErrorEquals": ["VolumeNotReady"], "ResultPath": "$.error", "Next": "Cleanup"}],
                 "End": True},
        "Wrong": {"Type": "Fail", "Error": "WrongCatch"},
        "Cleanup": {"Type": "Pass", "End": True}}}
    execution = run_state_machine(aws, definition)
    assert execution["status"] == "SUCCEEDED", execution
    error = json.loads(execution["output"])["error"]
    assert error["Error"] == "VolumeNotReady"
    assert json.loads(error["Cause"])["errorMessage"].startswith("asked to fail")


def test_uncaught_function_error_fails_the_execution_with_it(aws):
    definition = {"StartAt": "Plan", "States": {"Plan": {
        "Type": "Task", "Resource": ECHO_ARN, "Parameters": {"fail": "InvalidEvent"}, "End": True}}}
    execution = run_state_machine(aws, definition)
    assert (execution["status"], execution["error"]) == ("FAILED", "InvalidEvent")


def test_invoke_answers_function_errors_as_lambda_does(aws):
    response, payload = invoke(aws, "echo", {"fail": "Retryable"})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert payload["errorType"] == "Retryable"


def test_invoke_of_unknown_function_is_resource_not_found(aws):
    client = aws.client("lambda")
    try:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    except client.exceptions.ResourceNotFoundException as error:
        assert "no-such-function" in str(error)
    else:
        raise AssertionError("invoking an unknown function succeeded")


def test_function_created_in_moto_gets_its_environment_timeout_memory_handler_and_role(aws):
    # "registered" exists as an executable in BA_LAMBDA_DIR; its configuration comes from moto.
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("bootstrap", "")
    aws.client("lambda").create_function(
        FunctionName="registered", Runtime="provided.al2023", Role=ROLE_ARN, Handler="bootstrap",
        Code={"ZipFile": code.getvalue()}, Timeout=1, MemorySize=512, Environment={"Variables": {"COLOUR": "green"}})
    _, payload = invoke(aws, "registered", {})
    assert payload["env"]["COLOUR"] == "green"
    assert payload["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512" and payload["env"]["_HANDLER"] == "bootstrap"
    assert identity.role_of(payload["env"]["AWS_ACCESS_KEY_ID"]) == ROLE_ARN, "its calls are signed as its role"

    response, payload = invoke(aws, "registered", {"sleep": 3})
    assert response["FunctionError"] == "Unhandled" and payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 1.00 seconds"), payload
    definition = {"StartAt": "Slow", "States": {"Slow": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:registered",
        "Parameters": {"sleep": 3}, "End": True}}}
    execution = run_state_machine(aws, definition, timeout=30)
    assert execution["status"] == "FAILED" and execution["error"] == "Sandbox.Timedout", execution
    assert "Task timed out after 1.00 seconds" in execution["cause"]
    _, payload = invoke(aws, "registered", {"again": True})  # a fresh process took over
    assert payload["event"] == {"again": True}


def test_process_that_exits_mid_invocation_is_a_runtime_exit_error_and_is_restarted(aws):
    response, payload = invoke(aws, "mapped", {"exit": 7})
    assert response["FunctionError"] == "Unhandled" and payload["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in payload["errorMessage"]
    _, payload = invoke(aws, "mapped", {"n": unique("after-exit")})
    assert payload["function"] == "mapped"
    assert "invocation" in aws.function_log("mapped").read_text()  # the process's output is kept


def test_invocation_queued_behind_a_crash_is_served_by_a_fresh_process(aws):
    # Every process of the pool busy with an invocation that crashes: the next one waits in a queue.
    with ThreadPoolExecutor(POOL_SIZE + 1) as pool:
        crashing = [pool.submit(invoke, aws, "echo", {"sleep": 1, "exit": 3}) for _ in range(POOL_SIZE)]
        time.sleep(0.5)
        queued = pool.submit(invoke, aws, "echo", {"queued": True})
        crashes, (_, served) = [c.result(timeout=20) for c in crashing], queued.result(timeout=20)
    for crash_response, crash in crashes:
        assert crash["errorType"] == "Runtime.ExitError" and crash_response["FunctionError"] == "Unhandled"
    assert served["event"] == {"queued": True}


def test_concurrent_invocations_of_one_function_run_at_once(aws):
    # As in Lambda, where each concurrent invocation gets its own execution environment: two executions that
    # reach one step at the same instant really race.
    invoke(aws, "echo", {})  # one process started already: the pool adds the others
    started = time.monotonic()
    with ThreadPoolExecutor(POOL_SIZE) as pool:
        answers = list(pool.map(lambda _: invoke(aws, "echo", {"sleep": 2}), range(POOL_SIZE)))
    elapsed = time.monotonic() - started
    assert all(payload["event"] == {"sleep": 2} for _, payload in answers), answers
    assert elapsed < 2 * 2, f"{POOL_SIZE} invocations of 2 s took {elapsed:.1f} s: they ran one after another"


def test_init_error_is_reported_and_not_retried_in_a_loop(aws):
    response, payload = invoke(aws, "broken", {})
    assert response["FunctionError"] == "Unhandled"
    assert payload == {"errorType": "ConfigurationMissing", "errorMessage": "SLACK_WEBHOOK_URL is not set"}
    _, payload = invoke(aws, "broken", {})  # each invocation tries a fresh init
    assert payload["errorType"] == "ConfigurationMissing"
    assert aws.function_log("broken").read_text() == ""  # it printed nothing; no restart loop ran it again
