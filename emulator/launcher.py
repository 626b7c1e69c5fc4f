"""moto's server with its Step Functions interpreter executing state machines, patched for moto 5.2.5's defects.

    MOTO_PORT=<router port> python -m emulator.launcher <moto port>

moto listens on <moto port>; MOTO_PORT is where its Step Functions interpreter sends its own AWS calls, and
it must be the router's port so that Lambda and Batch calls reach the local Lambda host and local jobs.

Each patch below fixes one defect of moto 5.2.5 found by running it: shared/DESIGN.md lists seven, two more
were found while writing the tests, and tests/test_moto_defects.py shows each on an unpatched moto.
BA_EMULATOR_PATCHES chooses the patches ("all", the default, "none", or a comma-separated list of names from
PATCHES), which is how that test starts an unpatched moto. BA_EMULATOR_TIME_SCALE (default 1) scales Wait
states and Retry intervals.
"""

import copy
import datetime
import functools
import importlib
import json
import os
import pkgutil
import sys
import time
import types
import uuid

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


def state_machine_targets() -> None:
    """Defect 5: PutEvents returns 500 when a matching rule targets a state machine. Deliver such targets as
    EventBridge does: start an execution whose input is the event (with an ISO-8601 `time`), or the target's
    Input, InputPath or InputTransformer applied to it. Other targets keep moto's handling."""
    from jsonpath_ng.ext import parse
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.stepfunctions.responses import get_backend

    def execution_input(target: dict, message: dict) -> str:
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

    def is_state_machine(target: dict) -> bool:
        return target["Arn"].split(":")[2:3] == ["states"] and ":stateMachine:" in target["Arn"]

    original = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input=True):
        if not self.event_pattern.matches_event(original_event):
            return
        for target in filter(is_state_machine, self.targets):
            arn = target["Arn"]
            _, _, _, region, account, *_ = arn.split(":")
            try:
                get_backend(account, region).start_execution(arn, None, execution_input(target, original_event))
            except Exception as error:  # EventBridge delivers asynchronously: PutEvents itself still succeeds
                print(f"EventBridge could not start {arn}: {error!r}", file=sys.stderr)
        others = [target for target in self.targets if not is_state_machine(target)]
        if others:
            rule = copy.copy(self)  # a copy, so concurrent PutEvents calls see the rule unchanged
            rule.targets = others
            original(rule, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


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


PATCHES = {
    "definite_json_paths": definite_json_paths,
    "integration_key_normalisation": integration_key_normalisation,
    "json_task_results": json_task_results,
    "json_execution_output": json_execution_output,
    "export_task_status_case": export_task_status_case,
    "state_machine_targets": state_machine_targets,
    "unnamed_executions": unnamed_executions,
    "aws_sdk_error_names": aws_sdk_error_names,
    "scaled_time": scaled_time,
    "cluster_snapshot_arns": cluster_snapshot_arns,
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
