"""emulator/iam_check.py evaluates AWS Backup's actions on an EBS recovery point, whose ARN is its snapshot's, as
AWS does: allowed by a statement naming snapshots, not by one naming only AWS Backup's recovery points."""

from emulator import iam_check

ROLE = "arn:aws:iam::123456789012:role/deleter"
POINT = "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0"


def delete_point(tags: dict) -> dict:
    return {"role": ROLE, "call": "backup:DeleteRecoveryPoint", "checks": [
        {"action": "backup:DeleteRecoveryPoint", "resource": POINT, "context": tags}]}


def allowing(*resources: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "backup:DeleteRecoveryPoint", "Resource": list(resources),
        "Condition": {"StringEquals": {"aws:ResourceTag/archived": "true"}}}]}


def test_a_statement_naming_snapshots_allows_an_ebs_recovery_point_with_its_tag():
    policy = allowing("arn:aws:ec2:us-east-1::snapshot/*")
    assert iam_check.evaluate([delete_point({"aws:ResourceTag/archived": "true"})], {ROLE: [policy]}, {}) == []
    denied = iam_check.evaluate([delete_point({})], {ROLE: [policy]}, {})
    assert len(denied) == 1 and "aws:ResourceTag/archived" in denied[0].reason, denied


def test_a_statement_naming_only_backup_recovery_points_does_not_allow_an_ebs_one():
    policy = allowing("arn:aws:backup:us-east-1:123456789012:recovery-point:*")
    denied = iam_check.evaluate([delete_point({"aws:ResourceTag/archived": "true"})], {ROLE: [policy]}, {})
    assert len(denied) == 1 and "does not match" in denied[0].reason, denied
