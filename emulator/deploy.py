"""Deploy the EBS flow into a running local emulator: what infra/template.yaml creates in AWS, made here with
boto3 against the emulator, using the real Lambda binaries and the real Batch worker.

    python -m emulator.deploy --device /dev/loopN [--name NAME] [--delete-recovery-point] ...

prints the stack (state machine ARN, bucket, vault, ...) as JSON. From Python: `deploy(aws, Settings(...))`.

What it creates, all named after `Settings.name`:
  - an IAM role (moto checks that the roles it is given exist);
  - the archive bucket, the AWS Backup vaults, an SNS topic (optional) with an SQS queue subscribed to it, so a
    test can read what was published;
  - an EC2 instance standing in for the Batch host: the worker attaches the temporary volume to it;
  - a Batch compute environment, one job queue for the AZ, and the worker's job definition, whose command is
    `batch-worker ... --instance-id <that instance> --device <a loop device>`: locally the "volume" the worker
    archives is a loop device made by the caller, since moto's volumes have no bytes;
  - one Lambda function per step (lambdas/src/steps/), each run from the one binary `lambdas` of the cargo
    target directory (mapped through the emulator's BA_LAMBDA_MAP file) with its step as `Handler`, which the
    emulator passes in `_HANDLER` as Lambda does (functions keep their configuration for their process's life:
    a different configuration needs another `name`);
  - one state machine per state-machines/<stem>.asl.json, named `<name>-<stem>`, with its placeholders filled
    by state-machines/render.py, the substitution infra's DefinitionSubstitutions does in AWS;
  - what each flow needs beyond that, from its module in emulator/flows/ (see emulator/flows/__init__.py);
  - the EventBridge rules of state-machines/events/, each targeting the state machine RULE_TARGETS names.
"""

import argparse
import importlib.util
import io
import json
import os
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.flows import FLOWS  # noqa: E402  (after the path fix above)

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"

# One module per step; every function runs the one binary LAMBDA_BINARY with its step as `Handler`.
LAMBDA_STEPS = ROOT / "lambdas" / "src" / "steps"
LAMBDA_BINARY = "lambdas"
STATE_MACHINES = ROOT / "state-machines"
# EventBridge pattern (state-machines/events/<stem>.json) -> the state machine (state-machines/<stem>.asl.json)
# its rule targets. infra/template.yaml's rules follow the same table.
RULE_TARGETS = {
    "backup-job-completed": "ebs-archive",
    "copy-job-completed": "ebs-archive",
    "dynamodb-backup-job-completed": "dynamodb-export",
    "rds-backup-job-completed": "rds-export",
    "rds-snapshot-ready": "rds-export",
}
# The notify step waits out Slack's Retry-After inside one invocation (core::message::SLACK_MAX_RETRY_AFTER).
FUNCTION_TIMEOUT_SECONDS = 120


def pascal(stem: str) -> str:
    """`create-volume` -> `CreateVolume`: the ASL placeholders' spelling of a file or crate name."""
    return "".join(part[:1].upper() + part[1:] for part in stem.replace("_", "-").split("-"))


def steps() -> list[str]:
    """Every Lambda step, by handler name: the modules of lambdas/src/steps/ (`create_volume.rs` -> `create-volume`)."""
    return sorted(p.stem.replace("_", "-") for p in LAMBDA_STEPS.glob("*.rs") if p.stem != "mod")


def flows() -> list[str]:
    """Every state machine's stem: state-machines/<stem>.asl.json."""
    return sorted(p.name.removesuffix(".asl.json") for p in STATE_MACHINES.glob("*.asl.json"))


def load_render():
    spec = importlib.util.spec_from_file_location("render", ROOT / "state-machines" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render


def target_dir() -> Path:
    """The cargo target directory: CARGO_TARGET_DIR, else .cargo/config.toml's shared one."""
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    return Path(os.environ.get("BA_HOME", "/var/cache/backup-archiver")) / "target"


@dataclass
class Settings:
    device: str
    """The block device (a loop device) the worker archives in place of the restored volume."""
    name: str = "backup-archiver"
    vaults: list = field(default_factory=lambda: ["archive-vault"])
    bucket: str = "backup-archiver-archive"
    prefix: str = "backups"
    delete_recovery_point: bool = False
    availability_zone: str = f"{REGION}a"
    job_timeout_seconds: int = 300
    lambda_endpoint: str | None = None
    """AWS_ENDPOINT_URL of the functions (e.g. a test's fault proxy); default: the emulator's own."""
    job_endpoint: str | None = None
    """AWS_ENDPOINT_URL of the worker; default: the emulator's own."""
    lambda_environment: dict = field(default_factory=dict)
    """Environment of every function."""
    function_environment: dict = field(default_factory=dict)
    """Environment of one function: {step: {VAR: value}}, over the flows' own (emulator/flows)."""
    job_environment: dict = field(default_factory=dict)
    slack_webhook_url: str | None = None
    sns_topic: bool = False
    bin_dir: str | None = None
    """Where the lambda-* binaries are; default: <cargo target dir>/debug."""


@dataclass
class Stack:
    state_machine_arn: str
    """The EBS flow's, the entry of AWS Backup's events."""
    state_machine_name: str
    state_machines: dict
    """Every flow's state machine: {stem: ARN}."""
    bucket: str
    vaults: list
    instance_id: str
    job_queue_arn: str
    job_definition: str
    functions: dict
    rules: list
    topic_arn: str | None
    sns_queue_url: str | None
    role_arn: str
    plan_config: dict


def minimal_zip() -> bytes:
    """A deployment package for moto's CreateFunction; the emulator runs the binary named by BA_LAMBDA_MAP."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\necho 'runs locally through the emulator' >&2\nexit 1\n")
    return buffer.getvalue()


def ensure_role(iam, name: str) -> str:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
            "Service": ["lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com", "batch.amazonaws.com"]}}]}
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def update_lambda_map(path: Path, entries: dict) -> None:
    mapping = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    mapping.update(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mapping, indent=2) + "\n")


def lambda_map_path() -> Path:
    """The BA_LAMBDA_MAP file the emulator was started with."""
    value = os.environ.get("BA_LAMBDA_MAP")
    if not value:
        raise RuntimeError("BA_LAMBDA_MAP is not set: start the emulator with a Lambda map file (see emulator/README.md)")
    return Path(value)


def deploy(aws, settings: Settings, lambda_map: Path | None = None) -> Stack:
    """Create (or update) everything the flow needs in the emulator `aws` (an emulator.control.Emulator)."""
    render = load_render()
    lambda_map = lambda_map or lambda_map_path()
    name = settings.name
    role_arn = ensure_role(aws.client("iam"), f"{name}-role")

    s3 = aws.client("s3")
    s3.create_bucket(Bucket=settings.bucket)
    backup = aws.client("backup")
    for vault in settings.vaults:
        backup.create_backup_vault(BackupVaultName=vault)

    topic_arn = queue_url = None
    if settings.sns_topic:
        sns, sqs = aws.client("sns"), aws.client("sqs")
        topic_arn = sns.create_topic(Name=f"{name}-notifications")["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{name}-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    ec2 = aws.client("ec2")
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="c7g.large",
        Placement={"AvailabilityZone": settings.availability_zone},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"{name}-batch-host"}]}],
    )["Instances"][0]["InstanceId"]

    batch = aws.client("batch")
    compute = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-local", type="UNMANAGED", state="ENABLED", serviceRole=role_arn)
    queue_arn = batch.create_job_queue(
        jobQueueName=f"{name}-{settings.availability_zone}", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute["computeEnvironmentArn"]}],
    )["jobQueueArn"]
    job_definition = f"{name}-worker"
    register_job_definition(aws, settings, job_definition, instance_id)

    plan_config = {
        "destination": {"bucket": settings.bucket, "prefix": settings.prefix},
        "allowed_vaults": settings.vaults,
        "availability_zones": [settings.availability_zone],
        "job_queues": {settings.availability_zone: queue_arn},
        "delete_recovery_point": settings.delete_recovery_point,
    }
    machine_prefix = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}-"
    values = {"JobDefinitionArn": job_definition, "StateMachineArnPrefix": machine_prefix}
    values.update({f"{pascal(stem)}StateMachineArn": machine_prefix + stem for stem in flows()})
    environment = {"plan": {"PLAN_CONFIG": json.dumps(plan_config)}, "notify": {},
                   "sns-trigger": {"STATE_MACHINE_ARN_PREFIX": machine_prefix}}
    if settings.slack_webhook_url:
        # As infra/ README asks of a user: the webhook in a SecureString parameter, named to notify.
        parameter = f"/{name}/slack-webhook"
        aws.client("ssm").put_parameter(Name=parameter, Value=settings.slack_webhook_url, Type="SecureString",
                                        Overwrite=True)
        environment["notify"]["SLACK_WEBHOOK_PARAMETER"] = parameter
    if topic_arn:
        environment["notify"]["SNS_TOPIC_ARN"] = topic_arn
    stack_so_far = {"name": name, "role_arn": role_arn, "instance_id": instance_id, "job_queue_arn": queue_arn,
                    "bucket": settings.bucket, "plan_config": plan_config}
    for flow in FLOWS:
        extra = flow.resources(aws, settings, stack_so_far)
        values.update(extra.get("values", {}))
        for step, variables in extra.get("environment", {}).items():
            environment.setdefault(step, {}).update(variables)
    for step, variables in settings.function_environment.items():
        environment.setdefault(step, {}).update(variables)

    functions = deploy_functions(aws, settings, role_arn, environment, lambda_map)
    values.update({f"{pascal(step)}FunctionArn": arn for step, arn in functions.items()})

    sfn = aws.client("stepfunctions")
    machines = {}
    for stem in flows():
        definition = render(json.loads((STATE_MACHINES / f"{stem}.asl.json").read_text()), values)
        machines[stem] = put_state_machine(sfn, f"{name}-{stem}", definition, role_arn)
        assert machines[stem] == values[f"{pascal(stem)}StateMachineArn"], "moto names ARNs as AWS does"

    events = aws.client("events")
    pattern_values = {
        "ArchiveVaultNames": settings.vaults,
        "ArchiveVaultArns": [f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{vault}" for vault in settings.vaults],
    }
    rules = []
    for pattern_file in sorted((STATE_MACHINES / "events").glob("*.json")):
        rule = f"{name}-{pattern_file.stem}"
        target = RULE_TARGETS[pattern_file.stem]
        pattern = render(json.loads(pattern_file.read_text()), pattern_values)
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": target, "Arn": machines[target], "RoleArn": role_arn}])
        rules.append(rule)

    return Stack(
        state_machine_arn=machines["ebs-archive"], state_machine_name=f"{name}-ebs-archive", state_machines=machines,
        bucket=settings.bucket,
        vaults=settings.vaults, instance_id=instance_id, job_queue_arn=queue_arn, job_definition=job_definition,
        functions={step: f"{name}-{step}" for step in functions}, rules=rules, topic_arn=topic_arn, sns_queue_url=queue_url, role_arn=role_arn,
        plan_config=plan_config,
    )


def deploy_functions(aws, settings: Settings, role_arn: str, environment: dict, lambda_map: Path) -> dict:
    """One function per step, each run by the emulator from its binary; returns {step: function ARN}."""
    bin_dir = Path(settings.bin_dir) if settings.bin_dir else target_dir() / "debug"
    awslambda = aws.client("lambda")
    arns, mapping = {}, {}
    for step in steps():
        function_name = f"{settings.name}-{step}"
        executable = bin_dir / LAMBDA_BINARY
        if not os.access(executable, os.X_OK):
            raise RuntimeError(f"{executable} is missing: build it first (cargo build --workspace --bins)")
        variables = {"RUST_LOG": "info", "DEPLOYMENT_NAME": settings.name, **settings.lambda_environment,
                     **environment.get(step, {})}
        if settings.lambda_endpoint:
            variables["AWS_ENDPOINT_URL"] = settings.lambda_endpoint
        try:
            awslambda.delete_function(FunctionName=function_name)
        except awslambda.exceptions.ResourceNotFoundException:
            pass
        arns[step] = awslambda.create_function(
            FunctionName=function_name, Runtime="provided.al2023", Role=role_arn, Handler=step,
            Code={"ZipFile": minimal_zip()}, Timeout=FUNCTION_TIMEOUT_SECONDS, MemorySize=256,
            Environment={"Variables": variables},
        )["FunctionArn"]
        mapping[function_name] = str(executable)
    update_lambda_map(lambda_map, mapping)
    return arns


def put_state_machine(sfn, name: str, definition: dict, role_arn: str) -> str:
    existing = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name]
    if existing:  # CreateStateMachine with an existing name keeps the old definition in moto
        sfn.update_state_machine(stateMachineArn=existing[0], definition=json.dumps(definition), roleArn=role_arn)
        return existing[0]
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn)["stateMachineArn"]


def register_job_definition(aws, settings: Settings, job_definition: str, instance_id: str,
                            timeout_seconds: int | None = None) -> str:
    """A new revision of the worker's job definition (the state machine names it without a revision, so the
    latest applies). Returns its ARN."""
    environment = {"RUST_LOG": "info", **settings.job_environment}
    if settings.job_endpoint:
        environment["AWS_ENDPOINT_URL"] = settings.job_endpoint
    return aws.client("batch").register_job_definition(
        jobDefinitionName=job_definition, type="container",
        timeout={"attemptDurationSeconds": timeout_seconds or settings.job_timeout_seconds},
        containerProperties={
            "image": "backup-archiver-worker",
            # The same arguments as infra's job definition, plus what only a local run needs.
            "command": ["batch-worker", "--volume-id", "Ref::volume_id", "--to", "Ref::destination",
                        "--snapshot-id", "Ref::snapshot_id", "--mode", "Ref::mode",
                        "--instance-id", instance_id, "--device", settings.device, "--wait-seconds", "30"],
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}],
            "privileged": True,
        },
    )["jobDefinitionArn"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="the loop device the worker archives")
    parser.add_argument("--name", default="backup-archiver")
    parser.add_argument("--vault", action="append", dest="vaults", help="an archive vault (repeatable)")
    parser.add_argument("--delete-recovery-point", action="store_true")
    parser.add_argument("--slack-webhook-url")
    args = parser.parse_args(argv)
    from emulator.control import Emulator, default_state_dir

    state_dir = default_state_dir()
    endpoint_file = state_dir / "endpoint"
    if not endpoint_file.exists():
        print("deploy: the emulator is not running (emulator/run start)", file=sys.stderr)
        return 1
    aws = Emulator(endpoint_file.read_text().strip(), state_dir)
    settings = Settings(device=args.device, name=args.name, vaults=args.vaults or ["archive-vault"],
                        delete_recovery_point=args.delete_recovery_point, slack_webhook_url=args.slack_webhook_url)
    stack = deploy(aws, settings)
    print(json.dumps(asdict(stack), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
