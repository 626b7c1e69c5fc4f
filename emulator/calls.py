"""The call recorder: every AWS API call that reaches the router signed by one of the emulator's identities
(emulator/identity.py) becomes one or more IAM authorization requests, as AWS would evaluate them: the role,
the action, each resource ARN the action is authorized on, and the request context (aws:ResourceTag/* read
from the emulator's state at call time, aws:RequestTag/* and aws:TagKeys of creates, iam:PassedToService of
passed roles, ec2:CreateAction, s3:prefix, kms:ViaService of the calls a service makes on the caller's behalf).
emulator/iam_check.py evaluates them after each flow test.

    recorder = Recorder(moto_port)
    recorder.record(method, path, headers, body)   # before the router forwards the call
    recorder.calls                                  # [{"role", "call", "checks": [...], "approximate": ...}]

An operation is found from the request as botocore's models describe it (X-Amz-Target, Action=, or the REST
method and path). Its resources come from RULES, one function per "service:Operation". A call for which
RULES has no entry is recorded with an `error`, which fails the test: every call the project makes must be
understood. Where AWS evaluates a resource the request does not name (the default option and parameter groups
of an RDS restore), the call's `approximate` says what is left out; iam_check lists those.
"""

import json
import re
import threading
import urllib.parse

import boto3
import botocore.session
from botocore.config import Config

from emulator import identity

TAG_PREFIX = "aws:ResourceTag/"
# The placeholder id of a resource a create call makes: AWS authorizes the new resource's ARN before it has an
# id, and a policy names such resources with a wildcard (volume/*).
NEW = "(new)"
# Signing names that differ from botocore's service names.
SERVICE_NAMES = {"states": "stepfunctions"}


class Check(dict):
    """One authorization request: {"action", "resource", "context"}."""

    def __init__(self, action: str, resource: str, context: dict | None = None):
        super().__init__(action=action, resource=resource, context=context or {})


# ---------------------------------------------------------------------------------------------------------------
# The operation and its parameters, from botocore's models.

_session = botocore.session.get_session()
_models: dict = {}


def model(service: str):
    if service not in _models:
        _models[service] = _session.get_service_model(SERVICE_NAMES.get(service, service))
    return _models[service]


def uri_pattern(request_uri: str) -> tuple[re.Pattern, list[str]]:
    """`/{Bucket}/{Key+}?uploads` -> (a regex of the path with one group per label, the literal query keys)."""
    path, _, query = request_uri.partition("?")
    # `/backup-jobs/` is also called as `/backup-jobs` (the Rust SDK drops the slash): the slash is optional below.
    regex = re.sub(r"\\\{([A-Za-z0-9_]+)(\\\+)?\\\}",
                   lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})", re.escape(path.rstrip("/")))
    literals = [item for item in query.split("&") if item]
    return re.compile(f"^{regex}/?$"), literals


def rest_operation(service_model, method: str, path: str, query: dict, headers) -> tuple[str, dict] | None:
    """The REST operation of `method path?query`: of those whose path matches and whose literal query keys and
    required query and header members are present, the one that requires the most."""
    best, best_score, best_labels = None, -1, {}
    for name in service_model.operation_names:
        operation = service_model.operation_model(name)
        if operation.http.get("method") != method:
            continue
        regex, literals = uri_pattern(operation.http["requestUri"])
        match = regex.match(path)
        if not match:
            continue
        needed = []
        for literal in literals:
            key, _, value = literal.partition("=")
            needed.append(key in query and (not value or query[key] == value))
        shape = operation.input_shape
        for member in (shape.required_members if shape else []):
            serialization = shape.members[member].serialization
            if serialization.get("location") == "querystring":
                needed.append(serialization["name"] in query)
            elif serialization.get("location") == "header":
                needed.append(serialization["name"].lower() in {h.lower() for h in headers.keys()})
        if not all(needed):
            continue
        if len(needed) > best_score:
            best, best_score, best_labels = operation, len(needed), match.groupdict()
    if best is None:
        return None
    params = {}
    for member, member_shape in (best.input_shape.members.items() if best.input_shape else []):
        serialization = member_shape.serialization
        location, wire = serialization.get("location"), serialization.get("name", member)
        if location == "uri" and wire in best_labels:
            params[member] = urllib.parse.unquote(best_labels[wire])
        elif location == "querystring" and wire in query:
            params[member] = query[wire]
        elif location == "header" and headers.get(wire) is not None:
            params[member] = headers.get(wire)
    return best.name, params


def operation(service: str, method: str, path: str, headers, body: bytes) -> tuple[str, dict]:
    """(operation name, parameters) of a request to `service`; LookupError if the models know no such one."""
    service_model = model(service)
    protocol = service_model.protocol
    raw_path, _, raw_query = path.partition("?")
    query = {k: v[0] for k, v in urllib.parse.parse_qs(raw_query, keep_blank_values=True).items()}
    target = headers.get("X-Amz-Target")
    if target:  # the JSON protocol (and query services that moved to it: SQS)
        return target.rsplit(".", 1)[-1], json.loads(body or b"{}")
    if protocol in ("query", "ec2"):
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        params.update(query)
        return params.get("Action", ""), params
    # Matched still encoded, as the labels are sent: a label may hold a `/` (a recovery point's snapshot ARN).
    found = rest_operation(service_model, method, raw_path, query, headers)
    if found is None:
        raise LookupError(f"{service}: no operation for {method} {path}")
    name, params = found
    if protocol == "rest-json" and body:
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        if isinstance(document, dict):
            params.update(document)
    return name, params


# ---------------------------------------------------------------------------------------------------------------
# Tags, as the emulator holds them at call time.

class Tags:
    """Reads resources' tags and encryption settings from moto directly (not through the router: these reads are
    not anyone's calls)."""

    def __init__(self, moto_port: int, region: str, account: str, bucket_keys: dict):
        self.bucket_keys = bucket_keys  # {bucket: default KMS key or None}, the recorder's: it does not change
        config = Config(retries={"max_attempts": 1})
        self.client = lambda service: identity.in_account(boto3.client(  # noqa: E731
            service, region_name=region, endpoint_url=f"http://127.0.0.1:{moto_port}", aws_access_key_id="test",
            aws_secret_access_key="test", config=config), account)

    def ec2(self, resource_id: str) -> dict:
        tags = self.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def rds(self, arn: str) -> dict:
        try:
            tags = self.client("rds").list_tags_for_resource(ResourceName=arn)["TagList"]
        except self.client("rds").exceptions.ClientError:
            return {}
        return {t["Key"]: t["Value"] for t in tags}

    def ssm(self, name: str) -> dict:
        ssm = self.client("ssm")
        try:
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
        except ssm.exceptions.ClientError:
            return {}
        return {t["Key"]: t["Value"] for t in tags}

    def dynamodb(self, arn: str) -> dict:
        dynamodb = self.client("dynamodb")
        try:
            tags = dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])
        except dynamodb.exceptions.ClientError:
            return {}
        return {t["Key"]: t["Value"] for t in tags}

    def bucket_key(self, bucket: str) -> str | None:
        """The KMS key of the bucket's default encryption (SSE-KMS), or None."""
        if bucket not in self.bucket_keys:
            s3 = self.client("s3")
            try:
                rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            except s3.exceptions.ClientError:
                rules = []
            defaults = [r["ApplyServerSideEncryptionByDefault"] for r in rules]
            self.bucket_keys[bucket] = next((d.get("KMSMasterKeyID") for d in defaults
                                             if d.get("SSEAlgorithm") == "aws:kms"), None)
        return self.bucket_keys[bucket]

    def topic_key(self, topic_arn: str) -> str | None:
        sns = self.client("sns")
        try:
            return sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("KmsMasterKeyId")
        except sns.exceptions.ClientError:
            return None

    def secure_string_key(self, name: str) -> str | None:
        """The KMS key of a SecureString parameter, or None if it is not one."""
        ssm = self.client("ssm")
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
        if not found or found[0]["Type"] != "SecureString":
            return None
        return found[0].get("KeyId", "alias/aws/ssm")

    def snapshot_key(self, snapshot_id: str) -> str | None:
        """The KMS key of an encrypted EBS snapshot, or None."""
        ec2 = self.client("ec2")
        try:
            snapshots = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        except ec2.exceptions.ClientError:
            return None
        return snapshots[0].get("KmsKeyId") if snapshots and snapshots[0].get("Encrypted") else None

    def volume_attachment(self, volume_id: str) -> str | None:
        """The instance a volume is attached to (DetachVolume may omit it)."""
        ec2 = self.client("ec2")
        try:
            volumes = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        except ec2.exceptions.ClientError:
            return None
        attachments = volumes[0].get("Attachments", []) if volumes else []
        return attachments[0]["InstanceId"] if attachments else None


def resource_tags(tags: dict) -> dict:
    return {f"{TAG_PREFIX}{key}": value for key, value in tags.items()}


def request_tags(tags: dict) -> dict:
    context = {f"aws:RequestTag/{key}": value for key, value in tags.items()}
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


def indexed_tags(params: dict, prefix: str) -> dict:
    """Tags of a query-protocol list: `<prefix>.<n>.Key` / `.Value`, with or without a member name between."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(?:[A-Za-z]+\.)?(\d+)\.Key$")
    tags = {}
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            tags[value] = params.get(key[:-len("Key")] + "Value", "")
    return tags


# ---------------------------------------------------------------------------------------------------------------
# RULES: "service:Operation" -> function(call) -> [Check] (and call.approximate). Each names the resources the
# Service Authorization Reference lists for the action, and the context keys the template's conditions use.

class Call:
    def __init__(self, service: str, name: str, params: dict, region: str, account: str, tags: Tags):
        self.service, self.name, self.params, self.region, self.account = service, name, params, region, account
        self.tags = tags
        self.approximate: str | None = None

    def arn(self, service: str, rest: str, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account if account else ''}:{rest}"

    def action(self) -> str:
        """The IAM action of the call: the signing name is the IAM prefix for every service RULES knows."""
        return f"{self.service}:{self.name}"


def anything(call: Call) -> list[Check]:
    """An action without resource-level permissions: AWS authorizes it on `*`."""
    return [Check(call.action(), "*")]


def volume(call: Call, volume_id: str) -> Check:
    return Check(call.action(), call.arn("ec2", f"volume/{volume_id}"), resource_tags(call.tags.ec2(volume_id)))


def instance(call: Call, instance_id: str) -> Check:
    return Check(call.action(), call.arn("ec2", f"instance/{instance_id}"), resource_tags(call.tags.ec2(instance_id)))


def ec2_create_volume(call: Call) -> list[Check]:
    p = call.params
    tags = {}
    for key, value in p.items():
        match = re.match(r"^TagSpecification\.(\d+)\.ResourceType$", key)
        if match and value == "volume":
            tags.update(indexed_tags(p, f"TagSpecification.{match.group(1)}.Tag"))
    new_volume = call.arn("ec2", f"volume/{NEW}")
    checks = [Check(call.action(), new_volume, request_tags(tags))]
    if p.get("SnapshotId"):
        snapshot = p["SnapshotId"]
        checks.append(Check(call.action(), call.arn("ec2", f"snapshot/{snapshot}", account=False),
                            resource_tags(call.tags.ec2(snapshot))))
    if tags:  # tags on create are authorized as CreateTags with the creating action
        checks.append(Check("ec2:CreateTags", new_volume, {**request_tags(tags), "ec2:CreateAction": "CreateVolume"}))
    return checks


def ec2_attach_volume(call: Call) -> list[Check]:
    return [volume(call, call.params["VolumeId"]), instance(call, call.params["InstanceId"])]


def ec2_detach_volume(call: Call) -> list[Check]:
    volume_id = call.params["VolumeId"]
    checks = [volume(call, volume_id)]
    instance_id = call.params.get("InstanceId") or call.tags.volume_attachment(volume_id)
    if instance_id:
        checks.append(instance(call, instance_id))
    return checks


def ebs_snapshot(call: Call) -> list[Check]:
    """The EBS direct APIs authorize on the snapshot (an EC2 ARN without an account), with its tags."""
    snapshot = call.params["SnapshotId"]
    return [Check(call.action(), call.arn("ec2", f"snapshot/{snapshot}", account=False),
                  resource_tags(call.tags.ec2(snapshot)))]


def ebs_get_block(call: Call) -> list[Check]:
    """GetSnapshotBlock of an encrypted snapshot: EBS decrypts the block with the caller's kms:Decrypt."""
    checks = ebs_snapshot(call)
    key = call.tags.snapshot_key(call.params["SnapshotId"])
    if key:
        checks += kms_via(call, "ebs", key, ["kms:Decrypt"])
    return checks


def rds_arn(call: Call, kind: str, identifier: str) -> str:
    return identifier if identifier.startswith("arn:") else call.arn("rds", f"{kind}:{identifier}")


def rds_resource(call: Call, kind: str, identifier: str) -> Check:
    arn = rds_arn(call, kind, identifier)
    return Check(call.action(), arn, resource_tags(call.tags.rds(arn)))


def rds_describe(kind: str, parameter: str):
    def rule(call: Call) -> list[Check]:
        identifier = call.params.get(parameter)
        if not identifier:  # a describe of all: AWS authorizes it on every resource of the kind
            return [Check(call.action(), call.arn("rds", f"{kind}:*"))]
        return [rds_resource(call, kind, identifier)]
    return rule


def rds_modify_or_delete(kind: str, parameter: str):
    return lambda call: [rds_resource(call, kind, call.params[parameter])]


def rds_create(call: Call, kind: str, identifier: str, sources: list[tuple[str, str]]) -> list[Check]:
    """A restore or create: the new database (request tags), what it is made from, its subnet group, and
    rds:AddTagsToResource for the tags given on create."""
    tags = indexed_tags(call.params, "Tags")
    new = call.arn("rds", f"{kind}:{identifier}")
    checks = [Check(call.action(), new, request_tags(tags))]
    for source_kind, source in sources:
        checks.append(rds_resource(call, source_kind, source))
    if call.params.get("DBSubnetGroupName"):
        checks.append(Check(call.action(), call.arn("rds", f"subgrp:{call.params['DBSubnetGroupName']}")))
    if tags:
        checks.append(Check("rds:AddTagsToResource", new, request_tags(tags)))
    call.approximate = ("the option and parameter groups the snapshot brings (og:*, pg:*, cluster-pg:*) are "
                        "authorized by AWS too and not evaluated here: the request does not name them")
    return checks


def rds_restore_instance(call: Call) -> list[Check]:
    p = call.params
    return rds_create(call, "db", p["DBInstanceIdentifier"], [("snapshot", p["DBSnapshotIdentifier"])])


def rds_restore_cluster(call: Call) -> list[Check]:
    p = call.params
    source = p["SnapshotIdentifier"]
    kind = "cluster-snapshot" if ":cluster-snapshot:" in source or not source.startswith("arn:") else "snapshot"
    return rds_create(call, "cluster", p["DBClusterIdentifier"], [(kind, source)])


def rds_create_instance(call: Call) -> list[Check]:
    p = call.params
    sources = [("cluster", p["DBClusterIdentifier"])] if p.get("DBClusterIdentifier") else []
    return rds_create(call, "db", p["DBInstanceIdentifier"], sources)


def key_arn(call: Call, key: str) -> str:
    """A KMS key id or ARN as the key's ARN; an alias (alias/aws/ssm, an AWS managed key whose id the
    emulator does not know) as a key ARN with the alias in place of the id, which a policy's key/* matches."""
    if key.startswith("arn:") and ":key/" in key:
        return key
    if key.startswith("alias/") or ":alias/" in key:
        call.approximate = f"the key behind {key} is named by a placeholder ARN (its id is not known here)"
        return call.arn("kms", f"key/({key.rsplit(':', 1)[-1]})")
    return call.arn("kms", f"key/{key}")


def kms_via(call: Call, service: str, key: str, actions: list[str], context: dict | None = None) -> list[Check]:
    """What `service` asks KMS with the caller's permissions when it encrypts or decrypts for the caller."""
    arn = key_arn(call, key)
    return [Check(action, arn, {**via(call, service), **(context or {})}) for action in actions]


def pass_role(role_arn: str, service: str) -> Check:
    return Check("iam:PassRole", role_arn, {"iam:PassedToService": service})


def via(call: Call, service: str) -> dict:
    return {"kms:ViaService": f"{service}.{call.region}.amazonaws.com"}


def rds_start_export(call: Call) -> list[Check]:
    p = call.params
    checks = [Check(call.action(), p["SourceArn"]), pass_role(p["IamRoleArn"], "export.rds.amazonaws.com")]
    key = p["KmsKeyId"]
    key_arn = key if key.startswith("arn:") else call.arn("kms", f"key/{key}")
    checks += [Check("kms:CreateGrant", key_arn, {**via(call, "rds"), "kms:GrantIsForAWSResource": "true"}),
               Check("kms:DescribeKey", key_arn, via(call, "rds"))]
    return checks


# The KMS actions S3 performs with the caller's permissions on an SSE-KMS object, per operation.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms
S3_KMS_ACTIONS = {
    "PutObject": ["kms:GenerateDataKey"], "CreateMultipartUpload": ["kms:GenerateDataKey", "kms:Decrypt"],
    "UploadPart": ["kms:GenerateDataKey", "kms:Decrypt"], "GetObject": ["kms:Decrypt"],
}


def s3_object(action: str):
    def rule(call: Call) -> list[Check]:
        p = call.params
        arn = f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"
        headers = {"s3:x-amz-server-side-encryption": p.get("ServerSideEncryption"),
                   "s3:x-amz-server-side-encryption-aws-kms-key-id": p.get("SSEKMSKeyId")}
        checks = [Check(action, arn, {key: value for key, value in headers.items() if value})]
        if p.get("Tagging"):  # tags given with the object need their own permission
            checks.append(Check("s3:PutObjectTagging", arn))
        key = p.get("SSEKMSKeyId") or call.tags.bucket_key(p["Bucket"])
        if key and call.name in S3_KMS_ACTIONS:
            checks += kms_via(call, "s3", key, S3_KMS_ACTIONS[call.name])
        return checks
    return rule


def s3_list(call: Call) -> list[Check]:
    p = call.params
    context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
    return [Check("s3:ListBucket", f"arn:aws:s3:::{p['Bucket']}", context)]


def ssm_parameter(call: Call, name: str) -> str:
    return call.arn("ssm", f"parameter{name}" if name.startswith("/") else f"parameter/{name}")


def ssm_existing(call: Call) -> list[Check]:
    name = call.params["Name"]
    arn = ssm_parameter(call, name)
    checks = [Check(call.action(), arn, resource_tags(call.tags.ssm(name)))]
    key = call.tags.secure_string_key(name) if call.params.get("WithDecryption") else None
    if key:  # SSM decrypts a SecureString with the caller's permissions, naming the parameter
        checks += kms_via(call, "ssm", key, ["kms:Decrypt"], {"kms:EncryptionContext:PARAMETER_ARN": arn})
    return checks


def ssm_put(call: Call) -> list[Check]:
    p = call.params
    tags = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
    arn = ssm_parameter(call, p["Name"])
    checks = [Check(call.action(), arn, request_tags(tags))]
    if tags:
        checks.append(Check("ssm:AddTagsToResource", arn, request_tags(tags)))
    if p.get("Type") == "SecureString":
        checks += kms_via(call, "ssm", p.get("KeyId", "alias/aws/ssm"), ["kms:Encrypt"],
                          {"kms:EncryptionContext:PARAMETER_ARN": arn})
    return checks


def table_arn(call: Call, name: str) -> str:
    return name if name.startswith("arn:") else call.arn("dynamodb", f"table/{name}")


def dynamodb_table(parameter: str):
    def rule(call: Call) -> list[Check]:
        arn = table_arn(call, call.params[parameter])
        return [Check(call.action(), arn, resource_tags(call.tags.dynamodb(arn)))]
    return rule


def dynamodb_tag(call: Call) -> list[Check]:
    arn = call.params["ResourceArn"]
    tags = {t["Key"]: t["Value"] for t in call.params.get("Tags", [])}
    return [Check(call.action(), arn, {**request_tags(tags), **resource_tags(call.tags.dynamodb(arn))})]


def dynamodb_restore(call: Call) -> list[Check]:
    p = call.params
    return [Check(call.action(), p["BackupArn"]), Check(call.action(), table_arn(call, p["TargetTableName"]))]


def dynamodb_export(call: Call) -> list[Check]:
    """ExportTableToPointInTime, and the objects DynamoDB writes with the caller's permissions."""
    p = call.params
    prefix = p.get("S3Prefix", "").strip("/")
    key = f"{prefix}/AWSDynamoDB/{NEW}/manifest-summary.json" if prefix else f"AWSDynamoDB/{NEW}/manifest-summary.json"
    checks = [Check(call.action(), p["TableArn"]), Check("s3:PutObject", f"arn:aws:s3:::{p['S3Bucket']}/{key}")]
    bucket_key = p.get("S3SseKmsKeyId") or call.tags.bucket_key(p["S3Bucket"])
    if bucket_key:
        checks += kms_via(call, "s3", bucket_key, ["kms:GenerateDataKey"])
    return checks


def sns_publish(call: Call) -> list[Check]:
    topic = call.params["TopicArn"]
    checks = [Check(call.action(), topic)]
    key = call.tags.topic_key(topic)
    if key:  # SNS encrypts the message with the publisher's permissions
        checks += kms_via(call, "sns", key, ["kms:GenerateDataKey", "kms:Decrypt"])
    return checks


def sqs_queue(call: Call) -> list[Check]:
    """SQS names a queue by URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME); IAM by its ARN."""
    account, name = call.params["QueueUrl"].rstrip("/").split("/")[-2:]
    return [Check(call.action(), f"arn:aws:sqs:{call.region}:{account}:{name}")]


def param(name: str):
    return lambda call: [Check(call.action(), call.params[name])]


def recovery_point(call: Call) -> list[Check]:
    arn = call.params["RecoveryPointArn"]
    tags = {}
    if ":snapshot/" in arn:  # an EBS recovery point is its snapshot
        tags = call.tags.ec2(arn.rsplit("/", 1)[1])
    else:
        call.approximate = "the tags of an AWS Backup recovery point that is not an EBS snapshot are not read"
    return [Check(call.action(), arn, resource_tags(tags))]


def backup_restore(call: Call) -> list[Check]:
    p = call.params
    return [Check(call.action(), p["RecoveryPointArn"]), pass_role(p["IamRoleArn"], "backup.amazonaws.com")]


def backup_start_copy(call: Call) -> list[Check]:
    """AWS authorizes StartCopyJob on the source recovery point, and the copy role's iam:PassRole to AWS Backup."""
    return recovery_point(call) + [pass_role(call.params["IamRoleArn"], "backup.amazonaws.com")]


def lambda_invoke(call: Call) -> list[Check]:
    name = call.params["FunctionName"]
    arn = name if name.startswith("arn:") else call.arn("lambda", f"function:{name}")
    return [Check("lambda:InvokeFunction", arn)]


def snapshot(call: Call, snapshot_id: str) -> Check:
    """An EBS snapshot: its ARN names no account."""
    return Check(call.action(), call.arn("ec2", f"snapshot/{snapshot_id}", account=False),
                 resource_tags(call.tags.ec2(snapshot_id)))


def ebs_start_snapshot(call: Call) -> list[Check]:
    """StartSnapshot: on the new snapshot with its request tags; tags on create are authorized as ec2:CreateTags
    too (the Service Authorization Reference lists it as StartSnapshot's dependent action)."""
    tags = {tag["Key"]: tag["Value"] for tag in call.params.get("Tags", [])}
    new_snapshot = call.arn("ec2", f"snapshot/{NEW}", account=False)
    checks = [Check(call.action(), new_snapshot, request_tags(tags))]
    if tags:
        checks.append(Check("ec2:CreateTags", new_snapshot, {**request_tags(tags), "ec2:CreateAction": "StartSnapshot"}))
    return checks


def batch_submit(call: Call) -> list[Check]:
    p = call.params
    definition, queue = p["jobDefinition"], p["jobQueue"]
    if not definition.startswith("arn:"):
        definition = call.arn("batch", f"job-definition/{definition}")
    if not queue.startswith("arn:"):
        queue = call.arn("batch", f"job-queue/{queue}")
    return [Check(call.action(), definition), Check(call.action(), queue)]


def batch_terminate(call: Call) -> list[Check]:
    return [Check(call.action(), call.arn("batch", f"job/{call.params['jobId']}"))]


RULES = {
    "ec2:DescribeVolumes": anything, "ec2:DescribeSnapshots": anything,
    "ec2:CreateVolume": ec2_create_volume, "ec2:AttachVolume": ec2_attach_volume,
    "ec2:DetachVolume": ec2_detach_volume, "ec2:DeleteVolume": lambda call: [volume(call, call.params["VolumeId"])],
    "ec2:DeleteSnapshot": lambda call: [snapshot(call, call.params["SnapshotId"])],
    "ebs:StartSnapshot": ebs_start_snapshot,
    "ebs:PutSnapshotBlock": lambda call: [snapshot(call, call.params["SnapshotId"])],
    "ebs:CompleteSnapshot": lambda call: [snapshot(call, call.params["SnapshotId"])],
    "ebs:ListSnapshotBlocks": ebs_snapshot, "ebs:GetSnapshotBlock": ebs_get_block,
    "rds:DescribeDBSnapshots": rds_describe("snapshot", "DBSnapshotIdentifier"),
    "rds:DescribeDBClusterSnapshots": rds_describe("cluster-snapshot", "DBClusterSnapshotIdentifier"),
    "rds:DescribeDBInstances": rds_describe("db", "DBInstanceIdentifier"),
    "rds:DescribeDBClusters": rds_describe("cluster", "DBClusterIdentifier"),
    "rds:RestoreDBInstanceFromDBSnapshot": rds_restore_instance,
    "rds:RestoreDBClusterFromSnapshot": rds_restore_cluster,
    "rds:CreateDBInstance": rds_create_instance,
    "rds:ModifyDBInstance": rds_modify_or_delete("db", "DBInstanceIdentifier"),
    "rds:ModifyDBCluster": rds_modify_or_delete("cluster", "DBClusterIdentifier"),
    "rds:DeleteDBInstance": rds_modify_or_delete("db", "DBInstanceIdentifier"),
    "rds:DeleteDBCluster": rds_modify_or_delete("cluster", "DBClusterIdentifier"),
    "rds:StartExportTask": rds_start_export, "rds:DescribeExportTasks": anything, "rds:CancelExportTask": anything,
    "s3:GetObject": s3_object("s3:GetObject"), "s3:HeadObject": s3_object("s3:GetObject"),
    "s3:PutObject": s3_object("s3:PutObject"), "s3:CreateMultipartUpload": s3_object("s3:PutObject"),
    "s3:UploadPart": s3_object("s3:PutObject"), "s3:CompleteMultipartUpload": s3_object("s3:PutObject"),
    "s3:AbortMultipartUpload": s3_object("s3:AbortMultipartUpload"), "s3:DeleteObject": s3_object("s3:DeleteObject"),
    "s3:ListObjectsV2": s3_list,
    "s3:HeadBucket": lambda call: [Check("s3:ListBucket", f"arn:aws:s3:::{call.params['Bucket']}")],
    "ssm:GetParameter": ssm_existing, "ssm:DeleteParameter": ssm_existing, "ssm:PutParameter": ssm_put,
    "dynamodb:DescribeTable": dynamodb_table("TableName"), "dynamodb:DeleteTable": dynamodb_table("TableName"),
    "dynamodb:DescribeContinuousBackups": dynamodb_table("TableName"),
    "dynamodb:UpdateContinuousBackups": dynamodb_table("TableName"),
    "dynamodb:TagResource": dynamodb_tag, "dynamodb:DescribeBackup": param("BackupArn"),
    "dynamodb:RestoreTableFromBackup": dynamodb_restore, "dynamodb:ExportTableToPointInTime": dynamodb_export,
    "dynamodb:DescribeExport": param("ExportArn"),
    "backup:DescribeRecoveryPoint": recovery_point, "backup:DeleteRecoveryPoint": recovery_point,
    "backup:StartRestoreJob": backup_restore, "backup:DescribeRestoreJob": anything,
    "backup:DescribeBackupJob": anything, "backup:DescribeCopyJob": anything,
    "backup:ListBackupJobs": anything, "backup:ListCopyJobs": anything, "backup:ListRestoreJobs": anything,
    "backup:StartCopyJob": backup_start_copy, "backup:UpdateRecoveryPointLifecycle": recovery_point,
    "sns:Publish": sns_publish,
    "sqs:SendMessage": sqs_queue,
    "lambda:Invoke": lambda_invoke,
    "batch:SubmitJob": batch_submit, "batch:DescribeJobs": anything, "batch:TerminateJob": batch_terminate,
    "states:StartExecution": param("stateMachineArn"),
}


# ---------------------------------------------------------------------------------------------------------------

class Recorder:
    """The calls recorded so far, in order; thread-safe (the router serves requests in threads)."""

    def __init__(self, moto_port: int):
        self.moto_port = moto_port
        self.bucket_keys: dict = {}
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def record(self, method: str, path: str, headers, body: bytes) -> None:
        authorization = headers.get("Authorization", "")
        match = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/", authorization)
        role = identity.role_of(match.group(1)) if match else None
        if role is None:  # a test's or an operator's own call: not one of the deployment's identities
            return
        region, service = match.group(2), match.group(3)
        entry = {"role": role, "call": f"{service} {method} {path.split('?', 1)[0]}", "checks": []}
        try:
            name, params = operation(service, method, path, headers, body)
            account = identity.account_of(role)  # where the router makes the call
            call = Call(service, name, params, region, account, Tags(self.moto_port, region, account, self.bucket_keys))
            entry["call"] = f"{service}:{name}"
            rule = RULES.get(f"{service}:{name}")
            if rule is None:
                entry["error"] = (f"no IAM rule for {service}:{name} in emulator/calls.py RULES: say which resources "
                                  f"AWS authorizes it on")
            else:
                entry["checks"] = rule(call)
                entry["approximate"] = call.approximate
        except Exception as error:  # noqa: BLE001 (recorded: it fails the test that made the call)
            entry["error"] = f"cannot read the call {method} {path}: {type(error).__name__}: {error}"
        with self.lock:
            self.calls.append(entry)

    def since(self, start: int) -> list[dict]:
        with self.lock:
            return self.calls[start:]
