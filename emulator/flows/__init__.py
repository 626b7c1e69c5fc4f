"""What a flow needs in the emulator beyond what emulator/deploy.py makes for every flow and what
infra/template.yaml's rendering gives (roles, functions, state machines): one module per flow that needs more
(a DB subnet group, a second job definition).

Each module has `resources(aws, settings, stack) -> dict`, called by deploy() with the emulator, the deploy
Settings and what is deployed so far (a dict: name, instance_id, job_queue_arn, bucket). It creates what its flow
needs and returns {"physical": {template logical id: {"Ref": ..., attributes}}, "parameters": {template
parameter: value}}, which the template is rendered with. List the module in FLOWS.
"""

from emulator.flows import ebs_direct, rds_dump, restore_drill  # noqa: E402

FLOWS: list = [ebs_direct, rds_dump, restore_drill]
