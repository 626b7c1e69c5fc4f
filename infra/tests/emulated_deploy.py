"""infra/deploy and infra/teardown, run as a user runs them, against the local emulated AWS.

    $BA_HOME/venv/bin/python infra/tests/emulated_deploy.py

Starts the emulator in its own state directory, creates a VPC with two subnets, deploys the stack from
infra/parameters.example.json (with those subnets) through `aws cloudformation package` and `deploy`, and
checks what a deployment must hold: the five state machines with every `${Placeholder}` substituted, the
rules, the Batch queues and job definitions, the outputs. Then it tears the stack down and checks that the
state machines are gone and the archive bucket (with its archives) and the KMS key are kept.

moto's CloudFormation skips the resource types it does not know (bucket and queue policies, security group
egress rules, SNS subscriptions) with a warning; cfn-lint, checkov and infra/tests/test_template.py check
those. The worker image is not built (no Docker engine here): --skip-image with a stand-in tag.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from emulator.control import running  # noqa: E402

STACK = "ba-emulated"
REGION = "eu-west-1"
STATE_MACHINES = ("ebs-archive", "rds-export", "rds-dump", "dynamodb-export", "restore-drill")


class EmulatedDeploy(unittest.TestCase):
    def test_deploy_then_teardown_keeps_the_archives(self):
        with tempfile.TemporaryDirectory(prefix="ba-deploy-") as tmp, running(Path(tmp) / "emulator") as aws:
            env = {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint, "AWS_ACCESS_KEY_ID": "test",
                   "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION,
                   # the AWS CLI the deploy script calls is the venv's
                   "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
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
        self.assertEqual(len(definitions), 3, f"the volume worker's, the dump worker's and the drill's: {definitions}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
