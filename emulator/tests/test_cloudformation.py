"""moto's CloudFormation as launcher.py patches it for the organisation flow's deployment (issue 10): the YAML short
form `!Condition`, and service-managed StackSets whose instances are stacks of the target accounts, named as AWS
names them. infra/tests/emulated_deploy.py deploys the real templates this way."""

import json

from conftest import unique

MANAGEMENT = "777788889999"  # its own organisation, apart from the other tests'
REGIONS = ("us-east-1", "eu-west-1")

# A condition made of another one, in the short form a template sent as it is written has.
NESTED_CONDITION = """
Parameters:
  Answer: {{Type: String, Default: "yes"}}
Conditions:
  IsYes: !Equals [!Ref Answer, "yes"]
  Either: !Or [!Condition IsYes, !Equals [!Ref Answer, "no"]]
Resources:
  Made:
    Type: AWS::SSM::Parameter
    Condition: Either
    Properties: {{Name: "{name}", Type: String, Value: made}}
"""

# A resource named after the stack, as the templates' names were before issue 10's StackSet.
NAMED_AFTER_THE_STACK = json.dumps({"Resources": {"Named": {"Type": "AWS::SSM::Parameter", "Properties": {
    "Name": {"Fn::Sub": "/${AWS::StackName}"}, "Type": "String", "Value": "v"}}}})


def test_a_condition_made_of_conditions_in_the_short_form_holds(aws):
    name = f"/{unique('either')}"
    aws.client("cloudformation").create_stack(StackName=unique("stack"),
                                              TemplateBody=NESTED_CONDITION.format(name=name))
    assert aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"] == "made"


def stack_set_over_a_member(aws, regions) -> tuple[str, str, object]:
    """(the member account, the stack set, MANAGEMENT's CloudFormation client): an organisation MANAGEMENT creates, an
    OU with one member account, and a service-managed stack set of NAMED_AFTER_THE_STACK over the OU in `regions`."""
    org = aws.client("organizations", account=MANAGEMENT)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="member", Email="member@example.com")["CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    cloudformation, stack_set = aws.client("cloudformation", account=MANAGEMENT), unique("set")
    cloudformation.create_stack_set(StackSetName=stack_set, TemplateBody=NAMED_AFTER_THE_STACK,
                                    PermissionModel="SERVICE_MANAGED")
    cloudformation.create_stack_instances(StackSetName=stack_set, DeploymentTargets={"OrganizationalUnitIds": [ou]},
                                          Regions=list(regions))
    return member, stack_set, cloudformation


def test_a_service_managed_stack_instance_is_a_stack_set_stack_of_the_member_account(aws):
    member, stack_set, cloudformation = stack_set_over_a_member(aws, REGIONS)
    instances = cloudformation.list_stack_instances(StackSetName=stack_set)["Summaries"]
    assert sorted((i["Account"], i["Region"], i["Status"]) for i in instances) == \
        sorted((member, region, "CURRENT") for region in REGIONS)
    for instance in instances:
        member_stacks = aws.client("cloudformation", instance["Region"], member)
        [stack] = member_stacks.describe_stacks(StackName=instance["StackId"])["Stacks"]
        assert stack["StackName"].startswith(f"StackSet-{stack_set}-") and len(stack["StackName"]) == \
            len(f"StackSet-{stack_set}-") + 36, "StackSet-NAME-UUID"
        parameter = aws.client("ssm", instance["Region"], member).get_parameter(Name=f"/{stack['StackName']}")
        assert parameter["Parameter"]["Value"] == "v"
