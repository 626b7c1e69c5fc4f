"""The dump flow's resources in the emulator (state-machines/rds-dump.asl.json), for emulator/deploy.py:
a DB subnet group and a security group for the temporary databases, and the dump job definition.

The worker reaches a restored database at the endpoint DescribeDBInstances reports. moto's endpoints lead
nowhere, so a test maps them to a local PostgreSQL with `Emulator.configure_rds(server=...)` (the router then
reports that server's host and port, and applies the master password that SetPassword sets to it). The job
definition is therefore the production one: nothing here knows the test's server.
"""

# The worker's command, as infra's job definition has it: each Ref:: is a parameter of core's
# database::DUMP_JOB_PARAMETERS, filled by the state machine's DumpJob.
DUMP_COMMAND = ["batch-worker", "dump", "--engine", "Ref::engine", "--host", "Ref::host", "--port", "Ref::port",
                "--user", "Ref::user", "--password-parameter", "Ref::password_parameter", "--to", "Ref::destination",
                "--snapshot-id", "Ref::snapshot_id"]


def resources(aws, settings, stack) -> dict:
    """Create the subnet group, the security group and the job definition; return the ASL placeholder values
    and the environment of the Lambdas that need them."""
    name = settings.name
    ec2, rds = aws.client("ec2"), aws.client("rds")
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]]
    subnet_group = f"{name}-dumps"
    try:
        rds.create_db_subnet_group(DBSubnetGroupName=subnet_group, SubnetIds=subnets[:2],
                                   DBSubnetGroupDescription="backup-archiver: temporary databases of dumps")
    except rds.exceptions.DBSubnetGroupAlreadyExistsFault:
        pass
    group_name = f"{name}-dump-databases"
    existing = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])["SecurityGroups"]
    security_group = existing[0]["GroupId"] if existing else ec2.create_security_group(
        GroupName=group_name, VpcId=vpc_id, Description="backup-archiver: the worker reaches temporary databases")["GroupId"]
    environment = {"RUST_LOG": "info", **settings.job_environment}
    if settings.job_endpoint:
        environment["AWS_ENDPOINT_URL"] = settings.job_endpoint
    job_definition = aws.client("batch").register_job_definition(
        jobDefinitionName=f"{name}-dump", type="container",
        timeout={"attemptDurationSeconds": settings.job_timeout_seconds},
        containerProperties={
            "image": "backup-archiver-worker", "command": DUMP_COMMAND,
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "2048"}],
        },
    )["jobDefinitionArn"]
    return {
        "values": {"DumpJobDefinitionArn": job_definition},
        "environment": {"restore-database": {"DB_SUBNET_GROUP_NAME": subnet_group,
                                             "DB_SECURITY_GROUP_IDS": security_group}},
    }
