"""infra/deploy and infra/teardown, run as a user runs them, against the local emulated AWS.

    $BA_HOME/venv/bin/python infra/tests/emulated_deploy.py

Starts the emulator in its own state directory, creates a VPC with two subnets, deploys the stack from
infra/parameters.example.json (with those subnets) through `aws cloudformation package` and `deploy`, and
checks what a deployment must hold: the five state machines with every `${Placeholder}` substituted, the
rules, the Batch queues and job definitions, the outputs. Then it tears the stack down and checks that the
state machines are gone and the archive bucket (with its archives) and the KMS key are kept.

The organisation flow (issue 10) in three accounts of one emulated AWS Organization: the management account (moto's,
which creates the organisation, an OU and two member accounts) rolls infra/workload.yaml out as a service-managed
StackSet over the OU in two Regions (`infra/deploy --stackset`); the central account, through the
OrganizationAccountAccessRole, deploys infra/central.yaml in the same two Regions (`infra/deploy --central`). Checked:
the StackSet's operations SUCCEEDED, its instances are CURRENT in the workload account and both Regions, each
instance's stack there holds the functions (with the zip uploaded for its Region), the rules and the roles, under
names AWS accepts; the central vaults carry the access policy that lets the organisation copy in.

moto's CloudFormation skips the resource types it does not know (bucket and queue policies, security group
egress rules, SNS subscriptions) with a warning; cfn-lint, checkov and infra/tests/test_template.py check
those. The worker image is not built (no Docker engine here): --skip-image with a stand-in tag.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from emulator.control import DEFAULT_ACCOUNT, running  # noqa: E402

STACK = "ba-emulated"
REGION = "eu-west-1"
STATE_MACHINES = ("ebs-archive", "rds-export", "rds-dump", "dynamodb-export", "restore-drill")
STACKSET = "backup-archiver-org"
ORG_REGIONS = ("eu-west-1", "eu-central-1")  # the workload's Regions, and the central vaults'
ORG_VAULT = "org-vault"
# Lambda's FunctionName and EventBridge's rule Name (moto checks neither).
NAME_LIMIT = 64


class EmulatedDeploy(unittest.TestCase):
    def test_deploy_then_teardown_keeps_the_archives(self):
        with tempfile.TemporaryDirectory(prefix="ba-deploy-") as tmp, running(Path(tmp) / "emulator") as aws:
            env = self.environment(aws)
            parameters = Path(tmp) / "parameters.json"
            parameters.write_text(json.dumps(self.parameters(aws)))

            deploy = self.run_script(env, "infra/deploy", "--parameters", str(parameters), "--stack-name", STACK,
                                     "--region", REGION, "--skip-image", "--image-tag", "emulated")
            self.assertIn(f"deployed {STACK}", deploy.stderr)
            outputs = {o["OutputKey"]: o["OutputValue"] for o in
                       aws.client("cloudformation", REGION).describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
            self.assertIn("ArchiveBucketName", deploy.stdout, "the outputs are printed")
            self.assertEqual(outputs["VolumeTag"], f"backup-archiver:managed-by={STACK}")
            self.check_deployed(aws, outputs)

            bucket = outputs["ArchiveBucketName"]
            s3 = aws.client("s3", REGION)
            s3.put_object(Bucket=bucket, Key="backup-archiver/ebs/archive.tar.gz", Body=b"an archive")

            teardown = self.run_script(env, "infra/teardown", "--stack-name", STACK, "--region", REGION, "--yes")
            self.assertIn(f"KEPT: archive bucket s3://{bucket}", teardown.stderr)
            sfn = aws.client("stepfunctions", REGION)
            self.assertEqual(sfn.list_state_machines()["stateMachines"], [], "the state machines are deleted")
            kept = s3.get_object(Bucket=bucket, Key="backup-archiver/ebs/archive.tar.gz")["Body"].read()
            self.assertEqual(kept, b"an archive", "the archive bucket and its archives outlive the stack")
            key = aws.client("kms", REGION).describe_key(KeyId=outputs["KmsKeyArn"])["KeyMetadata"]
            self.assertEqual(key["KeyState"], "Enabled", "the key the archives are encrypted with is kept")

    def test_organisation_stacks_in_two_accounts(self):
        with tempfile.TemporaryDirectory(prefix="ba-deploy-") as tmp, running(Path(tmp) / "emulator") as aws:
            management = self.environment(aws)  # the dummy key: moto's account, the management account
            org = aws.client("organizations")
            org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
            root = org.list_roots()["Roots"][0]["Id"]
            ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
            central, workload = (org.create_account(AccountName=name, Email=f"{name}@example.com")[
                "CreateAccountStatus"]["AccountId"] for name in ("central", "workload"))
            org.move_account(AccountId=workload, SourceParentId=root, DestinationParentId=ou)

            # The central account, as its operator reaches it from the management account.
            credentials = aws.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{central}:role/OrganizationAccountAccessRole",
                RoleSessionName="deploy")["Credentials"]
            central_env = {**management, "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                           "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                           "AWS_SESSION_TOKEN": credentials["SessionToken"]}
            document = json.loads((ROOT / "infra/central-parameters.example.json").read_text())
            document["Parameters"].update(VaultName=ORG_VAULT, OrganizationId=org_id)
            parameters = Path(tmp) / "central.json"
            parameters.write_text(json.dumps(document))
            deploy = self.run_script(central_env, "infra/deploy", "--central", "--parameters", str(parameters),
                                     "--regions", ",".join(ORG_REGIONS))
            self.assertIn(f"in account {central}, region {ORG_REGIONS[1]}", deploy.stderr, "the role's account")
            self.assertIn(f"deployed backup-archiver-vault-{ORG_VAULT} in {' '.join(ORG_REGIONS)}", deploy.stderr)
            self.check_central_vaults(aws, central, org_id)

            document = json.loads((ROOT / "infra/workload-parameters.example.json").read_text())
            document["Parameters"].update(CentralAccountId=central, BackupRegion=ORG_REGIONS[0],
                                          AlternateRegion=ORG_REGIONS[1], VaultNames=ORG_VAULT)
            parameters = Path(tmp) / "workload.json"
            parameters.write_text(json.dumps(document))
            deploy = self.run_script(management, "infra/deploy", "--stackset", STACKSET, "--parameters",
                                     str(parameters), "--organizational-units", ou, "--regions",
                                     ",".join(ORG_REGIONS), "--region", REGION)
            self.assertIn(f"StackSet {STACKSET}: follow it", deploy.stderr)
            self.check_stack_set(aws, workload, central, org_id)
            for other in (DEFAULT_ACCOUNT, central):
                functions = aws.client("lambda", ORG_REGIONS[0], other).list_functions()["Functions"]
                self.assertEqual(functions, [], f"no stack instance in {other}, which is not in the OU")

    def check_central_vaults(self, aws, central: str, org_id: str) -> None:
        for region in ORG_REGIONS:
            stack = aws.client("cloudformation", region, central).describe_stacks(
                StackName=f"backup-archiver-vault-{ORG_VAULT}")["Stacks"][0]
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            backup = aws.client("backup", region, central)
            vault = backup.describe_backup_vault(BackupVaultName=ORG_VAULT)
            self.assertEqual(vault["BackupVaultArn"], f"arn:aws:backup:{region}:{central}:backup-vault:{ORG_VAULT}")
            [statement] = json.loads(backup.get_backup_vault_access_policy(BackupVaultName=ORG_VAULT)["Policy"])[
                "Statement"]
            self.assertEqual((statement["Effect"], statement["Action"], statement["Condition"]),
                             ("Allow", "backup:CopyIntoBackupVault",
                              {"StringEquals": {"aws:PrincipalOrgID": org_id}}))
        with self.assertRaises(aws.client("backup", ORG_REGIONS[0]).exceptions.ResourceNotFoundException):
            aws.client("backup", ORG_REGIONS[0]).describe_backup_vault(BackupVaultName=ORG_VAULT)

    def check_stack_set(self, aws, workload: str, central: str, org_id: str) -> None:
        cloudformation = aws.client("cloudformation", REGION)
        operations = cloudformation.list_stack_set_operations(StackSetName=STACKSET)["Summaries"]
        self.assertEqual({(o["Action"], o["Status"]) for o in operations}, {("CREATE", "SUCCEEDED")})
        stack_set = cloudformation.describe_stack_set(StackSetName=STACKSET)["StackSet"]
        self.assertEqual(stack_set["PermissionModel"], "SERVICE_MANAGED")
        instances = cloudformation.list_stack_instances(StackSetName=STACKSET)["Summaries"]
        self.assertEqual(sorted((i["Account"], i["Region"], i["Status"]) for i in instances),
                         sorted((workload, region, "CURRENT") for region in ORG_REGIONS))
        code = base64.b64encode(hashlib.sha256((ROOT / "infra/.build/lambdas/lambdas.zip").read_bytes()).digest())
        for instance in instances:
            region = instance["Region"]
            bucket = f"backup-archiver-org-artifacts-{DEFAULT_ACCOUNT}-{region}"
            policy = aws.client("s3", region).get_bucket_policy(Bucket=bucket)["Policy"]
            self.assertIn(f'"aws:PrincipalOrgID":"{org_id}"', policy, "only the organisation reads the code")
            stacks = aws.client("cloudformation", region, workload)
            [stack] = stacks.describe_stacks(StackName=instance["StackId"])["Stacks"]
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            self.assertTrue(stack["StackName"].startswith(f"StackSet-{STACKSET}-"), stack["StackName"])
            awslambda, roles = aws.client("lambda", region, workload), []
            for step in ("start-copy", "shorten-retention"):
                function = awslambda.get_function(FunctionName=f"backup-archiver-org-{step}")["Configuration"]
                self.assertEqual((function["Handler"], function["CodeSha256"]), (step, code.decode()),
                                 f"{region} {step}: the zip of this Region's code bucket")
                self.assertLessEqual(len(function["FunctionName"]), NAME_LIMIT)
                config = json.loads(function["Environment"]["Variables"]["ORG_COPY_CONFIG"])
                self.assertEqual(config["central_account_id"], central)
                roles += [function["Role"], config["copy_role_arn"]]
            events = aws.client("events", region, workload)
            rules = [r["Name"] for r in events.list_rules()["Rules"]]
            self.assertEqual(len(rules), 5, rules)
            for rule in rules:
                self.assertLessEqual(len(rule), NAME_LIMIT, rule)
            [forward] = events.list_targets_by_rule(Rule="backup-archiver-org-forward-copy")["Targets"]
            self.assertEqual(forward["Arn"], f"arn:aws:events:{ORG_REGIONS[1 - ORG_REGIONS.index(region)]}:{central}"
                                             ":event-bus/default", "the first copy's Region's central bus")
            iam = aws.client("iam", account=workload)
            for role in {*roles, forward["RoleArn"]}:
                self.assertEqual(role.split(":")[4], workload, role)
                iam.get_role(RoleName=role.split("/")[-1])
            queue = aws.client("sqs", region, workload).get_queue_url(QueueName="backup-archiver-org-errors")
            self.assertIn(workload, queue["QueueUrl"])

    def environment(self, aws) -> dict:
        """The environment of a deploy script run in moto's account with the emulator as AWS."""
        return {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint, "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION,
                # the AWS CLI the deploy script calls is the venv's
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def parameters(self, aws) -> dict:
        ec2 = aws.client("ec2", REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
                   ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
        route_table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
        document = json.loads((ROOT / "infra/parameters.example.json").read_text())
        document["Parameters"].update(VpcId=vpc, SubnetId1=subnets[0], SubnetId2=subnets[1],
                                      AvailabilityZone1=f"{REGION}a", AvailabilityZone2=f"{REGION}b",
                                      S3GatewayEndpointRouteTableIds=route_table["RouteTableId"])
        return document

    def run_script(self, env: dict, script: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(ROOT / script), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=1800)
        self.assertEqual(result.returncode, 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}")
        return result

    def check_deployed(self, aws, outputs: dict) -> None:
        sfn = aws.client("stepfunctions", REGION)
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        self.assertEqual(sorted(machines), sorted(f"{STACK}-{m}" for m in STATE_MACHINES))
        for name, arn in machines.items():
            definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
            self.assertNotIn("${", definition, f"{name}: a placeholder was left unsubstituted")
            json.loads(definition)
        rules = {r["Name"] for r in aws.client("events", REGION).list_rules(NamePrefix=STACK)["Rules"]}
        self.assertIn(f"{STACK}-backup-job-completed", rules)
        self.assertIn(f"{STACK}-restore-drill", rules, "the restore drill's schedule")
        batch = aws.client("batch", REGION)
        queues = batch.describe_job_queues()["jobQueues"]
        self.assertGreaterEqual(len(queues), 2, "a queue per availability zone")
        definitions = {d["jobDefinitionName"] for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
        self.assertEqual(definitions, {f"{STACK}-worker", f"{STACK}-worker-direct", f"{STACK}-dump", f"{STACK}-drill"},
                         "the volume worker's, the direct reader's, the dump worker's and the drill's")


if __name__ == "__main__":
    unittest.main(verbosity=2)
