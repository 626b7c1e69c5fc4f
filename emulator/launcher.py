"""moto's server with its Step Functions interpreter executing state machines, patched for moto 5.2.5's defects.

    MOTO_PORT=<router port> python -m emulator.launcher <moto port>

moto listens on <moto port>; MOTO_PORT is where its Step Functions interpreter sends its own AWS calls, and
it must be the router's port so that Lambda and Batch calls reach the local Lambda host and local jobs.

Each patch below fixes one defect of moto 5.2.5 found by running it: shared/DESIGN.md lists seven, the others
were found while writing the tests, the database flows and the deployment of infra/template.yaml to the emulator
(infra/tests/emulated_deploy.py), and tests/test_moto_defects.py shows each on an unpatched moto.
BA_EMULATOR_PATCHES chooses the patches ("all", the default, "none", or a comma-separated list of names from
PATCHES), which is how that test starts an unpatched moto. BA_EMULATOR_TIME_SCALE (default 1) scales Wait
states and Retry intervals.
"""

import copy
import datetime
import fnmatch
import functools
import importlib
import json
import os
import pkgutil
import sys
import time
import types
import urllib.parse
import uuid

import boto3
import moto

# The patches reach into moto's internals; another version needs them checked again (see the tests).
MOTO_VERSION = "5.2.5"

# What the issue asks of moto: run state machines, and no Docker for Batch or Lambda (the router and the
# Lambda host run those locally instead).
CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "batch": {"use_docker": False},
    "lambda": {"use_docker": False},
}


def client_as(role_arn: str, service: str, region: str, config=None):
    """A boto3 client that calls back through the router (MOTO_PORT) signed as `role_arn`: the router makes its
    calls in the role's account and records them as that role's (emulator/identity.py, emulator/calls.py), as AWS
    would authorize them."""
    from moto.settings import moto_server_port

    from emulator import identity

    return boto3.client(service, region_name=region, endpoint_url=f"http://localhost:{moto_server_port()}",
                        aws_access_key_id=identity.access_key(role_arn), aws_secret_access_key=identity.SECRET,
                        config=config)


def rebind(package: str, old, new) -> None:
    """Replace function `old` by `new` in every module of `package`, including the modules that imported it by
    name (`from x import f`), which a plain `setattr` on its home module would miss."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError:  # a few modules need LocalStack, which moto vendored them from
            pass
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(package):
            for name, value in list(vars(module).items()):
                if value is old:
                    setattr(module, name, new)


def definite_json_paths() -> None:
    """Defect 1: `$.Volumes[0].State` yields `["available"]`, so a Choice on it never matches and polling loops
    never end. A definite path (only names and single indexes) must yield the value itself."""
    from jsonpath_ng import jsonpath as jp
    from moto.stepfunctions.parser.asl.utils import json_path

    def is_definite(node) -> bool:
        if isinstance(node, (jp.Root, jp.This)):
            return True
        if isinstance(node, jp.Child):
            return is_definite(node.left) and is_definite(node.right)
        if isinstance(node, jp.Fields):
            return len(node.fields) == 1 and node.fields[0] != "*"
        return isinstance(node, jp.Index) and len(node.indices) == 1

    original = json_path.extract_json

    def extract_json(path, data):
        expression = json_path.parse(path)
        if is_definite(expression):
            matches = expression.find(data)
            if matches:
                return matches[0].value
        return original(path, data)  # indefinite paths, and the "path not found" error

    rebind("moto.stepfunctions.parser", original, extract_json)


def integration_key_normalisation() -> None:
    """Defect 2: the normalisation of integration parameters and results is stubbed out, so `batch:submitJob`
    fails with KeyError 'JobName' and `aws-sdk:rds` with 'DbInstanceIdentifier'. Restore it (as in LocalStack,
    where this code comes from) with the operation's shapes from botocore's service models."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    session = botocore.session.get_session()

    @functools.cache
    def operation_model(service: str, action: str):
        model = session.get_service_model(service)
        for name in model.operation_names:
            if camel_to_snake_case(name) == action:
                return model.operation_model(name)
        return None  # leave the keys as written; the call itself then names the unknown action

    def find(task, boto_service_name, service_action_name):
        return operation_model(
            task._get_boto_service_name(boto_service_name), task._get_boto_service_action(service_action_name)
        )

    def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        operation = find(self, boto_service_name, service_action_name)
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
        operation = find(self, boto_service_name, service_action_name)
        if operation is not None and operation.output_shape is not None:
            self._from_boto_response(response, operation.output_shape)

    StateTaskService._normalise_parameters = _normalise_parameters
    StateTaskService._normalise_response = _normalise_response


def json_task_results() -> None:
    """Defect 3: a task result holding a datetime (EC2's CreateTime, ...) makes DescribeExecution fail with 500.
    Round-trip every service task's result through JSON (datetimes become ISO-8601 strings, as in the
    execution history) before it becomes the state's output."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    original = StateTaskService._after_eval_execution

    def _after_eval_execution(self, env, *args, **kwargs):
        env.stack[-1] = json.loads(to_json_str(env.stack[-1]))
        original(self, env, *args, **kwargs)

    StateTaskService._after_eval_execution = _after_eval_execution


def json_execution_output() -> None:
    """Found while testing (not in DESIGN's list): DescribeExecution returns an output that is a JSON string
    without encoding it (`available` instead of `"available"`), which no client can parse. AWS always returns
    JSON text: store the output as JSON text when the execution ends."""
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication._reflect_execution_status

    def _reflect_execution_status(self):
        original(self)
        if self.execution.output is not None:
            self.execution.output = to_json_str(self.execution.output)

    BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status


def export_task_status_case() -> None:
    """Defect 4: RDS export tasks report `complete` (and `canceled`); AWS says `COMPLETE` and `CANCELED`."""
    from moto.rds.models import ExportTask

    ExportTask.status = property(
        lambda self: self._status.upper(), lambda self, value: setattr(self, "_status", value)
    )


# What an export reports on its 1st, 2nd and 3rd DescribeExportTasks (and after): AWS's exports take minutes to
# hours in these states; here each lasts one poll, so a flow's polling loop runs and ends in a test.
# <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ExportTask.html>
EXPORT_PROGRESS = ("STARTING", "IN_PROGRESS", "COMPLETE")
# The moto-api path a test POSTs {"cause": "..."} to: the next export started ends FAILED with that cause.
EXPORT_FAILURES_PATH = "/moto-api/backup-archiver/export-failures"


def export_progress() -> None:
    """Addition (not a defect of moto's API, a gap in what it emulates): moto finishes an export the moment it
    starts and writes nothing to S3. Make an export report STARTING, then IN_PROGRESS, then COMPLETE on
    successive DescribeExportTasks calls, and on COMPLETE write into moto's S3 what RDS writes under
    `<S3Prefix>/<ExportTaskIdentifier>/`: export_info_<id>.json, export_tables_info_<id>_from_1_to_N.json and
    one `<database>/<schema.table>/1/part-00000-<uuid>.gz.parquet` per table (the layout of
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ExportSnapshot.FileNames.html). RDS writes them
    as the export's IamRoleArn with the export's KMS key: so do these writes, through the router (MOTO_PORT), so
    that they are recorded and checked as that role's (emulator/calls.py). POST
    {"cause": "..."} to EXPORT_FAILURES_PATH and the next export started ends FAILED with that FailureCause."""
    from moto.moto_api._internal import urls
    from moto.rds.models import ExportTask, RDSBackend

    failures: list[str] = []  # the causes of the next exports to fail, oldest first
    tables = {"appdb": ["public.orders", "public.customers"]}  # what every emulated snapshot holds

    original_init = ExportTask.__init__

    def __init__(self, backend, snapshot, kwargs):
        original_init(self, backend, snapshot, kwargs)
        self.status = "STARTING"
        self.polls = 0
        self.planned_failure = failures.pop(0) if failures else None
        self.failure_cause = None
        self.percent_progress = 0
        self.total_extracted_data_in_gb = 0
        self.task_start_time = self.created_at
        self.snapshot_time = getattr(snapshot, "created", None) or self.created_at

    def write_files(task) -> None:
        s3 = client_as(task.iam_role_arn, "s3", task.backend.region_name)

        def put_object(bucket: str, key: str, body: bytes) -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms",
                          SSEKMSKeyId=task.kms_key_id)

        root = "/".join(part for part in (task.s3_prefix.strip("/"), task.export_task_identifier) if part)
        identifier = task.export_task_identifier
        count = sum(len(names) for names in tables.values())
        info = {"exportTaskIdentifier": identifier, "sourceArn": task.source_arn, "exportOnly": task.export_only,
                "snapshotTime": str(task.snapshot_time), "status": "COMPLETE", "percentProgress": 100,
                "totalExportedDataInGB": 0}
        put_object(task.s3_bucket, f"{root}/export_info_{identifier}.json", json.dumps(info).encode())
        listing = {"perTableStatus": [{"target": f"{db}.{name}", "status": "COMPLETE", "sizeGB": 0}
                                      for db, names in tables.items() for name in names]}
        put_object(task.s3_bucket, f"{root}/export_tables_info_{identifier}_from_1_to_{count}.json",
                   json.dumps(listing).encode())
        for db, names in tables.items():
            for name in names:
                put_object(task.s3_bucket, f"{root}/{db}/{name}/1/part-00000-{uuid.uuid4()}.gz.parquet",
                           b"PAR1" + bytes(1024) + b"PAR1")

    def advance(task) -> None:
        if task.status not in EXPORT_PROGRESS[:-1]:
            return  # ended (COMPLETE, FAILED) or canceled
        task.polls += 1
        task.status = EXPORT_PROGRESS[min(task.polls - 1, len(EXPORT_PROGRESS) - 1)]
        task.percent_progress = 50 if task.status == "IN_PROGRESS" else task.percent_progress
        if task.status != "COMPLETE":
            return
        task.task_end_time = utcnow()
        if task.planned_failure is not None:
            task.status, task.failure_cause = "FAILED", task.planned_failure
            return
        write_files(task)
        task.percent_progress = 100

    original_describe = RDSBackend.describe_export_tasks

    def describe_export_tasks(self, export_task_identifier):
        tasks = list(original_describe(self, export_task_identifier))
        for task in tasks:
            advance(task)
        return tasks

    def plan_failure(request, full_url, headers):
        if request.method == "POST":
            body = json.loads(request.environ["wsgi.input"].read(int(headers.get("Content-Length") or 0)) or b"{}")
            failures.append(body.get("cause") or "The export failed (injected by the emulator).")
        return 200, {"Content-Type": "application/json"}, json.dumps({"failures": failures}).encode()

    def utcnow():
        return datetime.datetime.now(datetime.UTC)

    ExportTask.__init__ = __init__
    RDSBackend.describe_export_tasks = describe_export_tasks
    urls.url_paths["{0}" + EXPORT_FAILURES_PATH] = plan_failure


def target_input(target: dict, message: dict) -> str:
    """What EventBridge hands a target for `message`: the event (with an ISO-8601 `time`), or the target's Input,
    InputPath or InputTransformer applied to it."""
    from jsonpath_ng.ext import parse
    from moto.events.utils import EventTemplateParser

    event = dict(message)
    if isinstance(event["time"], (int, float)):  # moto keeps PutEvents' Time as epoch seconds
        utc = datetime.datetime.fromtimestamp(event["time"], datetime.UTC)
        event["time"] = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        template = EventTemplateParser.parse(
            transformer["InputTemplate"], transformer.get("InputPathsMap", {}), event
        )
        return json.dumps(template)
    event.pop("ingestion-time", None)  # moto's own bookkeeping, not part of an event
    return json.dumps(event)


def route_targets(kind, deliver) -> None:
    """Wraps moto's Rule.send_to_targets: a matching event goes to `deliver(target, event)` for each target for which
    `kind(target)` holds, and to the handling before this (moto's, or an earlier patch's) for the others."""
    from moto.events.models import Rule

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if not self.event_pattern.matches_event(original_event):
            return
        for target in filter(kind, self.targets):
            deliver(target, original_event)
        others = [target for target in self.targets if not kind(target)]
        if others:
            rule = copy.copy(self)  # a copy, so concurrent PutEvents calls see the rule unchanged
            rule.targets = others
            original(rule, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


def state_machine_targets() -> None:
    """Defect 5: PutEvents returns 500 when a matching rule targets a state machine. Deliver such targets as
    EventBridge does: start an execution whose input is the event (with an ISO-8601 `time`), or the target's
    Input, InputPath or InputTransformer applied to it; as the target's RoleArn, through the router (MOTO_PORT),
    so that the call is recorded and checked as that role's (emulator/calls.py). Other targets keep moto's
    handling."""
    from moto.stepfunctions.responses import get_backend

    def is_state_machine(target: dict) -> bool:
        return target["Arn"].split(":")[2:3] == ["states"] and ":stateMachine:" in target["Arn"]

    def start(target: dict, event: dict) -> None:
        arn = target["Arn"]
        _, _, _, region, account, *_ = arn.split(":")
        try:
            if target.get("RoleArn"):
                client_as(target["RoleArn"], "stepfunctions", region).start_execution(
                    stateMachineArn=arn, input=target_input(target, event))
            else:
                get_backend(account, region).start_execution(arn, None, target_input(target, event))
        except Exception as error:  # EventBridge delivers asynchronously: PutEvents itself still succeeds
            print(f"EventBridge could not start {arn}: {error!r}", file=sys.stderr)

    route_targets(is_state_machine, start)


# Lambda's retries of an asynchronous invocation that failed (twice, after about 1 and 2 minutes, scaled by
# BA_EMULATOR_TIME_SCALE), when the function's event invoke configuration says nothing else:
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
ASYNC_RETRY_DELAYS_SECONDS = (60, 120)


def function_and_topic_targets() -> None:
    """Found while writing the organisation flow (issue 10): PutEvents fails when a matching rule targets a Lambda
    function or an SNS topic (moto 5.2.5 raises NotImplementedError for both). Deliver them as EventBridge does.
    A function is invoked asynchronously (through the router, as EventBridge, in the function's account), with
    Lambda's retries of a failed invocation (the function's MaximumRetryAttempts, default 2); once they are spent,
    Lambda sends the invocation record (request payload, error, condition RetriesExhausted) to the function's
    on-failure destination, an SQS queue or SNS topic, with the function's role, which must be allowed to: the call
    is recorded and checked as that role's. A topic gets the event (or the target's Input, InputPath or
    InputTransformer applied to it) published by EventBridge. Other targets keep moto's handling."""
    import threading

    from moto.settings import moto_server_port

    from emulator import identity

    scale = float(os.environ.get("BA_EMULATOR_TIME_SCALE", "1"))

    def service_client(service: str, region: str, account: str):
        """A client of `service` as an AWS service itself acts (dummy credentials: not recorded), in `account`."""
        return identity.in_account(boto3.client(
            service, region_name=region, endpoint_url=f"http://localhost:{moto_server_port()}",
            aws_access_key_id="events", aws_secret_access_key="events"), account)

    def on_failure(function: dict, invoke_config: dict, record: dict, region: str) -> None:
        destination = invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if not destination:
            print(f"Lambda dropped a failed event of {function['FunctionArn']}: no on-failure destination",
                  file=sys.stderr)
            return
        service, _, account = destination.split(":")[2:5]
        if service == "sqs":
            sqs = client_as(function["Role"], "sqs", region)
            url = f"http://localhost:{moto_server_port()}/{account}/{destination.rsplit(':', 1)[1]}"
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        elif service == "sns":
            client_as(function["Role"], "sns", region).publish(TopicArn=destination, Message=json.dumps(record))
        else:
            print(f"Lambda cannot deliver to on-failure destination {destination}", file=sys.stderr)

    def invoke(arn: str, payload: str) -> None:
        _, _, _, region, account, _, name, *_ = arn.split(":")
        functions = service_client("lambda", region, account)
        function = functions.get_function_configuration(FunctionName=name)
        try:
            invoke_config = functions.get_function_event_invoke_config(FunctionName=name)
        except functions.exceptions.ResourceNotFoundException:
            invoke_config = {}
        retries = invoke_config.get("MaximumRetryAttempts", len(ASYNC_RETRY_DELAYS_SECONDS))
        for attempt in range(retries + 1):
            answer = functions.invoke(FunctionName=name, Payload=payload.encode())
            if "FunctionError" not in answer:
                return
            error = json.loads(answer["Payload"].read() or b"{}")
            if attempt < retries:
                time.sleep(ASYNC_RETRY_DELAYS_SECONDS[min(attempt, len(ASYNC_RETRY_DELAYS_SECONDS) - 1)] * scale)
        record = {
            "version": "1.0", "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "requestContext": {"requestId": answer["ResponseMetadata"]["RequestId"],
                               "functionArn": function["FunctionArn"], "condition": "RetriesExhausted",
                               "approximateInvokeCount": retries + 1},
            "requestPayload": json.loads(payload),
            "responseContext": {"statusCode": answer["StatusCode"], "executedVersion": "$LATEST",
                                "functionError": answer["FunctionError"]},
            "responsePayload": error,
        }
        on_failure(function, invoke_config, record, region)

    def deliver(target: dict, event: dict) -> None:
        arn = target["Arn"]
        service, region, account = arn.split(":")[2:5]
        try:
            if service == "lambda":
                invoke(arn, target_input(target, event))
            else:
                service_client("sns", region, account).publish(TopicArn=arn, Message=target_input(target, event))
        except Exception as error:  # EventBridge delivers asynchronously: PutEvents itself still succeeds
            print(f"EventBridge could not deliver to {arn}: {error!r}", file=sys.stderr)

    def is_ours(target: dict) -> bool:
        return target["Arn"].split(":")[2:3] in (["lambda"], ["sns"])

    route_targets(is_ours, lambda target, event: threading.Thread(
        target=deliver, args=(target, dict(event)), daemon=True).start())


def forwarded_events() -> None:
    """Found while writing the organisation flow (issue 10): a rule whose target is another account's or Region's
    event bus sends that bus a new event: `account`, `region`, `resources`, `time` and `id` become the receiving
    bus's or are lost. EventBridge forwards the event as it is, so that the receiver's rules see where it came
    from (a Copy Job State Change forwarded by a workload account names that account and the copy's source
    Region). Deliver the event itself to the rules of the target bus."""
    from moto.events.models import events_backends

    def is_bus(target: dict) -> bool:
        parts = target["Arn"].split(":")
        return parts[2:3] == ["events"] and parts[5].startswith("event-bus/")

    def forward(target: dict, event: dict) -> None:
        _, _, _, region, account, resource = target["Arn"].split(":", 5)
        bus = events_backends[account][region].describe_event_bus(resource.removeprefix("event-bus/"))
        for rule in list(bus.rules.values()):
            rule.send_to_targets(copy.deepcopy(event))

    route_targets(is_bus, forward)


def state_machine_identity() -> None:
    """Addition (for emulator/iam_check.py), and a defect found while emulating two accounts: the interpreter signs
    every call of an execution (aws-sdk tasks, batch:, lambda:invoke) with the fixed key "ak", which moto files
    under its default account whatever account the state machine is in, and it ignores the task field
    `Credentials.RoleArn` (AWS's way to call as another role, maybe of another account). Sign each call as the
    task's Credentials.RoleArn, else the state machine's RoleArn (the interpreter's state_credentials hold one or
    the other), as Step Functions does: the router then makes it in that role's account and records it as that
    role's (emulator/identity.py)."""
    from moto.stepfunctions.parser.asl.utils import boto_client as module

    original = module.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials=None):
        client = original(region=region, service=service, state_credentials=state_credentials)
        role_arn = getattr(state_credentials, "role_arn", None)
        return client_as(role_arn, service, region, client.meta.config) if role_arn else client

    rebind("moto.stepfunctions.parser", original, boto_client_for)


def batch_job_roles() -> None:
    """Found while emulating two accounts (not in DESIGN's list): DescribeJobs leaves the job definition's
    jobRoleArn and executionRoleArn out of a job's container, where AWS reports them; the router gives a job of
    another account its job role's credentials, and reads the role there."""
    from moto.batch.models import Job

    original = Job._container_details

    def _container_details(self) -> dict:
        details = original(self)
        for role in ("jobRoleArn", "executionRoleArn"):
            if self.job_definition.container_properties.get(role):
                details[role] = self.job_definition.container_properties[role]
        return details

    Job._container_details = _container_details


def unnamed_executions() -> None:
    """Defect 6: StartExecution without a name names the execution "None", so a second one fails with
    ExecutionAlreadyExists. AWS names it with a UUID."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    StepFunctionsParserBackend.start_execution = start_execution


def aws_sdk_error_names() -> None:
    """Found while testing (not in DESIGN's list): aws-sdk integration errors are named `ec2.ec2Exception`;
    AWS writes the service in PascalCase, `Ec2.Ec2Exception`, so an ASL Catch written for AWS never matched.
    Only the service part is fixed: modelled errors keep botocore's name (`Rds.DBInstanceNotFoundFaultException`
    where AWS says `Rds.DbInstanceNotFoundException`)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    irregular = {"dynamodb": "DynamoDb"}  # the service names that are not just capitalised

    def _normalise_service_error_name(service_name: str) -> str:
        return irregular.get(service_name.lower(), service_name[:1].upper() + service_name[1:])

    StateTaskServiceAwsSdk._normalise_service_error_name = staticmethod(_normalise_service_error_name)


def scaled_time() -> None:
    """Addition 7: scale Wait states and Retry intervals by BA_EMULATOR_TIME_SCALE so that flows with real
    waits (polling a volume every 15 s, backing off for minutes) run in seconds in tests. Only pure delays are
    scaled: timeouts bound real work (a Lambda, a worker) and stay in real seconds."""
    scale = float(os.environ.get("BA_EMULATOR_TIME_SCALE", "1"))
    if scale == 1:
        return
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _eval_body(self, env):
        # moto's own loop counts whole seconds, which would never finish a fractional wait.
        deadline = time.monotonic() + max(self._get_wait_seconds(env=env), 0) * scale
        while env.is_running() and (left := deadline - time.monotonic()) > 0:
            env.program_state_event.wait(left)  # set when the execution is stopped

    WaitFunction._eval_body = _eval_body
    # The retrier's only use of `time` is its sleep between attempts.
    retrier_decl.time = types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * scale))


def dynamodb_exports() -> None:
    """Found while writing the DynamoDB flow (not in DESIGN's list): moto's table exports finish at once, ignore
    ExportTime and ClientToken (a retried call starts a second export), are named `…:table/<table ARN>/import/…`,
    write one data object and no manifests, and cannot fail on demand; PITR's LatestRestorableDateTime stays at
    the moment PITR was enabled, so no later backup is ever covered. As AWS does: the export is
    `…:table/T/export/<id>`, IN_PROGRESS for a few DescribeExport calls (moto's state manager, model
    `dynamodb::export`, default 2 calls) then COMPLETED, and writes `_started`, `data/*.json.gz`,
    `manifest-files.json` and, last, `manifest-summary.json` under `<prefix>/AWSDynamoDB/<id>/`; ExportTime must be
    inside the PITR window (InvalidExportTimeException); a ClientToken returns its first export; the latest
    restorable time is now. moto keeps no item history: the export holds the table's items at ExportTableToPointInTime.
    POST /moto-api/static/dynamodb/export-failures {"failures": [{"FailureCode": …, "FailureMessage": …}]} makes the
    next exports end FAILED, one per entry."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.core.utils import gzip_compress, unix_time
    from moto.dynamodb.exceptions import PointInTimeRecoveryUnavailable, TableNotFoundException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.utilities import dynamo_json_dump
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api import state_manager
    from moto.moto_api._internal import urls as moto_api_urls
    from moto.moto_api._internal.managed_state_model import ManagedState

    model = "dynamodb::export"
    state_manager.register_default_transition(model, {"progression": "manual", "times": 2})
    failures: list[dict] = []

    class InvalidExportTime(JsonRESTError):
        def __init__(self, message: str):
            super().__init__("com.amazonaws.dynamodb.v20120810#InvalidExportTimeException", message)

    def utc(epoch: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(epoch, datetime.UTC)

    def epoch(value) -> float:  # moto parses request timestamps into datetimes and keeps its own as floats
        return value.timestamp() if isinstance(value, datetime.datetime) else float(value)

    class Export(ManagedState):
        def __init__(self, table, body: dict, account_id: str):
            failure = failures.pop(0) if failures else None
            super().__init__(model, [("IN_PROGRESS", "FAILED" if failure else "COMPLETED")])
            self.failure = failure or {}
            self.table, self.account_id, self.body = table, account_id, body
            self.id = f"{int(time.time() * 1000):014d}-{uuid.uuid4().hex[:8]}"
            self.arn = f"{table.table_arn}/export/{self.id}"
            self.prefix = body.get("S3Prefix") or ""
            self.directory = "/".join(p for p in (self.prefix, "AWSDynamoDB", self.id) if p)
            self.start_time = time.time()
            self.export_time = epoch(body.get("ExportTime") or self.start_time)
            self.end_time = None
            # The content at the export's start: moto keeps no history to read the ExportTime from.
            self.lines = [dynamo_json_dump(item.to_json(root_attr_name="Item")) + "\n" for item in table.all_items()]
            self.item_count, self.billed = 0, 0
            self.put("_started", b"")

        def put(self, name: str, content: bytes) -> bool:
            from moto.s3.models import s3_backends

            try:
                backend = s3_backends[self.account_id]["aws"]
                backend.put_object(bucket_name=self.body["S3Bucket"], key_name=f"{self.directory}/{name}", value=content)
                return True
            except Exception as error:  # a missing bucket, as AWS reports it
                self.failure = {"FailureCode": "S3NoSuchBucket", "FailureMessage": str(error)}
                return False

        def finish(self) -> None:
            self.end_time = time.time()
            if self._status == "FAILED":
                return
            data = "".join(self.lines).encode()
            data_name = f"data/{uuid.uuid4().hex}.json.gz"
            data_key = f"{self.directory}/{data_name}"
            self.item_count, self.billed = len(self.lines), len(data)
            manifest_files = json.dumps({"itemCount": self.item_count, "dataFileS3Key": data_key}) + "\n"
            summary = {
                "version": "2020-06-30", "exportArn": self.arn, "startTime": utc(self.start_time).isoformat(),
                "endTime": utc(self.end_time).isoformat(), "tableArn": self.table.table_arn,
                "exportTime": utc(self.export_time).isoformat(), "s3Bucket": self.body["S3Bucket"],
                "s3Prefix": self.prefix, "manifestFilesS3Key": f"{self.directory}/manifest-files.json",
                "billedSizeBytes": self.billed, "itemCount": self.item_count, "outputFormat": "DYNAMODB_JSON",
                "exportType": "FULL_EXPORT",
            }
            written = (self.put(data_name, gzip_compress(data))
                       and self.put("manifest-files.json", manifest_files.encode())
                       and self.put("manifest-summary.json", json.dumps(summary).encode()))
            if not written:
                self._status = "FAILED"

        def response(self) -> dict:
            self.advance()
            status = self.status
            if status != "IN_PROGRESS" and self.end_time is None:
                self.finish()
                status = self._status
            description = {
                "ExportArn": self.arn, "ExportStatus": status, "StartTime": utc(self.start_time),
                "TableArn": self.table.table_arn, "ExportTime": utc(self.export_time),
                "ClientToken": self.body.get("ClientToken"), "S3Bucket": self.body["S3Bucket"],
                "S3BucketOwner": self.account_id, "S3Prefix": self.prefix,
                "ExportFormat": self.body.get("ExportFormat", "DYNAMODB_JSON"), "ExportType": "FULL_EXPORT",
            }
            if status == "COMPLETED":
                description.update(EndTime=utc(self.end_time), ItemCount=self.item_count, BilledSizeBytes=self.billed,
                                   ExportManifest=f"{self.directory.removeprefix(self.prefix).lstrip('/')}/manifest-summary.json")
            if status == "FAILED":
                description.update(EndTime=utc(self.end_time), FailureCode=self.failure.get("FailureCode", "UNKNOWN"),
                                   FailureMessage=self.failure.get("FailureMessage", "failed"))
            return description

    def export_table_to_point_in_time(self) -> ActionResult:
        backend, body = self.dynamodb_backend, self.body
        token = body.get("ClientToken")
        for existing in backend.table_exports.values():
            if token and isinstance(existing, Export) and existing.body.get("ClientToken") == token:
                return ActionResult({"ExportDescription": existing.response()})
        table = next((t for t in backend.tables.values() if t.table_arn == body["TableArn"]), None)
        if table is None:
            raise TableNotFoundException(name=body["TableArn"])
        pitr = backend.describe_continuous_backups(table.name)["PointInTimeRecoveryDescription"]
        if pitr["PointInTimeRecoveryStatus"] != "ENABLED":
            raise PointInTimeRecoveryUnavailable(name=table.name)
        if "ExportTime" in body:
            earliest, latest = epoch(pitr["EarliestRestorableDateTime"]), epoch(pitr["LatestRestorableDateTime"])
            if not earliest <= epoch(body["ExportTime"]) <= latest:
                raise InvalidExportTime(f"ExportTime {body['ExportTime']} is outside the PITR window [{earliest}, {latest}]")
        export = Export(table, body, self.current_account)
        backend.table_exports[export.arn] = export
        return ActionResult({"ExportDescription": export.response()})

    def describe_export(self) -> ActionResult:
        return ActionResult({"ExportDescription": self.dynamodb_backend.describe_export(self.body["ExportArn"]).response()})

    original_continuous_backups = DynamoDBBackend.describe_continuous_backups

    def describe_continuous_backups(self, table_name: str) -> dict:
        backups = original_continuous_backups(self, table_name)
        pitr = backups["PointInTimeRecoveryDescription"]
        if pitr["PointInTimeRecoveryStatus"] == "ENABLED":
            pitr["LatestRestorableDateTime"] = unix_time()
        return backups

    def set_export_failures(self, request, full_url, headers):
        failures.extend(self._get_body(headers, request).get("failures", []))
        return 201, {}, ""

    DynamoHandler.export_table_to_point_in_time = export_table_to_point_in_time
    DynamoHandler.describe_export = describe_export
    DynamoDBBackend.describe_continuous_backups = describe_continuous_backups
    response = moto_api_urls.response_instance
    response.set_dynamodb_export_failures = types.MethodType(set_export_failures, response)
    moto_api_urls.url_paths["{0}/moto-api/static/dynamodb/export-failures"] = response.set_dynamodb_export_failures


def cluster_snapshot_arns() -> None:
    """Defect 8 (found by the dump flow's tests): RestoreDBClusterFromSnapshot looks its SnapshotIdentifier up as an
    identifier only, so the ARN that AWS accepts (and that a shared snapshot needs) is "not found". Look an ARN of
    this account's snapshot up by its identifier, as RestoreDBInstanceFromDBSnapshot already does."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.restore_db_cluster_from_snapshot

    def restore_db_cluster_from_snapshot(self, from_snapshot_id, overrides):
        if from_snapshot_id.startswith("arn:") and ":cluster-snapshot:" in from_snapshot_id:
            from_snapshot_id = from_snapshot_id.split(":cluster-snapshot:", 1)[1]
        return original(self, from_snapshot_id, overrides)

    RDSBackend.restore_db_cluster_from_snapshot = restore_db_cluster_from_snapshot


def bucket_policy_conditions() -> None:
    """Defect 11 (found deploying infra/template.yaml to the emulator): moto evaluates a bucket policy's
    statements without their Condition, so the TLS-only statement every bucket of ours carries (Deny s3:* when
    aws:SecureTransport is false) denies every object request, and `aws cloudformation package` cannot upload.
    Evaluate aws:SecureTransport as AWS does for an HTTPS client, which this endpoint stands for; a statement with
    any other condition key is one moto cannot evaluate, and is left out rather than applied without it."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    request_context = {"aws:securetransport": "true"}

    def holds(operator: str, key: str, expected) -> bool | None:
        actual = request_context.get(key.lower())
        if actual is None:
            return None
        values = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
        if operator in ("Bool", "StringEquals", "StringEqualsIgnoreCase"):
            return actual in values
        if operator in ("StringNotEquals", "StringNotEqualsIgnoreCase"):
            return actual not in values
        return None

    def applies(statement: dict) -> bool:
        for operator, keys in statement.get("Condition", {}).items():
            for key, expected in keys.items():
                if not holds(operator, key, expected):
                    return False
        return True

    def get_permission(self, action: str, resource: str):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode())
        statements = policy.get("Statement", [])
        statements = [s for s in (statements if isinstance(statements, list) else [statements]) if applies(s)]
        for statement in statements:
            statement.pop("Condition", None)
        return IAMPolicy(json.dumps({**policy, "Statement": statements})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def loopback_template_urls() -> None:
    """Defect 12 (found deploying infra/template.yaml to the emulator): CloudFormation reads a TemplateURL of
    `http://127.0.0.1:PORT/BUCKET/KEY` (what `aws cloudformation deploy` uploads to with AWS_ENDPOINT_URL set) as
    bucket "127"; only `localhost` is taken for path-style. Read any loopback address path-style."""
    from moto.cloudformation import utils

    original = utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        for loopback in ("//127.0.0.1:", "//[::1]:"):
            template_url = template_url.replace(loopback, "//localhost:", 1)
        return original(template_url, account_id, partition)

    rebind("moto.cloudformation", original, get_stack_from_s3_url)


def cloudformation_resources() -> None:
    """Gaps found deploying infra/template.yaml to the emulator (moto's CloudFormation, not its APIs):
    - AWS::Batch::ComputeEnvironment without ServiceRole fails (KeyError); AWS then uses Batch's service-linked
      role, AWSServiceRoleForBatch, which this creates on first use as AWS does.
    - AWS::StepFunctions::StateMachine ignores DefinitionS3Location and DefinitionSubstitutions and creates an
      empty definition; read the definition from moto's S3 and substitute each `${Name}` as CloudFormation does.
      It also creates and deletes them in the backend the API does not serve when state machines execute.
    - A CommaDelimitedList parameter left at its Default stays a string, so `!Ref` of it gives characters where
      a list is expected ("Instance type c does not exist"); split it as a passed value is.
    - An AWS::ECR::Repository without RepositoryName gets the generated `<stack>-<LogicalId>-<suffix>`, which
      ECR refuses (upper case); CloudFormation generates a lower-case name.
    - An AWS::KMS::Key keeps its KeyPolicy as the template's object; every later KMS call that checks the
      policy then fails (500, "the JSON object must be str"). Store it as the JSON text the API stores.
    - A stack created through a change set (what `aws cloudformation deploy` does) has no Outputs: they are
      resolved before the change set creates the resources. Resolve them once it has."""
    from moto.batch.models import ComputeEnvironment, batch_backends
    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.parsing import ResourceMap
    from moto.ecr.models import Repository
    from moto.kms.models import Key
    from moto.iam.models import iam_backends
    from moto.s3.models import s3_backends
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend
    from moto.stepfunctions.utils import cfn_to_api_tags

    def service_linked_batch_role(account_id: str) -> str:
        iam = iam_backends[account_id]["global"]
        name, path = "AWSServiceRoleForBatch", "/aws-service-role/batch.amazonaws.com/"
        try:
            return iam.get_role(name).arn
        except Exception:  # moto raises its IAMNotFoundException
            trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                "Principal": {"Service": "batch.amazonaws.com"}}]})
            return iam.create_role(name, trust, path, None, "", [], None).arn

    def create_compute_environment(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        return batch_backends[account_id][region_name].create_compute_environment(
            properties.get("ComputeEnvironmentName", resource_name),
            properties["Type"],
            properties.get("State", "ENABLED"),
            {k[0].lower() + k[1:]: v for k, v in properties["ComputeResources"].items()},
            properties.get("ServiceRole") or service_linked_batch_role(account_id),
        )

    def create_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        definition = properties.get("DefinitionString", "")
        location = properties.get("DefinitionS3Location")
        if location:
            key = s3_backends[account_id]["aws"].get_object(location["Bucket"], location["Key"])
            definition = key.value.decode()
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + name + "}", str(value))
        return get_backend(account_id, region_name).create_state_machine(
            properties.get("StateMachineName", resource_name), definition, properties.get("RoleArn", ""),
            tags=cfn_to_api_tags(properties.get("Tags", [])),
        )

    original_load_parameters = ResourceMap.load_parameters

    def load_parameters(self) -> None:
        original_load_parameters(self)
        for name, slot in self._template.get("Parameters", {}).items():
            listed = slot.get("Type") == "CommaDelimitedList" or slot.get("Type", "").startswith("List<")
            if listed and isinstance(self.resolved_parameters.get(name), str):
                self.resolved_parameters[name] = self.resolved_parameters[name].split(",")
                self._parsed_resources[name] = self.resolved_parameters[name]

    ResourceMap.load_parameters = load_parameters
    create_key = Key.create_from_cloudformation_json.__func__

    def create_key_with_text_policy(cls, resource_name, cloudformation_json, *args, **kwargs):
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("KeyPolicy"), dict):
            cloudformation_json = {**cloudformation_json,
                                   "Properties": {**properties, "KeyPolicy": json.dumps(properties["KeyPolicy"])}}
        return create_key(cls, resource_name, cloudformation_json, *args, **kwargs)

    Key.create_from_cloudformation_json = classmethod(create_key_with_text_policy)
    original_execute_change_set = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name: str, stack_name: str | None = None) -> None:
        original_execute_change_set(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            stack._parse_template()  # the change set's template, which execute_change_set stored unparsed
            stack.output_map = stack._create_output_map()

    CloudFormationBackend.execute_change_set = execute_change_set
    create_repository = Repository.create_from_cloudformation_json.__func__
    Repository.create_from_cloudformation_json = classmethod(
        lambda cls, resource_name, *args, **kwargs: create_repository(cls, resource_name.lower(), *args, **kwargs))
    def delete_state_machine(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        get_backend(account_id, region_name).delete_state_machine(resource_name)

    StateMachine.delete_from_cloudformation_json = classmethod(delete_state_machine)
    ComputeEnvironment.create_from_cloudformation_json = classmethod(create_compute_environment)
    StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)


def yaml_condition_tag() -> None:
    """Defect found deploying infra/workload.yaml as a StackSet (its YAML reaches CloudFormation as written, where
    `aws cloudformation package` rewrites the archive stack's in the long form): moto reads the short form
    `!Condition Name` as `{"Fn::Condition": Name}`, which Fn::And, Fn::Or and Fn::Not do not know, so a condition
    made of others is false and the resources under it are missing ("Fn::GetAtt references undefined resource").
    CloudFormation reads it as `{"Condition": Name}`."""
    from moto.cloudformation import utils

    original = utils.yaml_tag_constructor

    def yaml_tag_constructor(loader, tag, node):
        if tag == "!Condition":
            return {"Condition": node.value}
        return original(loader, tag, node)

    rebind("moto.cloudformation", original, yaml_tag_constructor)


def stack_set_instances() -> None:
    """Defect found deploying infra/workload.yaml as a service-managed StackSet (infra/tests/emulated_deploy.py): a
    SERVICE_MANAGED stack instance is a hidden stack, absent from the target account's DescribeStacks, whose
    AWS::StackName is the stack set's name (a SELF_MANAGED one is `StackSet:NAME`, a name CloudFormation refuses).
    AWS makes a stack of the target account and Region named `StackSet-NAME-UUID`, which the names a template
    builds from AWS::StackName then start with: `${AWS::StackName}-start-copy` passes Lambda's 64 characters there.
    Make each instance that stack, named so (moto's delete, which deletes the resources, still applies)."""
    from moto.cloudformation.models import StackInstance, cloudformation_backends

    def __init__(self, account_id, region_name, stackset_id, stack_name, name, template, parameters,
                 permission_model):
        self.account_id, self.region_name, self.stackset_id = account_id, region_name, stackset_id
        self.stack_name, self.name, self.template = stack_name, name, template
        self.parameters, self.permission_model = parameters or [], permission_model
        values = parameters if isinstance(parameters, dict) else {
            p["ParameterKey"]: p["ParameterValue"] for p in parameters or []}
        self.stack = cloudformation_backends[account_id][region_name].create_stack(
            name=f"StackSet-{name}-{uuid.uuid4()}", template=template, parameters=values)

    original_to_dict = StackInstance.to_dict

    def to_dict(self) -> dict:
        return {**original_to_dict(self), "StackId": self.stack.stack_id}

    StackInstance.__init__, StackInstance.to_dict = __init__, to_dict


def event_account_field() -> None:
    """Found while writing the copy jobs (not in DESIGN's list): an event that a rule delivers to a target without an
    InputTransformer (an SQS queue, a log group) lacks its "account" field, so a consumer cannot tell which account
    it came from. AWS delivers the whole event; moto's default template leaves that one field out."""
    from moto.events.utils import EventTemplateParser

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = (
        '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>", '
        '"time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}')


# The moto-api path a test POSTs a recovery point to (see backup_recovery_points).
RECOVERY_POINTS_PATH = "/moto-api/backup-archiver/recovery-points"
# AWS Backup's recovery points, which moto lacks, keyed as AWS keeps them: (account, region, recovery point ARN).
# backup_recovery_points registers and serves them; backup_copy_jobs adds the copies it makes.
RECOVERY_POINTS: dict[tuple[str, str, str], dict] = {}
DAY_SECONDS = 86400
# AWS Backup keeps a point at least 90 days in cold storage, so DeleteAfterDays must exceed
# MoveToColdStorageAfterDays by 90, and the latter cannot change once the point is cold:
# <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_UpdateRecoveryPointLifecycle.html>
COLD_MINIMUM_DAYS = 90


def iso_time(epoch: float) -> str:
    """A time as AWS Backup's events write it: 2020-07-15T22:06:27.234Z."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def vault_arn(account: str, region: str, name: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{name}"


def put_backup_event(account: str, region: str, detail_type: str, detail: dict, resources: list[str]) -> None:
    """Send an AWS Backup event to the default bus of `account` in `region`, as AWS Backup does, so that the
    EventBridge rules there deliver it."""
    from moto.events.models import events_backends

    events_backends[account][region].put_events([{"Source": "aws.backup", "DetailType": detail_type,
                                                  "Detail": json.dumps(detail), "Resources": resources}])


# AWS Backup's ResourceType of a resource, by the service in its ARN (RDS clusters and EC2 instances aside).
RESOURCE_TYPES = {"ec2": "EBS", "rds": "RDS", "dynamodb": "DynamoDB", "elasticfilesystem": "EFS", "s3": "S3"}


def resource_type_of(resource_arn: str) -> str:
    service = resource_arn.split(":")[2]
    if service == "rds" and ":cluster:" in resource_arn:
        return "Aurora"
    if service == "ec2" and ":instance/" in resource_arn:
        return "EC2"
    return RESOURCE_TYPES.get(service, service)


def recovery_point_description(point: dict) -> dict:
    """DescribeRecoveryPoint's answer for a registered point (timestamps in epoch seconds, as on the wire)."""
    lifecycle, created = point.get("Lifecycle") or {}, point["CreationDate"]
    calculated = {}
    if lifecycle.get("MoveToColdStorageAfterDays") is not None:
        calculated["MoveToColdStorageAt"] = created + lifecycle["MoveToColdStorageAfterDays"] * DAY_SECONDS
    if lifecycle.get("DeleteAfterDays") is not None:
        calculated["DeleteAt"] = created + lifecycle["DeleteAfterDays"] * DAY_SECONDS
    resource_type = point.get("ResourceType") or resource_type_of(point["ResourceArn"])
    answer = {"RecoveryPointArn": point["RecoveryPointArn"], "BackupVaultName": point["BackupVaultName"],
              "BackupVaultArn": vault_arn(point["AccountId"], point["Region"], point["BackupVaultName"]),
              "ResourceArn": point["ResourceArn"], "ResourceType": resource_type,
              "Status": point.get("Status", "COMPLETED"), "StorageClass": point.get("StorageClass", "WARM"),
              "CreationDate": created, "CompletionDate": created, "IsEncrypted": False}
    for optional in ("SourceBackupVaultArn", "IamRoleArn", "BackupSizeInBytes", "CreatedBy"):
        if point.get(optional) is not None:
            answer[optional] = point[optional]
    if lifecycle:
        answer["Lifecycle"] = lifecycle
    if calculated:
        answer["CalculatedLifecycle"] = calculated
    return answer


def serve_backup_actions(actions: dict, paths: list[str]) -> None:
    """Serve AWS Backup's `actions` (operation in snake case -> its BackupResponse method) at `paths` (moto's URL
    patterns, which moto's router then maps to the operations by botocore's model)."""
    from moto.backup import urls as backup_urls
    from moto.backup.responses import BackupResponse

    for name, method in actions.items():
        setattr(BackupResponse, name, method)
    backup_urls.url_paths.update({path: backup_urls.response.dispatch for path in paths})


def backup_recovery_points() -> None:
    """Addition (a gap in what moto emulates): moto's AWS Backup has vaults and plans but no recovery points and no
    restore jobs. A test registers a recovery point by POSTing {"RecoveryPointArn", "BackupVaultName",
    "ResourceArn", "CreationDate" (epoch seconds)} to RECOVERY_POINTS_PATH, as the backup job that made it would,
    optionally with "AccountId" (default moto's 123456789012) and "Region" (default the ARN's), "ResourceType"
    (default from the ResourceArn's service),
    "StorageClass" (WARM, COLD or DELETED; default WARM), "Status" (default COMPLETED), "Lifecycle", "IamRoleArn",
    "BackupSizeInBytes", "CreatedBy"; with "BackupJobId" the job's "Backup Job State Change" (COMPLETED) also goes
    to that account's default bus in that region. Points are kept per account and region, as AWS keeps them:
    - an EBS recovery point is the EC2 snapshot itself (RecoveryPointArn `arn:aws:ec2:REGION::snapshot/snap-…`,
      ResourceArn the volume's ARN); DeleteRecoveryPoint deletes that snapshot in moto's EC2, as AWS Backup does;
    - a DynamoDB recovery point with AWS Backup's advanced features, which only StartRestoreJob restores, adds
      "SourceBackupArn", a moto DynamoDB backup holding the content.
    DescribeRecoveryPoint describes a point (with Lifecycle, CalculatedLifecycle, StorageClass),
    ListRecoveryPointsByBackupVault lists a vault's (ByResourceArn), UpdateRecoveryPointLifecycle
    replaces its Lifecycle (DeleteAfterDays at least 90 days after MoveToColdStorageAfterDays, which cannot change once
    the point is COLD, as AWS requires) and
    DeleteRecoveryPoint removes it; all answer ResourceNotFoundException for a point that is unknown, in another
    vault, account or region, as AWS does. StartRestoreJob
    (IdempotencyToken honoured) starts a job (PENDING) that DescribeRestoreJob reports RUNNING, then COMPLETED
    (moto's state manager, model `backup::restore`), and that creates the table `Metadata.targetTableName` when it
    completes, as AWS Backup does. A job whose Metadata lacks targetTableName, or whose IamRoleArn is missing, FAILS
    with a message, as does every restore of a recovery point registered with "RestoreFailure": "<message>".
    ListRestoreJobs (ByStatus, ByAccountId, ByCreatedAfter, ByCreatedBefore, MaxResults, NextToken) lists them."""
    from moto.backup.exceptions import InvalidParameterValueException
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models import dynamodb_backends
    from moto.ec2.models import ec2_backends
    from moto.moto_api import state_manager
    from moto.moto_api._internal import urls as moto_api_urls
    from moto.moto_api._internal.managed_state_model import ManagedState

    model = "backup::restore"
    state_manager.register_default_transition(model, {"progression": "manual", "times": 1})
    jobs: dict[str, "RestoreJob"] = {}

    class RestoreJob(ManagedState):
        def __init__(self, body: dict, account_id: str, region: str):
            super().__init__(model, [("PENDING", "RUNNING"), ("RUNNING", "COMPLETED")])
            self.body, self.account_id, self.region = body, account_id, region
            self.id = uuid.uuid4().hex.upper()
            self.created = time.time()
            self.point = RECOVERY_POINTS.get((account_id, region, body.get("RecoveryPointArn")))
            self.failure = None
            if self.point is None:
                self.failure = f"recovery point {body.get('RecoveryPointArn')} not found"
            elif not body.get("IamRoleArn"):
                self.failure = "IamRoleArn is required to restore DynamoDB"
            elif not (body.get("Metadata") or {}).get("targetTableName"):
                self.failure = "Metadata.targetTableName is required"
            elif self.point.get("RestoreFailure"):
                self.failure = self.point["RestoreFailure"]
            self.table_arn = None

        def describe(self) -> dict:
            self.advance()
            return self.description()

        def description(self) -> dict:
            """The job as it is, without moving it on (ListRestoreJobs)."""
            status = "FAILED" if self.failure else self.status
            if status == "COMPLETED" and self.table_arn is None:
                backend = dynamodb_backends[self.account_id][self.region]
                table = backend.restore_table_from_backup(self.body["Metadata"]["targetTableName"],
                                                          self.point["SourceBackupArn"])
                table.source_backup_arn = self.point["RecoveryPointArn"]  # what DescribeTable's RestoreSummary names
                self.table_arn = table.table_arn
            answer = {"AccountId": self.account_id, "RestoreJobId": self.id, "Status": status,
                      "RecoveryPointArn": self.body.get("RecoveryPointArn"), "CreationDate": self.created,
                      "IamRoleArn": self.body.get("IamRoleArn"), "ResourceType": "DynamoDB"}
            if self.failure:
                answer["StatusMessage"] = self.failure
            if self.table_arn:
                answer.update(CreatedResourceArn=self.table_arn, CompletionDate=time.time())
            return answer

    def point_in_vault(response) -> dict:
        """The recovery point that /backup-vaults/{name}/recovery-points/{arn} names, in that vault of the caller's
        account and region."""
        path = response.path.split("?", 1)[0]
        vault, arn = path.removeprefix("/backup-vaults/").split("/recovery-points/", 1)
        vault, arn = urllib.parse.unquote(vault), urllib.parse.unquote(arn)
        point = RECOVERY_POINTS.get((response.current_account, response.region, arn))
        if point is None or point["BackupVaultName"] != vault:
            not_found(f"Recovery point {arn} not found in backup vault {vault}")
        return point

    def describe_recovery_point(self):
        return json.dumps(recovery_point_description(point_in_vault(self)))

    def list_recovery_points_by_backup_vault(self):
        vault = urllib.parse.unquote(self.path.split("?", 1)[0].split("/")[2])
        self.backup_backend.describe_backup_vault(vault)  # ResourceNotFoundException, as AWS
        resource = (self.querystring.get("resourceArn") or [None])[0]
        points = [recovery_point_description(point) for (account, region, _), point in list(RECOVERY_POINTS.items())
                  if (account, region) == (self.current_account, self.region) and point["BackupVaultName"] == vault
                  and resource in (None, point["ResourceArn"])]
        return json.dumps({"RecoveryPoints": points})

    def update_recovery_point_lifecycle(self):
        point = point_in_vault(self)
        lifecycle = json.loads(self.body or "{}").get("Lifecycle") or {}
        cold, delete = lifecycle.get("MoveToColdStorageAfterDays"), lifecycle.get("DeleteAfterDays")
        if cold is not None and delete is not None and delete < cold + COLD_MINIMUM_DAYS:
            raise InvalidParameterValueException(
                f"DeleteAfterDays ({delete}) must be at least {COLD_MINIMUM_DAYS} days greater than "
                f"MoveToColdStorageAfterDays ({cold}) for recovery point {point['RecoveryPointArn']}")
        current_cold = (point.get("Lifecycle") or {}).get("MoveToColdStorageAfterDays")
        if point.get("StorageClass") == "COLD" and cold != current_cold:
            raise InvalidParameterValueException(
                f"MoveToColdStorageAfterDays of recovery point {point['RecoveryPointArn']} cannot change: it is in "
                "cold storage already")
        point["Lifecycle"] = lifecycle
        description = recovery_point_description(point)
        return json.dumps({key: description[key] for key in
                           ("BackupVaultArn", "RecoveryPointArn", "Lifecycle", "CalculatedLifecycle")
                           if key in description})

    def delete_recovery_point(self) -> str:
        point = point_in_vault(self)
        arn = point["RecoveryPointArn"]
        if arn.startswith("arn:aws:ec2:"):  # arn:aws:ec2:REGION::snapshot/snap-…: the recovery point is the snapshot
            ec2_backends[self.current_account][arn.split(":")[3]].delete_snapshot(arn.rsplit("/", 1)[1])
        del RECOVERY_POINTS[(self.current_account, self.region, arn)]
        return ""

    def start_restore_job(self) -> str:
        body = json.loads(self.body or "{}")
        token = body.get("IdempotencyToken")
        job = next((j for j in jobs.values() if token and j.body.get("IdempotencyToken") == token
                    and j.account_id == self.current_account), None)
        if job is None:
            job = RestoreJob(body, self.current_account, self.region)
            jobs[job.id] = job
        return json.dumps({"RestoreJobId": job.id})

    def describe_restore_job(self):
        job = jobs.get(self.path.rstrip("/").rsplit("/", 1)[1])
        if job is None or job.account_id != self.current_account:
            not_found("restore job not found")
        return json.dumps(job.describe())

    def list_restore_jobs(self):
        query = {name: values[0] for name, values in self.querystring.items() if values}
        found = [job.description() for job in list(jobs.values())
                 if (job.account_id, job.region) == (query.get("accountId", self.current_account), self.region)]
        found = [job for job in found if query.get("status") in (None, job["Status"])]
        return listed_jobs(self, found, "RestoreJobs")

    def not_found(message: str):
        raise JsonRESTError("ResourceNotFoundException", message)

    def backup_job_completed(point: dict) -> None:
        """The "Backup Job State Change" (COMPLETED) of the job that made `point`, as AWS Backup sends it."""
        account, region = point["AccountId"], point["Region"]
        description = recovery_point_description(point)
        detail = {
            "backupJobId": point["BackupJobId"], "backupSizeInBytes": str(point.get("BackupSizeInBytes", 0)),
            "backupVaultArn": description["BackupVaultArn"], "backupVaultName": point["BackupVaultName"],
            "bytesTransferred": "0", "creationDate": iso_time(point["CreationDate"]),
            "iamRoleArn": point.get("IamRoleArn",
                                    f"arn:aws:iam::{account}:role/service-role/AWSBackupDefaultServiceRole"),
            "resourceArn": point["ResourceArn"], "resourceType": description["ResourceType"], "state": "COMPLETED",
            "completionDate": iso_time(time.time()), "percentDone": 100, "retryCount": 0,
        }
        if point.get("CreatedBy"):  # a plan's job; an on-demand job's event has none
            detail["createdBy"] = point["CreatedBy"]
        put_backup_event(account, region, "Backup Job State Change", detail, [point["RecoveryPointArn"]])

    def add_recovery_point(self, request, full_url, headers):
        point = self._get_body(headers, request)
        point.setdefault("AccountId", DEFAULT_ACCOUNT_ID)
        point.setdefault("Region", point["RecoveryPointArn"].split(":")[3])
        RECOVERY_POINTS[(point["AccountId"], point["Region"], point["RecoveryPointArn"])] = point
        if point.get("BackupJobId"):
            backup_job_completed(point)
        return 201, {}, ""

    serve_backup_actions({
        "describe_recovery_point": describe_recovery_point,
        "update_recovery_point_lifecycle": update_recovery_point_lifecycle,
        "list_recovery_points_by_backup_vault": list_recovery_points_by_backup_vault,
        "delete_recovery_point": delete_recovery_point,
        "start_restore_job": start_restore_job,
        "describe_restore_job": describe_restore_job,
        "list_restore_jobs": list_restore_jobs,
    }, ["{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/(?P<arn>.+)$",
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$",
        "{0}/restore-jobs/?$", "{0}/restore-jobs/(?P<id>[^/]+)$"])
    response = moto_api_urls.response_instance
    response.add_recovery_point = types.MethodType(add_recovery_point, response)
    moto_api_urls.url_paths["{0}" + RECOVERY_POINTS_PATH] = response.add_recovery_point


def backup_vault_access_policies() -> None:
    """Addition (a gap in what moto emulates): moto's backup vaults have no access policy. Put-, Get- and
    DeleteBackupVaultAccessPolicy keep one per vault (GetBackupVaultAccessPolicy of a vault without one, like AWS:
    ResourceNotFoundException); backup_copy_jobs evaluates them."""
    from moto.backup.exceptions import InvalidParameterValueException, ResourceNotFoundException

    def vault(response):
        name = urllib.parse.unquote(response.path.split("?", 1)[0].split("/")[2])
        return response.backup_backend.describe_backup_vault(name)

    def put_backup_vault_access_policy(self) -> str:
        policy = json.loads(self.body or "{}").get("Policy") or ""
        try:
            json.loads(policy)
        except ValueError:
            raise InvalidParameterValueException(f"the access policy of backup vault {vault(self).backup_vault_name} "
                                                 "is not valid JSON")
        vault(self).access_policy = policy
        return ""

    def get_backup_vault_access_policy(self) -> str:
        found = vault(self)
        if getattr(found, "access_policy", None) is None:
            raise ResourceNotFoundException(f"backup vault {found.backup_vault_name} has no access policy")
        return json.dumps({"BackupVaultName": found.backup_vault_name, "BackupVaultArn": found.backup_vault_arn,
                           "Policy": found.access_policy})

    def delete_backup_vault_access_policy(self) -> str:
        vault(self).access_policy = None
        return ""

    serve_backup_actions({
        "put_backup_vault_access_policy": put_backup_vault_access_policy,
        "get_backup_vault_access_policy": get_backup_vault_access_policy,
        "delete_backup_vault_access_policy": delete_backup_vault_access_policy,
    }, ["{0}/backup-vaults/(?P<name>[^/]+)/access-policy$"])


def backup_vault_resources() -> None:
    """Addition (a gap in what moto emulates): moto's CloudFormation has no AWS::Backup::BackupVault; it logs "No Moto
    CloudFormation support" and creates nothing, so a stack's vault and its access policy are missing. Create the vault
    in moto's AWS Backup from BackupVaultName, EncryptionKeyArn, BackupVaultTags and AccessPolicy (an object or JSON
    text, as backup_vault_access_policies keeps it); Ref is its name, Fn::GetAtt gives BackupVaultName and
    BackupVaultArn; deleting the stack deletes the vault."""
    from moto.backup.models import Vault, backup_backends
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    class BackupVaultResource(CloudFormationModel):
        __module__ = "moto.backup.models"  # moto's model registry files a model under the service its module names

        @staticmethod
        def cloudformation_name_type() -> str:
            return "BackupVaultName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Backup::BackupVault"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr in ("BackupVaultName", "BackupVaultArn")

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            properties = cloudformation_json.get("Properties", {})
            vault = backup_backends[account_id][region_name].create_backup_vault(
                properties.get("BackupVaultName", resource_name), properties.get("BackupVaultTags") or {},
                properties.get("EncryptionKeyArn"), None)
            access_policy = properties.get("AccessPolicy")
            if access_policy:
                vault.access_policy = access_policy if isinstance(access_policy, str) else json.dumps(access_policy)
            return vault

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            backup_backends[account_id][region_name].delete_backup_vault(resource_name)

    # What CloudFormation asks of the resources it made (CloudFormationModel's part, which moto's Vault lacks).
    Vault.is_created = lambda self: True
    Vault.physical_resource_id = property(lambda self: self.backup_vault_name)
    Vault.get_cfn_attribute = lambda self, name: {"BackupVaultName": self.backup_vault_name,
                                                  "BackupVaultArn": self.backup_vault_arn}[name]
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()  # they list CloudFormationModel's subclasses once, maybe before this one existed


# The IAM condition operators a vault access policy may use here; a policy with another one fails the copy job
# rather than being evaluated wrongly. Negated operators match when the key is absent, as in IAM.
CONDITION_OPERATORS = {
    "StringEquals": (lambda value, pattern: value == pattern, False),
    "StringNotEquals": (lambda value, pattern: value == pattern, True),
    "StringLike": (lambda value, pattern: fnmatch.fnmatchcase(value, pattern), False),
    "StringNotLike": (lambda value, pattern: fnmatch.fnmatchcase(value, pattern), True),
    "ArnEquals": (lambda value, pattern: value == pattern, False),
    "ArnNotEquals": (lambda value, pattern: value == pattern, True),
    "ArnLike": (lambda value, pattern: fnmatch.fnmatchcase(value, pattern), False),
    "ArnNotLike": (lambda value, pattern: fnmatch.fnmatchcase(value, pattern), True),
}


class UnsupportedPolicy(Exception):
    """A vault access policy uses something vault_policy_decision does not evaluate."""


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def vault_policy_decision(policy: str | None, action: str, principals: set[str], context: dict[str, str]) -> str | None:
    """"Deny" if a statement of the vault access policy denies `action` to one of `principals` (an account id, its
    root ARN, a role ARN), "Allow" if one allows it and none denies it, else None. `context` holds the request's
    condition keys (aws:PrincipalAccount, aws:PrincipalArn, aws:PrincipalOrgID, backup:CopyTargets)."""
    decisions = set()
    for statement in listed(json.loads(policy)["Statement"]) if policy else []:
        unsupported = {"NotAction", "NotPrincipal", "NotResource"} & set(statement)
        if unsupported:
            raise UnsupportedPolicy(f"{sorted(unsupported)} in a vault access policy is not evaluated by the emulator")
        if not any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in listed(statement.get("Action", []))):
            continue
        principal = statement.get("Principal")
        allowed = ["*"] if principal == "*" else listed((principal or {}).get("AWS", []))
        if not ("*" in allowed or principals & set(allowed)):
            continue
        if all(condition_holds(operator, tests, context) for operator, tests in statement.get("Condition", {}).items()):
            decisions.add(statement["Effect"])
    return "Deny" if "Deny" in decisions else "Allow" if "Allow" in decisions else None


def condition_holds(operator: str, tests: dict, context: dict[str, str]) -> bool:
    if operator not in CONDITION_OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator} in a vault access policy is not evaluated by the "
                                "emulator")
    compare, negated = CONDITION_OPERATORS[operator]
    keys = {key.lower(): value for key, value in context.items()}
    for key, patterns in tests.items():
        if key.lower() not in {"aws:principalaccount", "aws:principalarn", "aws:principalorgid", "backup:copytargets"}:
            raise UnsupportedPolicy(f"condition key {key} in a vault access policy is not evaluated by the emulator")
        value = keys.get(key.lower())
        matched = value is not None and any(compare(value, pattern) for pattern in listed(patterns))
        if matched == negated:
            return False
    return True


# How long a copy job stays in each state before the next (moto's state manager, model `backup::copy`; a test may
# change it through /moto-api/state-manager/set-transition). Arbitrary: AWS takes minutes; tests want under a second.
COPY_STATE_SECONDS = 0.2
# How often the emulator looks whether a copy job moved on, to send its events without waiting for a DescribeCopyJob.
COPY_POLL_SECONDS = 0.05


def check_backup_role(role: str, account: str) -> None:
    """AWS Backup refuses a job whose IamRoleArn is not a role of the caller's account."""
    from moto.backup.exceptions import InvalidParameterValueException
    from moto.iam.models import iam_backends

    role_account, _, role_name = role.removeprefix("arn:aws:iam::").partition(":role/")
    try:
        if role_account != account:
            raise LookupError(role_account)
        iam_backends[account]["global"].get_role(role_name.rsplit("/", 1)[-1])
    except Exception:  # moto's NoSuchEntity, or a role of another account
        raise InvalidParameterValueException(f"IAM role {role} does not exist in account {account} or cannot be "
                                             "assumed by AWS Backup")


# ListBackupJobs, ListCopyJobs and ListRestoreJobs answer at most this many jobs per page unless MaxResults says
# fewer (AWS's documented maximum of MaxResults).
# <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_ListBackupJobs.html>
MAX_LISTED_JOBS = 1000


def query_time(text: str) -> float:
    """A ByCreatedAfter/ByCreatedBefore query value (ISO 8601, as the SDKs send it, or epoch seconds)."""
    try:
        return float(text)
    except ValueError:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def listed_jobs(response, jobs: list[dict], key: str) -> str:
    """One page of `jobs` (descriptions, oldest first) under `key`, as the List*Jobs actions answer: only those
    created in [createdAfter, createdBefore] when given, at most maxResults, with a NextToken for the rest."""
    query = {name: values[0] for name, values in response.querystring.items() if values}
    after, before = query.get("createdAfter"), query.get("createdBefore")
    found = sorted((job for job in jobs
                    if (after is None or job["CreationDate"] >= query_time(after))
                    and (before is None or job["CreationDate"] <= query_time(before))),
                   key=lambda job: job["CreationDate"])
    start = int(query.get("nextToken") or 0)
    size = min(int(query.get("maxResults") or MAX_LISTED_JOBS), MAX_LISTED_JOBS)
    answer = {key: found[start:start + size]}
    if start + size < len(found):
        answer["NextToken"] = str(start + size)
    return json.dumps(answer)


def run_job(job) -> None:
    """Move a backup or copy job on by itself, as AWS does, so that its events come without anyone describing it."""
    while job.refresh() not in ("COMPLETED", "FAILED"):
        time.sleep(COPY_POLL_SECONDS)


def started_by_token(jobs, body: dict, account: str, region: str, what: str):
    """The job that `body`'s IdempotencyToken already started in this account and region, or None; the same token
    with other parameters is refused, as AWS refuses it."""
    from moto.backup.exceptions import InvalidRequestException

    token = body.get("IdempotencyToken")
    first = next((job for job in list(jobs) if token and (job.account, job.region) == (account, region)
                  and job.body.get("IdempotencyToken") == token), None)
    if first is not None and first.body != body:
        raise InvalidRequestException(f"IdempotencyToken {token} was used by {what} {first.id} with other parameters")
    return first


def backup_copy_jobs() -> None:
    """Addition (a gap in what moto emulates): moto has no AWS Backup copy jobs. StartCopyJob copies a registered
    recovery point (backup_recovery_points) into a vault of another account and/or region, as AWS Backup does:
    - at the call: the source vault and the point in it must exist in the caller's account and region
      (ResourceNotFoundException), the role must exist in the caller's account and the destination vault ARN must
      be one (InvalidParameterValueException); an IdempotencyToken used again with the same parameters returns the
      first job, with others InvalidRequestException;
    - the job goes CREATED -> RUNNING -> COMPLETED or FAILED (moto's state manager, model `backup::copy`,
      COPY_STATE_SECONDS per state), on its own. It FAILS, with a StatusMessage naming the vault, when the
      destination vault does not exist, when its access policy does not allow backup:CopyIntoBackupVault to the
      source account (needed across accounts) or denies it, or when the source vault's policy denies
      backup:CopyFromBackupVault (condition keys backup:CopyTargets, aws:PrincipalAccount, aws:PrincipalArn,
      aws:PrincipalOrgID from moto's Organizations);
    - on COMPLETED the copy is a recovery point of the destination vault, in the destination account and region,
      with the job's Lifecycle and SourceBackupVaultArn; an EBS copy is a new snapshot there
      (`arn:aws:ec2:DEST_REGION::snapshot/snap-…`), an RDS or Aurora copy a DB (cluster) snapshot
      `awsbackup:copyjob-ID` of type awsbackup there, others get an `arn:aws:backup:…:recovery-point:ID`;
    - every state change sends a "Copy Job State Change" event (core/tests/fixtures/eventbridge-copy-job-*.json)
      to the default bus of the account and region where the job runs (the source's), as AWS Backup does.
    DescribeCopyJob and ListCopyJobs (ByState, ByAccountId, ByDestinationVaultArn, ByResourceArn,
    BySourceRecoveryPointArn, ByCreatedAfter, ByCreatedBefore, MaxResults and NextToken) answer in the job's account
    and region."""
    import threading

    from moto.backup.exceptions import (
        InvalidParameterValueException, ResourceNotFoundException,
    )
    from moto.backup.models import backup_backends
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import Snapshot
    from moto.ec2.utils import random_snapshot_id
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState
    from moto.organizations.models import organizations_backends
    from moto.rds.models import DBClusterSnapshot, DBSnapshot, rds_backends

    model = "backup::copy"
    state_manager.register_default_transition(model, {"progression": "time", "seconds": COPY_STATE_SECONDS})
    jobs: dict[str, "CopyJob"] = {}
    finished_states = ("COMPLETED", "FAILED")

    def organization_id(account: str) -> str | None:
        # moto records the management account of each member; a management account has the organisation itself.
        management, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
        organization = organizations_backends[management][partition].org
        return organization.id if organization else None

    class CopyJob(ManagedState):
        def __init__(self, body: dict, account: str, region: str, point: dict):
            self.body, self.account, self.region, self.point = body, account, region, point
            self.id = str(uuid.uuid4()).upper()
            self.created, self.completed = time.time(), None
            self.source_vault_arn = vault_arn(account, region, body["SourceBackupVaultName"])
            arn = body["DestinationBackupVaultArn"]
            _, _, _, self.destination_region, self.destination_account, rest = arn.split(":", 5)
            self.destination_vault = rest.removeprefix("backup-vault:")
            self.destination_point_arn = None
            self.failure = self.refusal()
            super().__init__(model, [("CREATED", "RUNNING"), ("RUNNING", "FAILED" if self.failure else "COMPLETED")])
            self.reported = None
            self.lock = threading.Lock()

        def refusal(self) -> str | None:
            """Why AWS Backup would fail this copy, or None."""
            destination_arn = self.body["DestinationBackupVaultArn"]
            try:
                destination = backup_backends[self.destination_account][self.destination_region].describe_backup_vault(
                    self.destination_vault)
            except ResourceNotFoundException:
                return f"Backup vault {destination_arn} does not exist or cannot be accessed by account {self.account}"
            source = backup_backends[self.account][self.region].describe_backup_vault(
                self.body["SourceBackupVaultName"])
            role = self.body["IamRoleArn"]
            context = {"aws:PrincipalAccount": self.account, "aws:PrincipalArn": role,
                       "backup:CopyTargets": destination_arn}
            if organization_id(self.account):
                context["aws:PrincipalOrgID"] = organization_id(self.account)
            principals = {self.account, f"arn:aws:iam::{self.account}:root", role}
            decisions = {}
            for vault, arn, action in ((source, self.source_vault_arn, "backup:CopyFromBackupVault"),
                                       (destination, destination_arn, "backup:CopyIntoBackupVault")):
                try:
                    decisions[action] = vault_policy_decision(getattr(vault, "access_policy", None), action,
                                                              principals, context)
                except UnsupportedPolicy as error:
                    return f"{error} (backup vault {arn})"
            if decisions["backup:CopyFromBackupVault"] == "Deny":
                return (f"Access denied: the access policy of backup vault {self.source_vault_arn} denies "
                        f"backup:CopyFromBackupVault to {role} for copies into {destination_arn}")
            into = decisions["backup:CopyIntoBackupVault"]
            if into == "Deny" or (into is None and self.destination_account != self.account):
                return (f"Access denied: the access policy of backup vault {destination_arn} does not allow "
                        f"backup:CopyIntoBackupVault to account {self.account} (role {role})")
            return None

        def refresh(self) -> str:
            """The job's state; on a change, do what AWS Backup does then (the copy, the event), once."""
            with self.lock:
                state = self.status
                if state == self.reported:
                    return state
                if state in finished_states:
                    self.completed = time.time()
                    if state == "COMPLETED":
                        self.copy()
                        state = self._status  # the copy itself may have failed
                self.reported = state
                put_backup_event(self.account, self.region, "Copy Job State Change", self.event_detail(),
                                 [self.point["RecoveryPointArn"]])
                return state

        def copy(self) -> None:
            source_arn = self.point["RecoveryPointArn"]
            account, region = self.destination_account, self.destination_region
            try:
                if source_arn.startswith("arn:aws:ec2:") and ":snapshot/" in source_arn:
                    self.destination_point_arn = self.copy_ebs_snapshot(source_arn)
                elif source_arn.startswith("arn:aws:rds:"):
                    self.destination_point_arn = self.copy_rds_snapshot(source_arn)
                else:
                    self.destination_point_arn = f"arn:aws:backup:{region}:{account}:recovery-point:{uuid.uuid4()}"
            except Exception as error:  # moto's not-found errors: the source was deleted since the job started
                self.failure, self._status = f"the source of recovery point {source_arn} is gone: {error!r}", "FAILED"
                return
            copied = {key: self.point[key] for key in ("ResourceArn", "ResourceType", "BackupSizeInBytes")
                      if self.point.get(key) is not None}
            RECOVERY_POINTS[(account, region, self.destination_point_arn)] = {
                **copied, "RecoveryPointArn": self.destination_point_arn, "BackupVaultName": self.destination_vault,
                "AccountId": account, "Region": region, "CreationDate": self.created,
                "SourceBackupVaultArn": self.source_vault_arn, "Lifecycle": self.body.get("Lifecycle"),
                "IamRoleArn": self.body["IamRoleArn"]}

        def copy_ebs_snapshot(self, source_arn: str) -> str:
            """A new snapshot of the same volume in the destination account and region; its ARN."""
            source = ec2_backends[self.account][self.region].get_snapshot(source_arn.rsplit("/", 1)[1])
            backend = ec2_backends[self.destination_account][self.destination_region]
            snapshot = Snapshot(
                backend, random_snapshot_id(), volume=source.volume, encrypted=source.encrypted,
                description=f"This snapshot is created by the AWS Backup service for copy job {self.id}")
            backend.snapshots[snapshot.id] = snapshot
            return f"arn:aws:ec2:{self.destination_region}::snapshot/{snapshot.id}"

        def copy_rds_snapshot(self, source_arn: str) -> str:
            """A new DB (cluster) snapshot `awsbackup:copyjob-ID` of the same database in the destination account
            and region, as AWS Backup names its RDS copies; its ARN."""
            source_backend = rds_backends[self.account][self.region]
            backend = rds_backends[self.destination_account][self.destination_region]
            name = f"awsbackup:copyjob-{self.id.lower()}"
            if ":cluster-snapshot:" in source_arn:
                source = source_backend.get_db_cluster_snapshot(source_arn.split(":cluster-snapshot:", 1)[1])
                backend.cluster_snapshots[name] = DBClusterSnapshot(backend, source.cluster, name, "awsbackup")
                return backend.cluster_snapshots[name].arn
            source = source_backend.get_db_snapshot(source_arn.split(":snapshot:", 1)[1])
            backend.database_snapshots[name] = DBSnapshot(backend, source.database, name, "awsbackup",
                                                          original_created_at=source.original_snapshot_create_time)
            return backend.database_snapshots[name].arn

        def resource_type(self) -> str:
            return recovery_point_description(self.point)["ResourceType"]

        def event_detail(self) -> dict:
            detail = {
                "copyJobId": self.id, "backupSizeInBytes": self.point.get("BackupSizeInBytes", 0),
                "creationDate": iso_time(self.created), "iamRoleArn": self.body["IamRoleArn"],
                "resourceArn": self.point["ResourceArn"], "resourceType": self.resource_type(),
                "sourceBackupVaultArn": self.source_vault_arn, "state": self.reported or self._status,
                "destinationBackupVaultArn": self.body["DestinationBackupVaultArn"],
            }
            if self.completed:
                detail["completionDate"] = iso_time(self.completed)
                detail["destinationRecoveryPointArn"] = self.destination_point_arn or {}  # {} when FAILED, as AWS
            if self.failure and self.completed:
                detail["statusMessage"] = self.failure
            return detail

        def description(self) -> dict:
            state = self.refresh()
            answer = {"AccountId": self.account, "CopyJobId": self.id, "SourceBackupVaultArn": self.source_vault_arn,
                      "SourceRecoveryPointArn": self.point["RecoveryPointArn"],
                      "DestinationBackupVaultArn": self.body["DestinationBackupVaultArn"],
                      "ResourceArn": self.point["ResourceArn"], "CreationDate": self.created, "State": state,
                      "BackupSizeInBytes": self.point.get("BackupSizeInBytes", 0),
                      "IamRoleArn": self.body["IamRoleArn"], "ResourceType": self.resource_type(), "IsParent": False}
            if self.body.get("Lifecycle"):
                answer["DestinationRecoveryPointLifecycle"] = self.body["Lifecycle"]
            if self.destination_point_arn:
                answer["DestinationRecoveryPointArn"] = self.destination_point_arn
            if self.completed:
                answer["CompletionDate"] = self.completed
            if state == "FAILED":
                answer["StatusMessage"] = self.failure
            return answer

    def start_copy_job(self) -> str:
        body = json.loads(self.body or "{}")
        account, region = self.current_account, self.region
        first = started_by_token(jobs.values(), body, account, region, "copy job")
        if first is not None:
            return json.dumps({"CopyJobId": first.id, "CreationDate": first.created, "IsParent": False})
        vault = body.get("SourceBackupVaultName", "")
        self.backup_backend.describe_backup_vault(vault)  # ResourceNotFoundException, as AWS
        point = RECOVERY_POINTS.get((account, region, body.get("RecoveryPointArn")))
        if point is None or point["BackupVaultName"] != vault:
            raise ResourceNotFoundException(f"Recovery point {body.get('RecoveryPointArn')} not found in backup vault "
                                            f"{vault}")
        destination = body.get("DestinationBackupVaultArn", "").split(":", 5)
        if len(destination) != 6 or destination[2] != "backup" or not destination[5].startswith("backup-vault:"):
            raise InvalidParameterValueException(f"DestinationBackupVaultArn {body.get('DestinationBackupVaultArn')} "
                                                 "is not a backup vault ARN")
        check_backup_role(body.get("IamRoleArn", ""), account)
        job = CopyJob(body, account, region, point)
        jobs[job.id] = job
        job.refresh()  # CREATED, and its event
        threading.Thread(target=run_job, args=(job,), name=f"copy-job-{job.id}", daemon=True).start()
        return json.dumps({"CopyJobId": job.id, "CreationDate": job.created, "IsParent": False})

    def describe_copy_job(self) -> str:
        job = jobs.get(urllib.parse.unquote(self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1]))
        if job is None or (job.account, job.region) != (self.current_account, self.region):
            raise ResourceNotFoundException("Copy job not found")
        job.advance()  # for a test that sets the transition to "manual"
        return json.dumps({"CopyJob": job.description()})

    def list_copy_jobs(self) -> str:
        query = {name: values[0] for name, values in self.querystring.items() if values}
        filters = {"State": query.get("state"), "DestinationBackupVaultArn": query.get("destinationVaultArn"),
                   "ResourceArn": query.get("resourceArn"),
                   "SourceRecoveryPointArn": query.get("sourceRecoveryPointArn"),
                   "AccountId": query.get("accountId", self.current_account)}
        found = [job.description() for job in list(jobs.values()) if job.region == self.region]
        found = [job for job in found if all(value is None or job[key] == value for key, value in filters.items())]
        return listed_jobs(self, found, "CopyJobs")

    serve_backup_actions({"start_copy_job": start_copy_job, "describe_copy_job": describe_copy_job,
                          "list_copy_jobs": list_copy_jobs}, ["{0}/copy-jobs/?$", "{0}/copy-jobs/(?P<id>[^/]+)$"])


# How long a backup job stays in each state before the next (moto's state manager, model `backup::backup`; a test
# may set another transition): as a copy job's.
BACKUP_STATE_SECONDS = COPY_STATE_SECONDS


def backup_jobs() -> None:
    """Addition (a gap in what moto emulates): moto has no AWS Backup backup jobs. StartBackupJob (BackupVaultName,
    ResourceArn, IamRoleArn, optional Lifecycle and IdempotencyToken) is refused at the call for an unknown vault
    (ResourceNotFoundException) or a role missing from the caller's account (InvalidParameterValueException), as
    AWS refuses them; otherwise the job goes CREATED -> RUNNING -> COMPLETED or FAILED on its own
    (BACKUP_STATE_SECONDS per state):
    - an EBS volume (`arn:aws:ec2:REGION:ACCOUNT:volume/vol-…`) that exists in that account and region is
      snapshotted in moto's EC2, and the snapshot becomes a recovery point of the vault (RECOVERY_POINTS, as
      backup_recovery_points registers them, with the job's id), the job COMPLETED with its size;
    - any other resource, or a volume that does not exist, FAILS the job with a StatusMessage naming it;
    - every state change sends a "Backup Job State Change" event (core/tests/fixtures/eventbridge-backup-job-*.json)
      to the account's default bus in that region.
    DescribeBackupJob and ListBackupJobs (ByState, ByBackupVaultName, ByResourceArn, ByResourceType, ByAccountId,
    ByCreatedAfter, ByCreatedBefore, MaxResults, NextToken) answer in the job's account and region."""
    import threading

    from moto.backup.exceptions import ResourceNotFoundException
    from moto.ec2.models import ec2_backends
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState

    model = "backup::backup"
    state_manager.register_default_transition(model, {"progression": "time", "seconds": BACKUP_STATE_SECONDS})
    jobs: dict[str, "BackupJob"] = {}
    finished_states = ("COMPLETED", "FAILED")

    class BackupJob(ManagedState):
        def __init__(self, body: dict, account: str, region: str):
            self.body, self.account, self.region = body, account, region
            self.id = str(uuid.uuid4()).upper()
            self.created, self.completed, self.point_arn, self.size = time.time(), None, None, 0
            self.resource_arn = body["ResourceArn"]
            self.volume = self.find_volume()
            self.failure = None if self.volume else (
                f"Resource {self.resource_arn} was not found or cannot be backed up by this emulator")
            super().__init__(model, [("CREATED", "RUNNING"), ("RUNNING", "FAILED" if self.failure else "COMPLETED")])
            self.reported = None
            self.lock = threading.Lock()

        def find_volume(self):
            parts = self.resource_arn.split(":", 5)
            if len(parts) != 6 or parts[2] != "ec2" or not parts[5].startswith("volume/"):
                return None
            if (parts[3], parts[4]) != (self.region, self.account):
                return None
            try:
                return ec2_backends[self.account][self.region].get_volume(parts[5].removeprefix("volume/"))
            except Exception:  # moto's InvalidVolumeIdError
                return None

        def refresh(self) -> str:
            """The job's state; on a change, do what AWS Backup does then (the snapshot, the event), once."""
            with self.lock:
                state = self.status
                if state == self.reported:
                    return state
                if state in finished_states:
                    self.completed = time.time()
                    if state == "COMPLETED":
                        self.snapshot()
                self.reported = state
                put_backup_event(self.account, self.region, "Backup Job State Change", self.event_detail(),
                                 [self.point_arn] if self.point_arn else [self.resource_arn])
                return state

        def snapshot(self) -> None:
            snapshot = ec2_backends[self.account][self.region].create_snapshot(
                self.volume.id, "This snapshot is created by the AWS Backup service.")
            self.point_arn = f"arn:aws:ec2:{self.region}::snapshot/{snapshot.id}"
            self.size = self.volume.size * 2**30
            RECOVERY_POINTS[(self.account, self.region, self.point_arn)] = {
                "RecoveryPointArn": self.point_arn, "BackupVaultName": self.body["BackupVaultName"],
                "ResourceArn": self.resource_arn, "AccountId": self.account, "Region": self.region,
                "CreationDate": self.created, "BackupJobId": self.id, "IamRoleArn": self.body["IamRoleArn"],
                "BackupSizeInBytes": self.size, "Lifecycle": self.body.get("Lifecycle")}

        def event_detail(self) -> dict:
            detail = {
                "backupJobId": self.id, "backupSizeInBytes": str(self.size),
                "backupVaultArn": vault_arn(self.account, self.region, self.body["BackupVaultName"]),
                "backupVaultName": self.body["BackupVaultName"], "bytesTransferred": str(self.size),
                "creationDate": iso_time(self.created), "iamRoleArn": self.body["IamRoleArn"],
                "resourceArn": self.resource_arn, "resourceType": resource_type_of(self.resource_arn),
                "state": self.reported or self._status, "percentDone": 100 if self.completed else 0,
            }
            if self.completed:
                detail["completionDate"] = iso_time(self.completed)
            if self.point_arn:
                detail["recoveryPointArn"] = self.point_arn
            if self.failure and self.completed:
                detail["statusMessage"] = self.failure
            return detail

        def description(self) -> dict:
            state = self.refresh()
            answer = {"AccountId": self.account, "BackupJobId": self.id,
                      "BackupVaultName": self.body["BackupVaultName"],
                      "BackupVaultArn": vault_arn(self.account, self.region, self.body["BackupVaultName"]),
                      "ResourceArn": self.resource_arn, "ResourceType": resource_type_of(self.resource_arn),
                      "CreationDate": self.created, "State": state, "BackupSizeInBytes": self.size,
                      "IamRoleArn": self.body["IamRoleArn"], "IsParent": False,
                      "PercentDone": "100.0" if self.completed else "0.0"}
            if self.point_arn:
                answer["RecoveryPointArn"] = self.point_arn
            if self.completed:
                answer["CompletionDate"] = self.completed
            if state == "FAILED":
                answer["StatusMessage"] = self.failure
            return answer

    def start_backup_job(self) -> str:
        body = json.loads(self.body or "{}")
        account, region = self.current_account, self.region
        first = started_by_token(jobs.values(), body, account, region, "backup job")
        if first is not None:
            return json.dumps({"BackupJobId": first.id, "CreationDate": first.created, "IsParent": False})
        self.backup_backend.describe_backup_vault(body.get("BackupVaultName", ""))  # ResourceNotFoundException
        check_backup_role(body.get("IamRoleArn", ""), account)
        job = BackupJob(body, account, region)
        jobs[job.id] = job
        job.refresh()  # CREATED, and its event
        threading.Thread(target=run_job, args=(job,), name=f"backup-job-{job.id}", daemon=True).start()
        return json.dumps({"BackupJobId": job.id, "CreationDate": job.created, "IsParent": False})

    def describe_backup_job(self) -> str:
        job = jobs.get(urllib.parse.unquote(self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1]))
        if job is None or (job.account, job.region) != (self.current_account, self.region):
            raise ResourceNotFoundException("Backup job not found")
        job.advance()  # for a test that sets the transition to "manual"
        return json.dumps(job.description())

    def list_backup_jobs(self) -> str:
        query = {name: values[0] for name, values in self.querystring.items() if values}
        filters = {"State": query.get("state"), "BackupVaultName": query.get("backupVaultName"),
                   "ResourceArn": query.get("resourceArn"), "ResourceType": query.get("resourceType"),
                   "AccountId": query.get("accountId", self.current_account)}
        found = [job.description() for job in list(jobs.values()) if job.region == self.region]
        found = [job for job in found if all(value is None or job[key] == value for key, value in filters.items())]
        return listed_jobs(self, found, "BackupJobs")

    serve_backup_actions({"start_backup_job": start_backup_job, "describe_backup_job": describe_backup_job,
                          "list_backup_jobs": list_backup_jobs},
                         ["{0}/backup-jobs/?$", "{0}/backup-jobs/(?P<id>[^/]+)$"])


def ebs_direct_apis() -> None:
    """Found for issue 14 (restore to a snapshot, archive through the EBS direct APIs), each shown on an unpatched
    moto in tests/test_moto_defects.py. moto's EBS direct APIs answer BlockSize 512 where AWS answers 524288;
    take any PutSnapshotBlock checksum and any CompleteSnapshot count and checksum; list blocks in write order,
    all at once (no MaxResults, NextToken or StartingBlockIndex); ignore block tokens and answer 500 for an
    unknown block or snapshot; keep serving a snapshot EC2 deleted; mark the EC2 snapshot completed (and
    unencrypted) at StartSnapshot; and leave a volume behind in DescribeVolumes. AWS's behaviour:
    <https://docs.aws.amazon.com/ebs/latest/APIReference/API_Operations.html>"""
    import base64
    import hashlib

    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.ebs.models import EBSBackend
    from moto.ebs.responses import EBSResponse

    block_size = 512 * 1024  # <https://docs.aws.amazon.com/ebs/latest/userguide/ebsapis-using-apis.html>
    max_results = 10000  # ListSnapshotBlocks' default and largest MaxResults

    class EbsError(JsonRESTError):
        def __init__(self, error_type: str, reason: str, message: str):
            super().__init__(error_type, message)
            self.description = json.dumps({"__type": error_type, "Message": message, "Reason": reason})

    def validation(reason: str, message: str) -> EbsError:
        error = EbsError("ValidationException", reason, message)
        error.code = 400
        return error

    def snapshot_of(backend: EBSBackend, snapshot_id: str):
        """The snapshot while EC2 still has it (a deleted snapshot's blocks are gone)."""
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is None or snapshot_id not in backend.ec2_backend.snapshots:
            error = EbsError("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND",
                             f"The snapshot '{snapshot_id}' does not exist.")
            error.code = 404
            raise error
        return snapshot

    def sha256_b64(data: bytes) -> str:
        return base64.b64encode(hashlib.sha256(data).digest()).decode()

    original_start = EBSBackend.start_snapshot

    def start_snapshot(self) -> ActionResult:
        backend = self.ebs_backend
        snapshot = original_start(backend, volume_size=self._get_param("VolumeSize"), tags=self._get_param("Tags"),
                                  description=self._get_param("Description"))
        snapshot.block_size = block_size
        ec2_snapshot = backend.ec2_backend.snapshots[snapshot.snapshot_id]
        ec2_snapshot.status = "pending"
        ec2_snapshot.encrypted = bool(self._get_param("Encrypted")) or self._get_param("KmsKeyArn") is not None
        ec2_snapshot.kms_key_id = self._get_param("KmsKeyArn")
        # moto needs a volume to make an EC2 snapshot; AWS's snapshot has no volume in DescribeVolumes.
        backend.ec2_backend.volumes.pop(ec2_snapshot.volume.id, None)
        return ActionResult({"SnapshotId": snapshot.snapshot_id, "OwnerId": snapshot.account_id,
                             "Status": snapshot.status, "StartTime": snapshot.start_time,
                             "VolumeSize": snapshot.volume_size, "BlockSize": snapshot.block_size,
                             "Tags": snapshot.tags, "Description": snapshot.description,
                             **({"KmsKeyArn": ec2_snapshot.kms_key_id} if ec2_snapshot.kms_key_id else {})})

    def put_snapshot_block(self) -> ActionResult:
        snapshot = snapshot_of(self.ebs_backend, self._get_param("SnapshotId"))
        index, data = int(self._get_param("BlockIndex")), self._get_param("BlockData") or b""
        if snapshot.status != "pending":
            raise validation("INVALID_SNAPSHOT_ID", f"The snapshot {snapshot.snapshot_id} is {snapshot.status}.")
        if not 0 <= index < snapshot.volume_size * (1 << 30) // block_size:
            raise validation("INVALID_BLOCK", f"Block index {index} is outside the volume.")
        if len(data) != block_size or int(self._get_param("DataLength") or -1) != block_size:
            raise validation("INVALID_BLOCK", f"A block holds {block_size} bytes, not {len(data)}.")
        checksum = self._get_param("Checksum")
        if self._get_param("ChecksumAlgorithm") != "SHA256" or checksum != sha256_b64(data):
            raise validation("INVALID_CHECKSUM", "The checksum does not match the block data.")
        snapshot.put_block(index, data, checksum, "SHA256", block_size)
        return ActionResult({"Checksum": checksum, "ChecksumAlgorithm": "SHA256"})

    def complete_snapshot(self) -> ActionResult:
        snapshot = snapshot_of(self.ebs_backend, self._get_param("SnapshotId"))
        count, checksum = self._get_param("ChangedBlocksCount"), self._get_param("Checksum")
        linear = hashlib.sha256(b"".join(base64.b64decode(snapshot.blocks[i].checksum)
                                         for i in sorted(snapshot.blocks))).digest()
        # AWS accepts the call and fails the snapshot: its status ends as "error".
        valid = int(count) == len(snapshot.blocks) and (
            checksum is None or (self._get_param("ChecksumAggregationMethod") == "LINEAR"
                                 and checksum == base64.b64encode(linear).decode()))
        snapshot.status = "completed" if valid else "error"
        self.ebs_backend.ec2_backend.snapshots[snapshot.snapshot_id].status = snapshot.status
        return ActionResult({"Status": "pending" if valid else "error"})

    def list_snapshot_blocks(self) -> ActionResult:
        snapshot = snapshot_of(self.ebs_backend, self._get_param("SnapshotId"))
        start = int(self._get_param("NextToken") or self._get_param("StartingBlockIndex") or 0)
        limit = int(self._get_param("MaxResults") or max_results)
        indexes = [i for i in sorted(snapshot.blocks) if i >= start]
        page = indexes[:limit]
        result = {"Blocks": [{"BlockIndex": i, "BlockToken": snapshot.blocks[i].block_token} for i in page],
                  "VolumeSize": snapshot.volume_size, "BlockSize": block_size,
                  "ExpiryTime": snapshot.start_time + datetime.timedelta(days=7)}
        if len(indexes) > limit:
            result["NextToken"] = str(indexes[limit])
        return ActionResult(result)

    def get_snapshot_block(self) -> ActionResult:
        snapshot = snapshot_of(self.ebs_backend, self._get_param("SnapshotId"))
        block = snapshot.blocks.get(int(self._get_param("BlockIndex")))
        if block is None or block.block_token != self._get_param("BlockToken"):
            raise validation("INVALID_BLOCK_TOKEN", "The block token is not valid for this block.")
        return ActionResult({"DataLength": block.data_length, "BlockData": block.block_data,
                             "Checksum": block.checksum, "ChecksumAlgorithm": block.checksum_algorithm})

    EBSResponse.start_snapshot = start_snapshot
    EBSResponse.put_snapshot_block = put_snapshot_block
    EBSResponse.complete_snapshot = complete_snapshot
    EBSResponse.list_snapshot_blocks = list_snapshot_blocks
    EBSResponse.get_snapshot_block = get_snapshot_block


def full_object_checksums() -> None:
    """Found for the worker's full-object checksums: CompleteMultipartUpload ignores the full-object checksum the
    client sends (`x-amz-checksum-crc64nvme` with checksum type FULL_OBJECT), so an object whose bytes differ
    from what the client streamed is completed anyway. S3 refuses it with BadDigest and keeps the upload open:
    compute the checksum of the listed parts (moto's own compute_checksum, exact for CRC64NVME with awscrt, see
    requirements.txt) and refuse a mismatch the same way, before moto completes the upload.
    <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>"""
    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response
    from moto.s3.utils import compute_checksum

    class BadDigest(S3ClientError):
        code = "BadDigest"

    original = S3Response._key_response_post

    def _key_response_post(self, request, body, bucket_name, query, key_name):
        upload_id = (query.get("uploadId") or [None])[0]
        multipart = self.backend.get_bucket(bucket_name).multiparts.get(upload_id) if upload_id else None
        if multipart is not None and multipart.metadata.get("x-amz-checksum-type") == "FULL_OBJECT":
            algorithm = multipart.metadata.get("x-amz-checksum-algorithm", "CRC64NVME")
            sent = request.headers.get(f"x-amz-checksum-{algorithm.lower()}")
            if sent is not None:
                parts = [multipart.parts[number].value for number, _ in self._complete_multipart_body(body)
                         if number in multipart.parts]
                computed = compute_checksum(b"".join(parts), algorithm).decode()
                if computed != sent:
                    raise BadDigest(f"The {algorithm} you specified did not match the calculated checksum.")
        return original(self, request, body, bucket_name, query, key_name)

    S3Response._key_response_post = _key_response_post


PATCHES = {
    "definite_json_paths": definite_json_paths,
    "integration_key_normalisation": integration_key_normalisation,
    "json_task_results": json_task_results,
    "json_execution_output": json_execution_output,
    "export_task_status_case": export_task_status_case,
    "export_progress": export_progress,
    "state_machine_targets": state_machine_targets,
    "function_and_topic_targets": function_and_topic_targets,
    "forwarded_events": forwarded_events,
    "unnamed_executions": unnamed_executions,
    "state_machine_identity": state_machine_identity,
    "batch_job_roles": batch_job_roles,
    "aws_sdk_error_names": aws_sdk_error_names,
    "scaled_time": scaled_time,
    "dynamodb_exports": dynamodb_exports,
    "cluster_snapshot_arns": cluster_snapshot_arns,
    "bucket_policy_conditions": bucket_policy_conditions,
    "loopback_template_urls": loopback_template_urls,
    "cloudformation_resources": cloudformation_resources,
    "yaml_condition_tag": yaml_condition_tag,
    "stack_set_instances": stack_set_instances,
    "event_account_field": event_account_field,
    "backup_recovery_points": backup_recovery_points,
    "backup_vault_access_policies": backup_vault_access_policies,
    "backup_vault_resources": backup_vault_resources,
    "backup_copy_jobs": backup_copy_jobs,
    "backup_jobs": backup_jobs,
    "full_object_checksums": full_object_checksums,
    "ebs_direct_apis": ebs_direct_apis,
}


def chosen_patches(spec: str) -> list[str]:
    if spec == "all":
        return list(PATCHES)
    names = [name for name in spec.split(",") if name and name != "none"]
    unknown = set(names) - set(PATCHES)
    if unknown:
        sys.exit(f"BA_EMULATOR_PATCHES: unknown patch(es) {sorted(unknown)}; known: {sorted(PATCHES)}")
    return names


def main() -> None:
    if len(sys.argv) != 2 or "MOTO_PORT" not in os.environ:
        sys.exit("usage: MOTO_PORT=<router port> python -m emulator.launcher <moto port>")
    if moto.__version__ != MOTO_VERSION:
        sys.exit(f"moto {moto.__version__} found; these patches are for moto {MOTO_VERSION}")

    for name in chosen_patches(os.environ.get("BA_EMULATOR_PATCHES", "all")):
        PATCHES[name]()
        print(f"patched: {name}", file=sys.stderr)

    from moto.moto_api._internal.models import moto_api_backend
    from moto.server import main as serve

    moto_api_backend.set_config(CONFIG)  # what POST /moto-api/config does
    serve(["--host", "127.0.0.1", "--port", sys.argv[1]])  # keeps MOTO_PORT as given


if __name__ == "__main__":
    main()
