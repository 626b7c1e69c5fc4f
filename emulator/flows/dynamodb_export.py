"""The DynamoDB export flow's own resource: the IAM role AWS Backup assumes to restore a recovery point with its
advanced features into a temporary table (infra/template.yaml creates the same in AWS), for `start-table-export`
(RESTORE_ROLE_ARN). DynamoDB writes exports into the archive bucket with the caller's (the Lambda role's)
permissions, and the flow's placeholders are all Lambda ARNs, which deploy.py fills for every step of `lambdas/src/steps/`."""

import json

# AWS Backup assumes the restore role: https://docs.aws.amazon.com/aws-backup/latest/devguide/restoring-dynamodb.html
BACKUP_SERVICE = "backup.amazonaws.com"


def restore_role(iam, name: str) -> str:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": BACKUP_SERVICE}}]}
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def resources(aws, settings, stack) -> dict:
    role_arn = restore_role(aws.client("iam"), f"{stack['name']}-dynamodb-restore")
    return {"values": {}, "environment": {"start-table-export": {"RESTORE_ROLE_ARN": role_arn}}}
