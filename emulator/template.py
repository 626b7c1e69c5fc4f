"""infra/template.yaml rendered as CloudFormation would for one stack: parameters, conditions and the intrinsic
functions the template uses, so that the emulator deploys each function, role, job definition and state machine
with the template's own settings and policies instead of a copy of them.

    stack = Template.load().stack("keep", parameters={...}, physical={"ArchiveBucket": {...}, ...})
    stack.render(stack.properties("NotifyFunction"))  # the properties with every intrinsic resolved

Understood: Ref (parameters, pseudo parameters, resources), Fn::Sub (both forms), Fn::GetAtt, Fn::If with
AWS::NoValue, Fn::Equals, Fn::Not, Fn::Or, Fn::And, Condition, Fn::Join, Fn::Select, Fn::Split. Any other
intrinsic raises TemplateError: a new one must be implemented here, never ignored.

A resource's Ref and attributes come from `physical` (what the emulator created in its place), else from the
naming the template itself sets for the types whose name is a property (functions, log groups, state machines,
job definitions and queues), else from the emulator's naming of roles (`<stack>-<kebab name>`, see role_name).
A reference to any other resource the emulator did not create raises TemplateError.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
PARTITION = "aws"
NO_VALUE = object()  # AWS::NoValue: the key or list item is dropped


class TemplateError(Exception):
    pass


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (`!Ref X` -> {"Ref": X}, `!GetAtt A.B` -> {"Fn::GetAtt": [A, B]})."""


def _short_form(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_form)


def kebab(name: str) -> str:
    """`DynamodbRestore` -> `dynamodb-restore`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def role_name(stack_name: str, logical_id: str) -> str:
    """The emulator's name for a role of the template (CloudFormation would generate one): `RdsExportRole` of
    stack `keep` is `keep-rds-export`."""
    return f"{stack_name}-{kebab(logical_id.removesuffix('Role'))}"


@dataclass
class Template:
    document: dict

    @classmethod
    def load(cls, path: Path = TEMPLATE) -> "Template":
        return cls(yaml.load(path.read_text(), Loader=CfnLoader))  # noqa: S506 (CfnLoader is a SafeLoader)

    def stack(self, name: str, region: str, account: str, parameters: dict, physical: dict) -> "Stack":
        return Stack(self, name, region, account, parameters, physical)

    def of_type(self, kind: str) -> list[str]:
        return [key for key, value in self.document["Resources"].items() if value["Type"] == kind]


@dataclass
class Stack:
    template: Template
    name: str
    region: str
    account: str
    given: dict
    """Parameter values; the others take the template's Default."""
    physical: dict
    """{logical id: {"Ref": ..., "Arn": ..., other attributes}} of the resources the emulator created."""
    conditions: dict = field(default_factory=dict)

    def __post_init__(self):
        declared = self.template.document["Parameters"]
        unknown = set(self.given) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {sorted(unknown)}")
        self.parameters = {}
        for key, spec in declared.items():
            if key in self.given:
                value = self.given[key]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {key} has no default: give it a value")
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",") if value else [""]
            self.parameters[key] = value if isinstance(value, list) else str(value)

    # --- the template's pieces -------------------------------------------------------------------------------
    def resource(self, logical_id: str) -> dict:
        try:
            return self.template.document["Resources"][logical_id]
        except KeyError:
            raise TemplateError(f"no resource {logical_id} in the template") from None

    def exists(self, logical_id: str) -> bool:
        condition = self.resource(logical_id).get("Condition")
        return condition is None or self.condition(condition)

    def properties(self, logical_id: str) -> dict:
        """The resource's properties with every intrinsic resolved."""
        return self.render(self.resource(logical_id).get("Properties", {}))

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            try:
                expression = self.template.document["Conditions"][name]
            except KeyError:
                raise TemplateError(f"no condition {name}") from None
            self.conditions[name] = bool(self.render(expression))
        return self.conditions[name]

    # --- references ------------------------------------------------------------------------------------------
    def pseudo(self, name: str):
        values = {"AWS::StackName": self.name, "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE}
        if name not in values:
            raise TemplateError(f"pseudo parameter {name} is not supported")
        return values[name]

    def attribute(self, logical_id: str, attribute: str):
        """A resource's Ref (attribute "Ref") or Fn::GetAtt attribute."""
        if logical_id in self.physical:
            try:
                return self.physical[logical_id][attribute]
            except KeyError:
                raise TemplateError(f"{logical_id}.{attribute}: not among what the emulator made "
                                    f"({sorted(self.physical[logical_id])})") from None
        resource = self.resource(logical_id)
        if not self.exists(logical_id):
            raise TemplateError(f"{logical_id} is referenced but its condition {resource['Condition']} is false")
        arn = f"arn:{PARTITION}:{{service}}:{self.region}:{self.account}:{{rest}}"
        kind, props = resource["Type"], resource.get("Properties", {})
        named = {  # types named by a property: (property, Ref is the name?, ARN format)
            "AWS::Lambda::Function": ("FunctionName", True, arn.format(service="lambda", rest="function:{}")),
            "AWS::Logs::LogGroup": ("LogGroupName", True, arn.format(service="logs", rest="log-group:{}:*")),
            "AWS::StepFunctions::StateMachine": ("StateMachineName", False,
                                                 arn.format(service="states", rest="stateMachine:{}")),
            "AWS::Batch::JobDefinition": ("JobDefinitionName", False,
                                          arn.format(service="batch", rest="job-definition/{}")),
            "AWS::Batch::JobQueue": ("JobQueueName", False, arn.format(service="batch", rest="job-queue/{}")),
        }
        if kind == "AWS::IAM::Role":
            name = role_name(self.name, logical_id)
            values = {"Ref": name, "Arn": f"arn:{PARTITION}:iam::{self.account}:role/{name}"}
        elif kind in named:
            prop, ref_is_name, arn_format = named[kind]
            name = self.render(props[prop])
            values = {"Ref": name if ref_is_name else arn_format.format(name), "Arn": arn_format.format(name)}
        else:
            raise TemplateError(f"{logical_id} ({kind}) is referenced, but the emulator did not create it "
                                f"(pass it in `physical`)")
        if attribute not in values:
            raise TemplateError(f"{logical_id}.{attribute} is not supported for {kind}")
        return values[attribute]

    def ref(self, name: str):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        return self.attribute(name, "Ref")

    def sub(self, text: str, variables: dict) -> str:
        def replace(match):
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self.attribute(*name.split(".", 1))
            else:
                value = self.ref(name)
            if isinstance(value, list):
                raise TemplateError(f"Fn::Sub ${{{name}}} is a list")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # --- rendering -------------------------------------------------------------------------------------------
    def render(self, node):
        """`node` with every intrinsic resolved; AWS::NoValue drops the key or item."""
        if isinstance(node, list):
            return [value for value in (self.render(item) for item in node) if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self.intrinsic(key, value)
        rendered = {key: self.render(value) for key, value in node.items()}
        return {key: value for key, value in rendered.items() if value is not NO_VALUE}

    def intrinsic(self, key: str, value):
        if key == "Ref":
            return self.ref(value)
        if key == "Condition":
            return self.condition(value)
        if key == "Fn::If":
            name, then, otherwise = value
            return self.render(then if self.condition(name) else otherwise)
        if key == "Fn::Equals":
            left, right = (self.render(v) for v in value)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.render(value[0])
        if key == "Fn::Or":
            return any(self.render(v) for v in value)
        if key == "Fn::And":
            return all(self.render(v) for v in value)
        if key == "Fn::Sub":
            if isinstance(value, str):
                return self.sub(value, {})
            text, variables = value
            return self.sub(text, {name: self.render(v) for name, v in variables.items()})
        if key == "Fn::GetAtt":
            logical_id, attribute = value
            return self.attribute(logical_id, attribute)
        if key == "Fn::Join":
            delimiter, items = value
            items = self.render(items)
            return delimiter.join(str(item) for item in items)
        if key == "Fn::Select":
            index, items = value
            return self.render(items)[int(self.render(index))]
        if key == "Fn::Split":
            delimiter, text = value
            return self.render(text).split(delimiter)
        raise TemplateError(f"intrinsic {key} is not supported by emulator/template.py: implement it")
