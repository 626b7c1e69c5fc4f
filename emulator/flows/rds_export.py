"""The RDS export flow's own resources: the IAM role RDS assumes to write the export into the archive bucket, and
the KMS key RDS encrypts the export with (infra/template.yaml creates the same in AWS). Both feed the
`start-export` Lambda's configuration (EXPORT_IAM_ROLE_ARN, EXPORT_KMS_KEY_ID)."""

import json

# RDS's export service assumes the role: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ExportSnapshot.html
EXPORT_SERVICE = "export.rds.amazonaws.com"


def export_role(iam, name: str, bucket: str) -> str:
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": EXPORT_SERVICE}}]}
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:PutObject*", "s3:GetObject*", "s3:ListBucket", "s3:DeleteObject*", "s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
        iam.put_role_policy(RoleName=name, PolicyName="write-exports", PolicyDocument=json.dumps(policy))
        return arn


def export_key(kms, alias: str) -> str:
    """The key behind `alias`, created once."""
    for existing in kms.list_aliases()["Aliases"]:
        if existing["AliasName"] == alias and existing.get("TargetKeyId"):
            return kms.describe_key(KeyId=existing["TargetKeyId"])["KeyMetadata"]["Arn"]
    key = kms.create_key(Description=f"RDS exports ({alias})")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return key["Arn"]


def resources(aws, settings, stack: dict) -> dict:
    role_arn = export_role(aws.client("iam"), f"{stack['name']}-rds-export", stack["bucket"])
    key_arn = export_key(aws.client("kms"), f"alias/{stack['name']}-rds-export")
    return {"values": {}, "environment": {"start-export": {"EXPORT_IAM_ROLE_ARN": role_arn, "EXPORT_KMS_KEY_ID": key_arn}}}
