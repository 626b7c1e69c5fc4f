"""The DynamoDB export flow's resources in the emulator: none beyond the stack's own. DynamoDB writes the export
into the archive bucket with the caller's (the Lambda role's) permissions, and the flow's placeholders are all
Lambda ARNs, which deploy.py fills for every `lambdas/<dir>`."""


def resources(aws, settings, stack) -> dict:
    return {"values": {}, "environment": {}}
