"""Deploy the project into a running local emulator from infra/template.yaml: what the template creates in AWS,
made here with boto3 against the emulator, using the real Lambda binaries and the real Batch worker.

    python -m emulator.deploy --device /dev/loopN [--name NAME] [--delete-recovery-point] ...

prints the stack (state machine ARN, bucket, vault, ...) as JSON. From Python: `deploy(aws, Settings(...))`.

The template is the one source of every setting it holds (emulator/template.py renders it with the stack's
parameters): each function's Handler, Role, Timeout, MemorySize and Environment, each role's trust and inline
policies, each job definition's timeout and job role, each state machine's DefinitionSubstitutions and role.
What the emulator makes in place of the template's other resources, all named after `Settings.name` (the stack
name), is passed to the renderer as their physical ids:
  - the archive bucket and its KMS key, the AWS Backup vaults, the notification topic (with an SQS queue
    subscribed to it when `sns_topic`, so a test can read what was published) and the dead-letter queue;
  - an EC2 instance standing in for the Batch host, tagged as the compute environments tag theirs: the worker
    attaches the temporary volume to it;
  - a Batch compute environment, one job queue for the AZ, and the worker's job definition, whose command is
    `batch-worker ... --instance-id <that instance> --device <a loop device>`: locally the "volume" the worker
    archives is a loop device made by the caller, since moto's volumes have no bytes;
  - every role of the template, as IAM roles in moto named by emulator.template.role_name, with their
    inline policies: emulator/iam_check.py evaluates the calls each identity made against them;
  - one Lambda function per AWS::Lambda::Function, run by the emulator from its executable (see `executable`)
    through the BA_LAMBDA_MAP file (functions keep their configuration for their process's life: a different
    configuration needs another `name`);
  - one state machine per AWS::StepFunctions::StateMachine, its state-machines/<stem>.asl.json filled by
    state-machines/render.py with the template's DefinitionSubstitutions;
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
from emulator.template import Template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"

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
# The tag the template's compute environments put on the worker instances (WorkerJobRole attaches volumes only
# to instances that carry it).
STACK_TAG = "backup-archiver:stack"


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


def functions_of(template: Template) -> dict:
    """{step: logical id} of the template's functions: `${AWS::StackName}-<step>` is the function's name."""
    functions = {}
    for logical_id in template.of_type("AWS::Lambda::Function"):
        name = template.document["Resources"][logical_id]["Properties"]["FunctionName"]["Fn::Sub"]
        functions[name.removeprefix("${AWS::StackName}-")] = logical_id
    return functions


def steps() -> list[str]:
    """Every Lambda step: one function of the template each."""
    return sorted(functions_of(Template.load()))


def executable(bin_dir: Path, properties: dict) -> Path:
    """The local program of a function: its deployment package `.build/lambdas/<program>.zip` is built from
    <cargo target>/debug/<program>."""
    return bin_dir / Path(properties["Code"]).name.removesuffix(".zip")


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
    """The template's JobTimeoutSeconds."""
    lambda_endpoint: str | None = None
    """AWS_ENDPOINT_URL of the functions (e.g. a test's fault proxy); default: the emulator's own."""
    job_endpoint: str | None = None
    """AWS_ENDPOINT_URL of the worker; default: the emulator's own."""
    lambda_environment: dict = field(default_factory=dict)
    """Environment of every function, over the template's."""
    function_environment: dict = field(default_factory=dict)
    """Environment of one function: {step: {VAR: value}}, over the template's."""
    job_environment: dict = field(default_factory=dict)
    slack_webhook_url: str | None = None
    sns_topic: bool = False
    """Subscribe an SQS queue to the notification topic, to read what notify published."""
    bin_dir: str | None = None
    """Where the lambda-* binaries are; default: <cargo target dir>/debug."""
    parameters: dict = field(default_factory=dict)
    """More template parameters (e.g. DatabaseMethods), over those the settings above imply."""


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
    roles: dict
    """{role ARN: [inline policy documents]}, as the template renders them: what iam_check evaluates."""
    resource_policies: dict
    """{ARN: policy document} of the archive bucket and the archive key, as the template renders them."""


def minimal_zip() -> bytes:
    """A deployment package for moto's CreateFunction; the emulator runs the binary named by BA_LAMBDA_MAP."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\necho 'runs locally through the emulator' >&2\nexit 1\n")
    return buffer.getvalue()


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


def archive_key(kms, alias: str) -> dict:
    """The archive key (the template's ArchiveKey), created once."""
    for existing in kms.list_aliases()["Aliases"]:
        if existing["AliasName"] == alias and existing.get("TargetKeyId"):
            metadata = kms.describe_key(KeyId=existing["TargetKeyId"])["KeyMetadata"]
            return {"Ref": metadata["KeyId"], "Arn": metadata["Arn"]}
    metadata = kms.create_key(Description=f"backup-archiver archives ({alias})")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    return {"Ref": metadata["KeyId"], "Arn": metadata["Arn"]}


def template_parameters(settings: Settings, extra: dict) -> dict:
    parameters = {
        "VaultNames": ",".join(settings.vaults), "ArchivePrefix": settings.prefix,
        "ArchiveBucketName": settings.bucket, "DeleteRecoveryPoints": str(settings.delete_recovery_point).lower(),
        "AvailabilityZone1": settings.availability_zone, "JobTimeoutSeconds": str(settings.job_timeout_seconds),
        "VpcId": "vpc-emulated", "SubnetId1": "subnet-emulated", "ImageTag": "local",
        "SlackWebhookParameterName": f"/{settings.name}/slack-webhook" if settings.slack_webhook_url else "",
    }
    parameters.update(extra)
    parameters.update(settings.parameters)
    return parameters


def deploy(aws, settings: Settings, lambda_map: Path | None = None) -> Stack:
    """Create (or update) everything the flows need in the emulator `aws` (an emulator.control.Emulator)."""
    render = load_render()
    lambda_map = lambda_map or lambda_map_path()
    name = settings.name
    physical = {}

    aws.client("s3").create_bucket(Bucket=settings.bucket)
    physical["ArchiveBucket"] = {"Ref": settings.bucket, "Arn": f"arn:aws:s3:::{settings.bucket}"}
    physical["ArchiveKey"] = archive_key(aws.client("kms"), f"alias/{name}-archive")
    backup = aws.client("backup")
    for vault in settings.vaults:
        try:
            backup.create_backup_vault(BackupVaultName=vault)
        except backup.exceptions.AlreadyExistsException:  # made by infra/central.yaml, with its access policy
            pass

    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic_arn = sns.create_topic(Name=f"{name}-notifications")["TopicArn"]
    physical["NotificationTopic"] = {"Ref": topic_arn}
    dead_letters = sqs.create_queue(QueueName=f"{name}-dead-letters")["QueueUrl"]
    physical["DeadLetterQueue"] = {"Ref": dead_letters, "Arn": queue_arn(sqs, dead_letters)}
    queue_url = None
    if settings.sns_topic:
        queue_url = sqs.create_queue(QueueName=f"{name}-notifications")["QueueUrl"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(sqs, queue_url),
                      Attributes={"RawMessageDelivery": "true"})
    if settings.slack_webhook_url:
        # As infra/README asks of a user: the webhook in a SecureString parameter, named to the stack.
        aws.client("ssm").put_parameter(Name=f"/{name}/slack-webhook", Value=settings.slack_webhook_url,
                                        Type="SecureString", Overwrite=True)

    ec2 = aws.client("ec2")
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="c7g.large",
        Placement={"AvailabilityZone": settings.availability_zone},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "Name", "Value": f"{name}-batch-host"}, {"Key": STACK_TAG, "Value": name}]}],
    )["Instances"][0]["InstanceId"]

    batch = aws.client("batch")
    compute = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-local", type="UNMANAGED", state="ENABLED",
        serviceRole=service_linked_batch_role(aws.client("iam")))
    queue = batch.create_job_queue(
        jobQueueName=f"{name}-{settings.availability_zone}", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute["computeEnvironmentArn"]}],
    )["jobQueueArn"]
    physical["JobQueue1"] = {"Ref": queue}
    # Named without a revision, so that the latest applies (a test registers a shorter-timeout revision);
    # CloudFormation's Ref would name the revision it made.
    job_definition = f"{name}-worker"
    physical["WorkerJobDefinition"] = {"Ref": job_definition}

    stack_so_far = {"name": name, "instance_id": instance_id, "job_queue_arn": queue, "bucket": settings.bucket}
    parameters = {}
    for flow in FLOWS:
        made = flow.resources(aws, settings, stack_so_far)
        physical.update(made.get("physical", {}))
        parameters.update(made.get("parameters", {}))
    template = Template.load().stack(name, REGION, ACCOUNT, template_parameters(settings, parameters), physical)

    encrypt_as_the_template_says(aws, template, settings.bucket, topic_arn)
    roles = deploy_roles(aws.client("iam"), template)
    register_job_definition(aws, settings, job_definition, instance_id)
    deploy_functions(aws, settings, template, lambda_map)

    sfn = aws.client("stepfunctions")
    machines = {}
    for logical_id in template.template.of_type("AWS::StepFunctions::StateMachine"):
        properties = template.properties(logical_id)
        stem = Path(properties["DefinitionS3Location"]).name.removesuffix(".asl.json")
        definition = render(json.loads((STATE_MACHINES / f"{stem}.asl.json").read_text()),
                            properties["DefinitionSubstitutions"])
        machines[stem] = put_state_machine(sfn, properties["StateMachineName"], definition, properties["RoleArn"])
        assert machines[stem] == template.attribute(logical_id, "Ref"), "moto names ARNs as AWS does"

    events = aws.client("events")
    events_role = template.attribute("EventsRole", "Arn")
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
        events.put_targets(Rule=rule, Targets=[{"Id": target, "Arn": machines[target], "RoleArn": events_role}])
        rules.append(rule)

    return Stack(
        state_machine_arn=machines["ebs-archive"], state_machine_name=f"{name}-ebs-archive", state_machines=machines,
        bucket=settings.bucket, vaults=settings.vaults, instance_id=instance_id, job_queue_arn=queue,
        job_definition=job_definition, functions={step: f"{name}-{step}" for step in steps()}, rules=rules,
        topic_arn=topic_arn, sns_queue_url=queue_url, roles=roles,
        resource_policies={
            physical["ArchiveBucket"]["Arn"]: template.properties("ArchiveBucketPolicy")["PolicyDocument"],
            physical["ArchiveKey"]["Arn"]: template.properties("ArchiveKey")["KeyPolicy"]},
    )


def encrypt_as_the_template_says(aws, template, bucket: str, topic_arn: str) -> None:
    """The archive bucket's default encryption and the notification topic's key, from the template: the calls
    that write them need the key's permissions (emulator/calls.py)."""
    rules = template.render(template.resource("ArchiveBucket")["Properties"]["BucketEncryption"])
    aws.client("s3").put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
         "BucketKeyEnabled": rule.get("BucketKeyEnabled", False)}
        for rule in rules["ServerSideEncryptionConfiguration"]]})
    topic_key = template.render(template.resource("NotificationTopic")["Properties"]["KmsMasterKeyId"])
    aws.client("sns").set_topic_attributes(TopicArn=topic_arn, AttributeName="KmsMasterKeyId",
                                          AttributeValue=topic_key)


def queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def service_linked_batch_role(iam) -> str:
    """AWSServiceRoleForBatch, which a managed compute environment of the template uses (it names none)."""
    try:
        return iam.get_role(RoleName="AWSServiceRoleForBatch")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "batch.amazonaws.com"}}]}
        return iam.create_role(RoleName="AWSServiceRoleForBatch", Path="/aws-service-role/batch.amazonaws.com/",
                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def deploy_roles(iam, template) -> dict:
    """Every role of the template with its trust and inline policies; returns {role ARN: [policy documents]}.
    Managed policies (the worker instance role's ECS agent policy) are not attached: no emulated call is made
    with that role."""
    roles = {}
    for logical_id in template.template.of_type("AWS::IAM::Role"):
        if not template.exists(logical_id):
            continue
        properties = template.properties(logical_id)
        role = template.attribute(logical_id, "Ref")
        try:
            iam.get_role(RoleName=role)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
                            Description=properties.get("Description", ""))
        policies = properties.get("Policies", [])
        for policy in policies:
            iam.put_role_policy(RoleName=role, PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))
        roles[template.attribute(logical_id, "Arn")] = [policy["PolicyDocument"] for policy in policies]
    return roles


def deploy_functions(aws, settings: Settings, template, lambda_map: Path) -> dict:
    """One function per AWS::Lambda::Function, each run by the emulator from its executable; returns
    {function name: ARN}."""
    bin_dir = Path(settings.bin_dir) if settings.bin_dir else target_dir() / "debug"
    awslambda = aws.client("lambda")
    made, mapping = {}, {}
    for step, logical_id in functions_of(template.template).items():
        properties = template.properties(logical_id)
        function_name = properties["FunctionName"]
        program = executable(bin_dir, properties)
        if not os.access(program, os.X_OK):
            raise RuntimeError(f"{program} is missing: build it first (cargo build --workspace --bins)")
        variables = {"RUST_LOG": "info", **properties.get("Environment", {}).get("Variables", {}),
                     **settings.lambda_environment, **settings.function_environment.get(step, {})}
        if settings.lambda_endpoint:
            variables["AWS_ENDPOINT_URL"] = settings.lambda_endpoint
        try:
            awslambda.delete_function(FunctionName=function_name)
        except awslambda.exceptions.ResourceNotFoundException:
            pass
        arn = awslambda.create_function(
            FunctionName=function_name, Runtime=properties["Runtime"], Role=properties["Role"],
            Handler=properties["Handler"], Code={"ZipFile": minimal_zip()}, Timeout=properties["Timeout"],
            MemorySize=properties["MemorySize"], Environment={"Variables": variables},
        )["FunctionArn"]
        made[function_name] = arn
        mapping[function_name] = str(program)
    update_lambda_map(lambda_map, mapping)
    return made


def put_state_machine(sfn, name: str, definition: dict, role_arn: str) -> str:
    existing = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name]
    if existing:  # CreateStateMachine with an existing name keeps the old definition in moto
        sfn.update_state_machine(stateMachineArn=existing[0], definition=json.dumps(definition), roleArn=role_arn)
        return existing[0]
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn)["stateMachineArn"]


def job_environment(settings: Settings) -> list:
    """The environment of the worker's jobs: what only a local run needs."""
    environment = {"RUST_LOG": "info", **settings.job_environment}
    if settings.job_endpoint:
        environment["AWS_ENDPOINT_URL"] = settings.job_endpoint
    return [{"name": k, "value": v} for k, v in environment.items()]


def job_settings(settings: Settings, logical_id: str) -> tuple[int, str]:
    """A job definition's timeout and job role, as the template renders them for these settings."""
    template = Template.load().stack(settings.name, REGION, ACCOUNT, template_parameters(settings, {}), {})
    properties = template.resource(logical_id)["Properties"]
    timeout = template.render(properties["Timeout"])["AttemptDurationSeconds"]
    return int(timeout), template.render(properties["ContainerProperties"]["JobRoleArn"])


def register_flow_job_definition(aws, settings: Settings, logical_id: str, job_definition: str, command: list) -> None:
    """A job definition of a flow (emulator/flows/) with the production command and the template's timeout and
    job role for `logical_id`: jobs that need no instance or device of the test's."""
    timeout, role = job_settings(settings, logical_id)
    aws.client("batch").register_job_definition(
        jobDefinitionName=job_definition, type="container", timeout={"attemptDurationSeconds": timeout},
        containerProperties={
            "image": "backup-archiver-worker", "command": command, "jobRoleArn": role,
            "environment": job_environment(settings),
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}],
        },
    )


def register_job_definition(aws, settings: Settings, job_definition: str, instance_id: str,
                            timeout_seconds: int | None = None) -> str:
    """A new revision of the worker's job definition with the template's timeout (or `timeout_seconds`) and job
    role (the state machine names it without a revision, so the latest applies). Returns its ARN."""
    timeout, role = job_settings(settings, "WorkerJobDefinition")
    return aws.client("batch").register_job_definition(
        jobDefinitionName=job_definition, type="container",
        timeout={"attemptDurationSeconds": timeout_seconds or timeout},
        containerProperties={
            "image": "backup-archiver-worker",
            "jobRoleArn": role,
            # The same arguments as infra's job definition, plus what only a local run needs.
            "command": ["batch-worker", "--volume-id", "Ref::volume_id", "--to", "Ref::destination",
                        "--snapshot-id", "Ref::snapshot_id", "--mode", "Ref::mode",
                        "--instance-id", instance_id, "--device", settings.device, "--wait-seconds", "30"],
            "environment": job_environment(settings),
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
