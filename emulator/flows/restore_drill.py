"""The restore drill's resources in the emulator (state-machines/restore-drill.asl.json), for emulator/deploy.py:
the drill's job definition, whose command is infra's (`batch-worker drill` with the Ref:: parameters pick-drill
passes: core::flows::restore_drill DRILL_JOB_PARAMETERS), with the template's timeout and job role. The drill reads
S3 only (and writes snapshots through the EBS direct APIs), so nothing here is local-only but the environment.
"""

# The worker's command, as infra's DrillJobDefinition has it.
DRILL_COMMAND = ["batch-worker", "drill", "--archive", "Ref::archive", "--result", "Ref::result",
                 "--restore-to-snapshot", "Ref::restore_to_snapshot", "--drill-id", "Ref::drill_id",
                 "--deployment", "Ref::deployment"]


def resources(aws, settings, stack) -> dict:
    """Register the drill job definition; return it as the template's DrillJobDefinition."""
    from emulator.deploy import register_flow_job_definition  # deploy imports this module

    job_definition = f"{settings.name}-drill"
    register_flow_job_definition(aws, settings, "DrillJobDefinition", job_definition, DRILL_COMMAND)
    # without a revision: the latest applies (CloudFormation's Ref names the revision it made)
    return {"physical": {"DrillJobDefinition": {"Ref": job_definition}}}
