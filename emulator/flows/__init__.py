"""What each flow needs in the emulator beyond the Lambdas and state machines that emulator/deploy.py makes
for every flow: one module per flow (an export role, a KMS key, a DB subnet group, a second job definition).

Each module has `resources(aws, settings, stack) -> dict`, called by deploy() with the emulator, the deploy
Settings and what is deployed so far (a dict: name, role_arn, instance_id, job_queue_arn, bucket, plan_config).
It creates what its flow needs and returns {"values": {ASL placeholder: value}, "environment": {lambda step:
{VAR: value}}}. List the module in FLOWS.
"""

from emulator.flows import dynamodb_export, rds_dump, rds_export  # noqa: E402

FLOWS: list = [dynamodb_export, rds_dump, rds_export]
