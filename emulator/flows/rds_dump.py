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
    """Create the subnet group, the security group and the dump job definition (with the template's timeout and
    job role); return them as the template's DatabaseSubnetGroup, DatabaseSecurityGroup and DumpJobDefinition."""
    from emulator.deploy import register_flow_job_definition  # deploy imports this module

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
    job_definition = f"{name}-dump"
    register_flow_job_definition(aws, settings, "DumpJobDefinition", job_definition, DUMP_COMMAND)
    return {
        "physical": {"DatabaseSubnetGroup": {"Ref": subnet_group}, "DatabaseSecurityGroup": {"Ref": security_group},
                     # without a revision: the latest applies (CloudFormation's Ref names the revision it made)
                     "DumpJobDefinition": {"Ref": job_definition}},
        "parameters": {"DatabaseSubnetIds": ",".join(subnets[:2])},
    }
