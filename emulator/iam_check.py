"""Evaluates the calls the router recorded (emulator/calls.py) against the policies of the roles that made them
(infra/template.yaml rendered by emulator/deploy.py), with a real IAM policy evaluator:
@cloud-copilot/iam-simulate (Allow/Deny, wildcards, NotAction/NotResource, every condition operator and
IfExists, multi-valued keys), run by Node from emulator/iam/evaluate.cjs. scripts/setup installs it, pinned by
emulator/iam/package.json, into $BA_HOME/iam-node; nothing is fetched at test time.

    findings = evaluate(calls, roles)   # roles: {role ARN: [policy documents]}
    report(findings)                    # one line per denied call, naming role, action, resource, statements

Only identity policies are evaluated: no resource policies (bucket, key, topic, queue policies), permission
boundaries, SCPs or session policies (the deployment has none of the latter three; see docs/architecture.md).
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

EVALUATOR = Path(__file__).resolve().parent / "iam" / "evaluate.cjs"
# The evaluator's answer for 19 functions' calls of one flow takes about a second; a minute means it hangs.
EVALUATOR_TIMEOUT_SECONDS = 120


def node_modules() -> Path:
    """Where scripts/setup installed the evaluator (BA_IAM_NODE, else $BA_HOME/iam-node)."""
    home = os.environ.get("BA_IAM_NODE") or str(Path(os.environ.get("BA_HOME", "/var/cache/backup-archiver")) / "iam-node")
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


def evaluate(calls: list[dict], roles: dict) -> list[Finding]:
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
            checks.append({"role": call["role"], **check})
            origins.append(call)
    if not checks:
        return findings
    modules = node_modules()
    if not (modules / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError(f"the IAM evaluator is not installed in {modules}: run scripts/setup")
    result = subprocess.run(["node", str(EVALUATOR)], input=json.dumps({"policies": roles, "checks": checks}),
                            capture_output=True, text=True, timeout=EVALUATOR_TIMEOUT_SECONDS,
                            env={**os.environ, "NODE_PATH": str(modules)})
    if result.returncode != 0:
        raise RuntimeError(f"the IAM evaluator failed: {result.stderr.strip()}")
    for check, call, answer in zip(checks, origins, json.loads(result.stdout)):
        if answer["result"] == "Allowed":
            continue
        if answer["result"] == "ExplicitlyDenied":
            reason = f"explicitly denied by {', '.join(answer['denied_by'])}"
        elif answer["result"] == "ImplicitlyDenied":
            nearest = "; ".join(answer["nearest"]) or "no statement allows the action"
            reason = f"no statement allows it ({nearest})"
        else:
            reason = f"cannot be evaluated: {answer.get('error')}"
        if check["context"]:
            reason += f"; request context {json.dumps(check['context'], sort_keys=True)}"
        findings.append(Finding(call["role"], call["call"], check["action"], check["resource"], reason))
    return findings


def approximations(calls: list[dict]) -> list[str]:
    """What the evaluation of these calls leaves out, one line per distinct call and reason."""
    return sorted({f"{call['call']}: {call['approximate']}" for call in calls if call.get("approximate")})
