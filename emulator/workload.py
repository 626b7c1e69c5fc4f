"""Deploy the organisation flow's workload stack (infra/workload.yaml) into one account and Region of a running
emulator, from the template itself, as emulator/deploy.py deploys the archive stack: each role with its policies,
each function with its Handler, Role, Timeout, MemorySize, Environment and event invoke configuration (the
on-failure destination), each rule with its pattern and targets, after the template's conditions. The error
queue, the error topic and the key are made here in their place, named after the stack. Lambda permissions and
the queue's and topic's resource policies are not applied (the emulator evaluates neither; see
docs/architecture.md).

    workload = deploy_workload(aws, name, account, region, parameters, bin_dir, lambda_map, environment={})

The central account's side is infra/central.yaml, which moto's CloudFormation deploys as it is (launcher.py's
backup_vault_resources), and the archive stack (emulator/deploy.py).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from emulator.deploy import deploy_roles, executable, minimal_zip, queue_arn, update_lambda_map
from emulator.template import Template

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "workload.yaml"


@dataclass
class Workload:
    name: str
    account: str
    region: str
    error_queue_url: str
    error_topic_arn: str
    copy_role_arn: str
    functions: dict
    """{step: function name}"""
    rules: list
    roles: dict
    """{role ARN: [inline policy documents]}: what iam_check evaluates."""


def deploy_workload(aws, name: str, account: str, region: str, parameters: dict, bin_dir: Path,
                    lambda_map: Path, environment: dict) -> Workload:
    """Everything infra/workload.yaml makes, in `account` and `region` of the emulator `aws`; `environment` goes
    over each function's (a test's AWS_ENDPOINT_URL, through its fault proxy)."""
    sqs, sns = aws.client("sqs", region, account), aws.client("sns", region, account)
    queue_url = sqs.create_queue(QueueName=f"{name}-errors")["QueueUrl"]
    topic_arn = sns.create_topic(Name=f"{name}-errors")["TopicArn"]
    key = aws.client("kms", region, account).create_key(Description=f"{name} organisation flow")["KeyMetadata"]
    rule_arn = f"arn:aws:events:{region}:{account}:rule/{name}-{{}}"
    physical = {
        "ErrorQueue": {"Ref": queue_url, "Arn": queue_arn(sqs, queue_url)},
        "ErrorTopic": {"Ref": topic_arn},
        "WorkloadKey": {"Ref": key["KeyId"], "Arn": key["Arn"]},
    }
    document = Template.load(TEMPLATE)
    for logical_id in document.of_type("AWS::Events::Rule"):
        suffix = document.document["Resources"][logical_id]["Properties"]["Name"]["Fn::Sub"]
        rule = suffix.removeprefix("${NamePrefix}-")
        physical[logical_id] = {"Ref": f"{name}-{rule}", "Arn": rule_arn.format(rule)}
    template = document.stack(name, region, account, {"NamePrefix": name, **parameters}, physical)
    roles = deploy_roles(aws.client("iam", account=account), template)

    functions, mapping = {}, {}
    awslambda = aws.client("lambda", region, account)
    for logical_id in document.of_type("AWS::Lambda::Function"):
        properties = template.properties(logical_id)
        function_name = properties["FunctionName"]
        program = executable(bin_dir, properties)
        try:
            awslambda.delete_function(FunctionName=function_name)
        except awslambda.exceptions.ResourceNotFoundException:
            pass
        awslambda.create_function(
            FunctionName=function_name, Runtime=properties["Runtime"], Role=properties["Role"],
            Handler=properties["Handler"], Code={"ZipFile": minimal_zip()}, Timeout=properties["Timeout"],
            MemorySize=properties["MemorySize"],
            Environment={"Variables": {"RUST_LOG": "info", **properties["Environment"]["Variables"], **environment}})
        functions[properties["Handler"]] = function_name
        mapping[function_name] = str(program)
    update_lambda_map(lambda_map, mapping)
    for logical_id in document.of_type("AWS::Lambda::EventInvokeConfig"):
        properties = template.properties(logical_id)
        awslambda.put_function_event_invoke_config(
            FunctionName=properties["FunctionName"], MaximumRetryAttempts=properties["MaximumRetryAttempts"],
            DestinationConfig=properties["DestinationConfig"])

    events, rules = aws.client("events", region, account), []
    for logical_id in document.of_type("AWS::Events::Rule"):
        if not template.exists(logical_id):
            continue
        properties = template.properties(logical_id)
        events.put_rule(Name=properties["Name"], EventPattern=json.dumps(properties["EventPattern"]), State="ENABLED")
        events.put_targets(Rule=properties["Name"], Targets=properties["Targets"])
        rules.append(properties["Name"])

    return Workload(name=name, account=account, region=region, error_queue_url=queue_url, error_topic_arn=topic_arn,
                    copy_role_arn=template.attribute("CopyRole", "Arn"), functions=functions, rules=rules,
                    roles=roles)
