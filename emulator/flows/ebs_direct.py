"""The EBS flow's direct read path in the emulator (state-machines/ebs-archive.asl.json ClaimSnapshot ->
DirectArchiveJob), for emulator/deploy.py: the job definition that reads a snapshot through the EBS direct
APIs. Its command is the production one: the worker reads the blocks a test wrote into the emulator's snapshot
(PutSnapshotBlock), with no device and no instance.
"""

# The worker's command, as infra's DirectJobDefinition has it: each Ref:: is a parameter of core's
# flows::ebs::DIRECT_JOB_PARAMETERS, filled by the state machine's DirectArchiveJob.
DIRECT_COMMAND = ["batch-worker", "--snapshot", "Ref::snapshot_id", "--to", "Ref::destination", "--mode", "Ref::mode"]


def resources(aws, settings, stack) -> dict:
    """Register the direct-read job definition (with the template's timeout and job role); return it as the
    template's DirectJobDefinition."""
    from emulator.deploy import register_flow_job_definition  # deploy imports this module

    job_definition = f"{settings.name}-worker-direct"
    register_flow_job_definition(aws, settings, "DirectJobDefinition", job_definition, DIRECT_COMMAND)
    # without a revision: the latest applies (CloudFormation's Ref names the revision it made)
    return {"physical": {"DirectJobDefinition": {"Ref": job_definition}}}
