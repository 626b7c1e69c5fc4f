"""emulator/template.py renders CloudFormation's intrinsics as CloudFormation does, and refuses what it does not
know rather than passing it through."""

import pytest

from emulator.template import Template, TemplateError, role_name

DOCUMENT = """
Parameters:
  Names: {Type: CommaDelimitedList, Default: "a,b"}
  Prefix: {Type: String}
  Empty: {Type: String, Default: ""}
Conditions:
  HasEmpty: !Not [!Equals [!Ref Empty, ""]]
  Either: !Or [!Condition HasEmpty, !Equals [!Ref Prefix, p]]
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-fn"
      Role: !GetAtt FnRole.Arn
      Environment:
        Variables:
          JOINED: !Join [":", !Ref Names]
          SECOND: !Select [1, !Split [",", "x,y,z"]]
          LITERAL: !Sub "${!Kept}-${Prefix}-${Bucket.Arn}"
          LIST: !Sub ['["${Items}"]', {Items: !Join ['", "', !Ref Names]}]
          DROPPED: !If [HasEmpty, set, !Ref AWS::NoValue]
          EITHER: !If [Either, either, neither]
  FnRole: {Type: AWS::IAM::Role, Properties: {}}
  Bucket: {Type: AWS::S3::Bucket}
  Guarded: {Type: AWS::S3::Bucket, Condition: HasEmpty}
"""


def stack(parameters=None, physical=None):
    import yaml

    from emulator.template import CfnLoader

    template = Template(yaml.load(DOCUMENT, Loader=CfnLoader))  # noqa: S506 (a SafeLoader)
    return template.stack("st", "eu-west-1", "111122223333", {"Prefix": "p", **(parameters or {})},
                          {"Bucket": {"Ref": "bkt", "Arn": "arn:aws:s3:::bkt"}, **(physical or {})})


def test_renders_refs_subs_joins_selects_and_conditions():
    properties = stack().properties("Fn")
    assert properties["FunctionName"] == "st-fn"
    assert properties["Role"] == f"arn:aws:iam::111122223333:role/{role_name('st', 'FnRole')}" == \
        "arn:aws:iam::111122223333:role/st-fn"
    assert properties["Environment"]["Variables"] == {
        "JOINED": "a:b", "SECOND": "y", "LITERAL": "${Kept}-p-arn:aws:s3:::bkt", "LIST": '["a", "b"]',
        "EITHER": "either"}, "AWS::NoValue drops DROPPED"


def test_conditions_follow_the_parameters():
    variables = stack({"Empty": "e", "Prefix": "q", "Names": "c"}).properties("Fn")["Environment"]["Variables"]
    assert variables["DROPPED"] == "set" and variables["EITHER"] == "either" and variables["JOINED"] == "c"
    variables = stack({"Prefix": "q"}).properties("Fn")["Environment"]["Variables"]
    assert "DROPPED" not in variables and variables["EITHER"] == "neither"


def test_a_parameter_without_default_or_value_is_refused():
    with pytest.raises(TemplateError, match="Prefix"):
        Template(stack().template.document).stack("st", "r", "1", {}, {})


def test_a_resource_the_emulator_did_not_make_is_refused():
    s = stack(physical={})
    s.physical.pop("Bucket")
    with pytest.raises(TemplateError, match="Bucket .*did not create"):
        s.properties("Fn")


def test_a_reference_to_a_resource_whose_condition_is_false_is_refused():
    s = stack()
    with pytest.raises(TemplateError, match="Guarded.*condition HasEmpty is false"):
        s.render({"Ref": "Guarded"})


def test_an_unknown_intrinsic_is_refused():
    with pytest.raises(TemplateError, match="Fn::Base64"):
        stack().render({"Fn::Base64": "x"})


def test_the_project_template_renders_every_function_and_role():
    physical = {name: {"Ref": name, "Arn": f"arn:aws:x:::{name}"} for name in (
        "ArchiveBucket", "ArchiveKey", "NotificationTopic", "DeadLetterQueue", "JobQueue1", "WorkerJobDefinition",
        "DumpJobDefinition", "DatabaseSubnetGroup", "DatabaseSecurityGroup")}
    parameters = {"VaultNames": "v", "VpcId": "vpc-1", "SubnetId1": "subnet-1", "AvailabilityZone1": "us-east-1a",
                  "ImageTag": "t", "AvailabilityZone2": "us-east-1b", "SubnetId2": "subnet-2"}
    s = Template.load().stack("st", "us-east-1", "123456789012", parameters, physical)
    for kind in ("AWS::Lambda::Function", "AWS::IAM::Role", "AWS::StepFunctions::StateMachine"):
        for logical_id in s.template.of_type(kind):
            assert "Fn::" not in repr(s.properties(logical_id)) and "'Ref'" not in repr(s.properties(logical_id))
