"""Evaluates the calls the router recorded (emulator/calls.py) against the policies of the roles that made them
(infra/template.yaml rendered by emulator/deploy.py), with a real IAM policy evaluator:
@cloud-copilot/iam-simulate (Allow/Deny, wildcards, NotAction/NotResource, every condition operator and
IfExists, multi-valued keys), run by Node from emulator/iam/evaluate.cjs. scripts/setup installs it, pinned by
emulator/iam/package.json, into $BA_HOME/iam-node; nothing is fetched at test time.

    findings = evaluate(calls, roles, resource_policies)   # {role ARN: [policies]}, {ARN: policy}
    print(*findings, sep="\n")                             # role, call, action, resource, statements

Evaluated: the role's identity policies, and the resource policies the template gives: the archive bucket's
(for every S3 call on it) and the archive key's (every KMS action on it; a key without a policy in the template,
such as an AWS managed key, gets KMS's default key policy, which leaves access to IAM). Not evaluated: the
resource policies of topics and queues, permission boundaries, SCPs and session policies (the deployment has
none of the last three); see docs/architecture.md. Every request is taken as made over TLS 1.3, as the SDKs
make them in AWS (aws:SecureTransport, s3:TlsVersion), not as the emulator's plain HTTP.
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

EVALUATOR = Path(__file__).resolve().parent / "iam" / "evaluate.cjs"
# The evaluator's answer for 19 functions' calls of one flow takes about a second; a minute means it hangs.
EVALUATOR_TIMEOUT_SECONDS = 120


def node_modules() -> Path:
    """Where scripts/setup installed the evaluator (BA_IAM_NODE, else $BA_HOME/iam-node)."""
    home = os.environ.get("BA_IAM_NODE")
    if not home:
        home = str(Path(os.environ.get("BA_HOME", "/var/cache/backup-archiver")) / "iam-node")
    return Path(home) / "node_modules"


@dataclass
class Finding:
    """A recorded call that AWS would not allow, or that could not be evaluated."""
    role: str
    call: str
    action: str
    resource: str
    reason: str

    def __str__(self) -> str:
        return f"{self.role} {self.call}: {self.action} on {self.resource}: {self.reason}"


# iam-simulate 0.1.173 knows variable context keys only after a `/` (aws:RequestTag/${TagKey}): it drops
# `kms:EncryptionContext:${Key}` from a request as not applicable, so a policy condition on it never holds. Both
# the policies and the requests name it under a `/` key instead (same operator, values and absence semantics).
ENCRYPTION_CONTEXT = re.compile(r"^kms:EncryptionContext:(.+)$", re.IGNORECASE)
ENCRYPTION_CONTEXT_STAND_IN = "aws:RequestTag/kms:EncryptionContext:{}"


def with_encryption_context_stand_in(document):
    if isinstance(document, list):
        return [with_encryption_context_stand_in(item) for item in document]
    if not isinstance(document, dict):
        return document
    renamed = {}
    for key, value in document.items():
        match = ENCRYPTION_CONTEXT.match(key)
        renamed[ENCRYPTION_CONTEXT_STAND_IN.format(match.group(1)) if match else key] = \
            with_encryption_context_stand_in(value)
    return renamed


# iam-simulate 0.1.173 evaluates AWS Backup's recovery point actions only on the resource type the Service
# Authorization Reference lists, `arn:…:backup:…:recovery-point:…`, and refuses ("no.resource.types") the ARN AWS
# Backup gives an EBS recovery point, its snapshot's, on which AWS authorizes them (so policies name
# `arn:…:ec2:…::snapshot/…`). Such a check, and every Resource or NotResource naming snapshots, are evaluated
# under a stand-in recovery-point ARN whose account field says "snapshot": no policy's own recovery-point pattern,
# which names an account, matches it; only one naming any account (`recovery-point` in `arn:…:*:recovery-point:*`)
# would, where AWS would not.
SNAPSHOT = re.compile(r"^arn:([^:]*):ec2:([^:]*)::snapshot/(.*)$")
SNAPSHOT_STAND_IN = r"arn:\1:backup:\2:ec2-snapshot:recovery-point:\3"


def with_snapshot_stand_in(policy):
    """`policy` with the stand-in of each snapshot pattern of its statements' Resource and NotResource added."""
    statements = policy.get("Statement", [])
    renamed = []
    for statement in statements if isinstance(statements, list) else [statements]:
        statement = dict(statement)
        for field in ("Resource", "NotResource"):
            if field in statement:
                patterns = statement[field] if isinstance(statement[field], list) else [statement[field]]
                stand_ins = [SNAPSHOT.sub(SNAPSHOT_STAND_IN, p) for p in patterns if SNAPSHOT.match(p)]
                statement[field] = patterns + stand_ins
        renamed.append(statement)
    return {**policy, "Statement": renamed}


def default_key_policy(account: str) -> dict:
    """KMS's default key policy: the account's IAM policies decide.
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html"""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*", "Resource": "*"}]}


def resource_policy_of(check: dict, resource_policies: dict) -> str | None:
    """The ARN under which `resource_policies` holds the policy of the check's resource, if it has one."""
    resource = check["resource"]
    if check["action"].startswith("kms:"):
        # A key without a policy of its own has KMS's default one, which trusts its own account's IAM.
        return resource if resource in resource_policies else f"(default key policy of {resource.split(':')[4]})"
    if check["action"].startswith("s3:"):
        bucket = "arn:aws:s3:::" + resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        return bucket if bucket in resource_policies else None
    return resource if resource in resource_policies else None


def evaluate(calls: list[dict], roles: dict, resource_policies: dict) -> list[Finding]:
    """Every denial (implicit or explicit) and every unreadable call among `calls`."""
    findings, checks, origins = [], [], []
    for call in calls:
        if call.get("error"):
            findings.append(Finding(call["role"], call["call"], "?", "?", call["error"]))
            continue
        if call["role"] not in roles:
            findings.append(Finding(call["role"], call["call"], "?", "?", "a role that no deployed stack holds"))
            continue
        for check in call["checks"]:
            context = {"aws:SecureTransport": "true", **check["context"]}
            if check["action"].startswith("s3:"):
                context["s3:TlsVersion"] = "1.3"
            resource = check["resource"]
            if check["action"].startswith("backup:"):
                resource = SNAPSHOT.sub(SNAPSHOT_STAND_IN, resource)
            checks.append({"role": call["role"], **check, "resource": resource, "context": context,
                           "resource_policy": resource_policy_of(check, resource_policies)})
            origins.append(call)
    if not checks:
        return findings
    modules = node_modules()
    if not (modules / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError(f"the IAM evaluator is not installed in {modules}: run scripts/setup")
    defaults = {check["resource_policy"] for check in checks
                if (check["resource_policy"] or "").startswith("(default key policy of ")}
    policies = {**resource_policies, **{name: default_key_policy(name.removeprefix("(default key policy of ")[:-1])
                                        for name in defaults}}
    roles = {role: [with_snapshot_stand_in(policy) for policy in documents] for role, documents in roles.items()}
    document = with_encryption_context_stand_in({"policies": roles, "resource_policies": policies, "checks": checks})
    result = subprocess.run(["node", str(EVALUATOR)], input=json.dumps(document),
                            capture_output=True, text=True, timeout=EVALUATOR_TIMEOUT_SECONDS,
                            env={**os.environ, "NODE_PATH": str(modules)})
    if result.returncode != 0:
        raise RuntimeError(f"the IAM evaluator failed: {result.stderr.strip()}")
    for check, call, answer in zip(checks, origins, json.loads(result.stdout)):
        if answer["result"] == "Allowed":
            continue
        if answer["result"] == "ExplicitlyDenied":
            reason = f"explicitly denied by {', '.join(answer['denied_by'])}"
        elif answer["result"] == "ImplicitlyDenied" and answer["identity"] == "Allowed":
            reason = f"the resource policy of {check['resource_policy']} does not allow it ({answer['resource']})"
        elif answer["result"] == "ImplicitlyDenied":
            nearest = "; ".join(answer["nearest"]) or "no statement allows the action"
            reason = f"no statement allows it ({nearest})"
        else:
            reason = f"cannot be evaluated: {answer.get('error')}"
        reason += f"; request context {json.dumps(check['context'], sort_keys=True)}"
        findings.append(Finding(call["role"], call["call"], check["action"], check["resource"], reason))
    return findings


def approximations(calls: list[dict]) -> list[str]:
    """What the evaluation of these calls leaves out, one line per distinct call and reason."""
    return sorted({f"{call['call']}: {call['approximate']}" for call in calls if call.get("approximate")})
