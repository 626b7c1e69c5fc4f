"""Tests of infra/template.yaml against the repository it deploys, run by infra/check.

The template is written by hand (each role is least privilege for its one function), so these
tests keep it honest as the flows grow: it deploys exactly the state machines in
state-machines/ and one function per Lambda crate in lambdas/, every `${Placeholder}` of an ASL
file has a substitution and every substitution a placeholder, and the IAM invariants that a
security reviewer relies on hold (volume actions only on tagged volumes, PassRole only with
iam:PassedToService, no wildcard actions).

Runs with the standard library and cfn-lint's template decoder (it understands !Ref, !Sub, ...).
"""

import json
import re
import subprocess
import unittest
from pathlib import Path

from cfnlint.decode import decode

INFRA = Path(__file__).resolve().parents[1]
ROOT = INFRA.parent
TEMPLATE = INFRA / "template.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# The tag the flow puts on every temporary volume (core::flow TAG_MANAGED_BY, valued with the stack name), and
# the tag the compute environments put on the worker instances.
VOLUME_TAG = "backup-archiver:managed-by"
STACK_TAG = "backup-archiver:stack"
# Actions on temporary volumes that must be limited to the flow's own volumes and instances.
TAGGED_VOLUME_ACTIONS = {"ec2:attachvolume", "ec2:detachvolume", "ec2:deletevolume"}


def load_template():
    template, matches = decode(str(TEMPLATE))
    if matches:
        raise AssertionError(f"template does not parse: {matches}")
    return template


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def lambda_crates():
    """Package names of the workspace members under lambdas/ that have a binary target."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--manifest-path", str(ROOT / "Cargo.toml")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    prefix = str(ROOT / "lambdas") + "/"
    return {
        p["name"]
        for p in meta["packages"]
        if p["manifest_path"].startswith(prefix) and any("bin" in t["kind"] for t in p["targets"])
    }


def logical_id(crate):
    """Package lambda-delete-volume -> DeleteVolumeFunction: the template's naming rule."""
    name = crate.removeprefix("lambda-")
    return "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Function"


def statements(template, with_condition=False):
    """(role name, policy statement) for every inline policy of every IAM role; with
    `with_condition`, also the condition of a statement wrapped in !If [cond, statement, NoValue]."""
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                condition = None
                if isinstance(statement, dict) and list(statement) == ["Fn::If"]:
                    condition, statement = statement["Fn::If"][0], statement["Fn::If"][1]
                yield (name, statement, condition) if with_condition else (name, statement)


def as_list(value):
    return value if isinstance(value, list) else [value]


class StateMachines(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.machines = resources(self.template, "AWS::StepFunctions::StateMachine")

    def test_deploys_exactly_the_files_in_state_machines(self):
        deployed = {}
        for name, machine in self.machines.items():
            props = machine["Properties"]
            self.assertNotIn("Definition", props, f"{name}: the definition comes from its file")
            self.assertNotIn("DefinitionString", props, f"{name}: the definition comes from its file")
            location = props.get("DefinitionS3Location")
            self.assertIsInstance(location, str, f"{name}: DefinitionS3Location must be a local path for `package`")
            deployed[(INFRA / location).resolve()] = name
        files = {p.resolve() for p in (ROOT / "state-machines").glob("*.asl.json")}
        self.assertEqual(
            set(deployed),
            files,
            "template and state-machines/ disagree: add or remove an AWS::StepFunctions::StateMachine",
        )
        self.assertEqual(len(deployed), len(self.machines), "two state machines deploy the same file")

    def test_every_placeholder_has_a_substitution_and_every_substitution_a_placeholder(self):
        for name, machine in self.machines.items():
            props = machine["Properties"]
            path = (INFRA / props["DefinitionS3Location"]).resolve()
            if not path.exists():
                self.fail(f"{name}: {path} does not exist")
            text = path.read_text()
            used = set(PLACEHOLDER.findall(text))
            given = set(props.get("DefinitionSubstitutions", {}))
            self.assertEqual(used - given, set(), f"{name}: placeholders without a substitution")
            self.assertEqual(given - used, set(), f"{name}: substitutions no placeholder uses")

    def test_definitions_are_json(self):
        for path in (ROOT / "state-machines").glob("*.asl.json"):
            json.loads(path.read_text())

    def test_state_machines_log_to_an_encrypted_log_group(self):
        groups = resources(self.template, "AWS::Logs::LogGroup")
        for name, machine in self.machines.items():
            logging = machine["Properties"]["LoggingConfiguration"]
            group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
            self.assertIn("KmsKeyId", groups[group]["Properties"], name)
            self.assertIn("RetentionInDays", groups[group]["Properties"], name)


class Triggers(unittest.TestCase):
    """The rules match the project's own patterns, state-machines/events/*.json (the ones the local
    emulator uses), apart from the vault field, which the template fills from VaultNames."""

    RULES = {"backup-job-completed.json": "BackupJobRule", "copy-job-completed.json": "CopyJobRule"}
    VAULT_FIELDS = {"backupVaultName", "destinationBackupVaultArn"}

    def test_rules_use_the_projects_event_patterns(self):
        template = load_template()
        events = ROOT / "state-machines" / "events"
        if not events.is_dir():
            self.skipTest("no state-machines/events/ yet")
        for file, rule in self.RULES.items():
            project = json.loads((events / file).read_text())
            ours = template["Resources"][rule]["Properties"]["EventPattern"]
            self.assertEqual(ours["source"], project["source"], rule)
            self.assertEqual(ours["detail-type"], project["detail-type"], rule)
            strip = lambda detail: {k: v for k, v in detail.items() if k not in self.VAULT_FIELDS}
            self.assertEqual(strip(ours["detail"]), strip(project["detail"]), rule)
            self.assertEqual(set(ours["detail"]) & self.VAULT_FIELDS, set(project["detail"]) & self.VAULT_FIELDS, rule)


class Functions(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.functions = resources(self.template, "AWS::Lambda::Function")

    def test_one_function_per_lambda_crate(self):
        crates = lambda_crates()
        expected = {logical_id(c): c for c in crates}
        self.assertEqual(set(self.functions), set(expected), "template and lambdas/ disagree")
        for name, crate in expected.items():
            self.assertEqual(self.functions[name]["Properties"]["Code"], f".build/lambdas/{crate}.zip", name)

    def test_functions_run_on_provided_al2023_x86_64(self):
        for name, function in self.functions.items():
            props = function["Properties"]
            self.assertEqual(props["Runtime"], "provided.al2023", name)
            self.assertEqual(props["Architectures"], ["x86_64"], name)
            self.assertEqual(props["Handler"], "bootstrap", name)

    def test_each_function_has_its_own_role_and_log_group(self):
        roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in self.functions.values()]
        self.assertEqual(len(roles), len(set(roles)), "functions share a role")
        groups = resources(self.template, "AWS::Logs::LogGroup")
        for name, function in self.functions.items():
            group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            self.assertIn("KmsKeyId", groups[group]["Properties"], name)


class Iam(unittest.TestCase):
    def setUp(self):
        self.template = load_template()

    def test_volume_actions_require_our_tags(self):
        checked = 0
        for role, statement in statements(self.template):
            actions = {a.lower() for a in as_list(statement["Action"])}
            resources_ = json.dumps(statement["Resource"])
            condition = statement.get("Condition", {}).get("StringEquals", {})
            if actions & TAGGED_VOLUME_ACTIONS:
                checked += 1
                self.assertNotEqual(statement["Resource"], "*", role)
                if "volume/" in resources_:
                    self.assertEqual(condition.get(f"aws:ResourceTag/{VOLUME_TAG}"), {"Ref": "AWS::StackName"},
                                     f"{role}: {sorted(actions)} on volumes of this stack only")
                if "instance/" in resources_:
                    self.assertIn(f"aws:ResourceTag/{STACK_TAG}", condition, f"{role}: {sorted(actions)}")
                self.assertFalse("volume/" in resources_ and "instance/" in resources_, f"{role}: one tag per resource type")
            if "ec2:createvolume" in actions and "volume/" in resources_:
                checked += 1
                self.assertEqual(condition.get(f"aws:RequestTag/{VOLUME_TAG}"), {"Ref": "AWS::StackName"},
                                 f"{role}: CreateVolume without the stack's tag")
        self.assertGreater(checked, 0)

    def test_instances_carry_the_stack_tag(self):
        for name, environment in resources(self.template, "AWS::Batch::ComputeEnvironment").items():
            self.assertIn(STACK_TAG, environment["Properties"]["ComputeResources"]["Tags"], name)

    def test_pass_role_names_the_service(self):
        for role, statement in statements(self.template):
            if "iam:passrole" in {a.lower() for a in as_list(statement["Action"])}:
                self.assertIn("iam:PassedToService", json.dumps(statement.get("Condition", {})), role)
                self.assertNotEqual(statement["Resource"], "*", role)

    def test_no_wildcard_actions(self):
        for role, statement in statements(self.template):
            for action in as_list(statement["Action"]):
                self.assertFalse(action == "*" or action.endswith(":*"), f"{role}: {action}")

    def test_delete_recovery_point_only_when_configured(self):
        found = False
        for role, statement, condition in statements(self.template, with_condition=True):
            if "backup:deleterecoverypoint" in {a.lower() for a in as_list(statement["Action"])}:
                found = True
                self.assertEqual(condition, "MayDeleteRecoveryPoints", f"{role}: granted even when not configured")
        self.assertTrue(found or not (ROOT / "lambdas" / "delete-recovery-point").exists(), "nobody may delete")


class Worker(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        (self.job,) = resources(self.template, "AWS::Batch::JobDefinition").values()

    def test_retries_spot_interruptions_and_nothing_else(self):
        rules = self.job["Properties"]["RetryStrategy"]["EvaluateOnExit"]
        self.assertEqual(rules[0], {"OnStatusReason": "Host EC2*", "Action": "RETRY"})
        self.assertEqual(rules[-1], {"OnReason": "*", "Action": "EXIT"})
        self.assertEqual(len(rules), 2)

    def test_privileged_with_host_dev_and_a_timeout(self):
        props = self.job["Properties"]
        container = props["ContainerProperties"]
        self.assertTrue(container["Privileged"])
        self.assertIn({"Name": "host-dev", "Host": {"SourcePath": "/dev"}}, container["Volumes"])
        self.assertIn("AttemptDurationSeconds", props["Timeout"])

    def test_command_uses_only_the_parameters_the_flow_passes(self):
        # core::flow JOB_PARAMETERS: what the ASL's SubmitJob passes; the job definition's own
        # Parameters are defaults. A Ref:: to anything else would reach the worker literally.
        flow = (ROOT / "core" / "src" / "flow.rs").read_text()
        match = re.search(r"pub const JOB_PARAMETERS: &\[&str\] = &\[([^\]]*)\]", flow)
        self.assertIsNotNone(match, "core::flow JOB_PARAMETERS not found")
        passed = set(re.findall(r'"([a-z_]+)"', match.group(1)))
        defaults = set(self.job["Properties"].get("Parameters", {}))
        command = self.job["Properties"]["ContainerProperties"]["Command"]
        refs = {arg.removeprefix("Ref::") for arg in command if arg.startswith("Ref::")}
        self.assertEqual(refs - passed - defaults, set())
        self.assertIn("volume_id", refs)

    def test_one_spot_queue_per_availability_zone(self):
        queues = resources(self.template, "AWS::Batch::JobQueue")
        environments = self.template["Resources"]
        for name, queue in queues.items():
            order = sorted(queue["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
            first = environments[order[0]["ComputeEnvironment"]["Ref"]]["Properties"]["ComputeResources"]
            second = environments[order[1]["ComputeEnvironment"]["Ref"]]["Properties"]["ComputeResources"]
            self.assertEqual((first["Type"], first["AllocationStrategy"]), ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED"), name)
            self.assertEqual(second["Type"], "EC2", name)
            self.assertEqual(len(first["Subnets"]), 1, f"{name}: one AZ per queue")


class Bucket(unittest.TestCase):
    def test_archive_bucket_and_key_survive_the_stack(self):
        template = load_template()
        for name in ("ArchiveBucket", "ArchiveKey"):
            self.assertEqual(template["Resources"][name]["DeletionPolicy"], "Retain", name)
            self.assertEqual(template["Resources"][name]["UpdateReplacePolicy"], "Retain", name)


class Parameters(unittest.TestCase):
    def test_example_parameters_name_template_parameters_and_every_required_one(self):
        template = load_template()
        params = template["Parameters"]
        example = json.loads((INFRA / "parameters.example.json").read_text())["Parameters"]
        self.assertEqual(set(example) - set(params), set(), "unknown parameters in parameters.example.json")
        required = {name for name, p in params.items() if "Default" not in p and name != "ImageTag"}
        self.assertEqual(required - set(example), set(), "required parameters missing from the example")
        for name, value in example.items():
            self.assertIsInstance(value, str, f"{name}: CloudFormation parameter values are strings")


if __name__ == "__main__":
    unittest.main()
