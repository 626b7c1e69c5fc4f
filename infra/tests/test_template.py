"""Tests of infra/template.yaml against the repository it deploys, run by infra/check.

The template is written by hand (each role is least privilege for its one function), so these
tests keep it honest as the flows grow: it deploys exactly the state machines in
state-machines/ and one function per step in lambdas/src/steps/, every `${Placeholder}` of every ASL
file has a substitution and every substitution a placeholder, every event pattern in
state-machines/events/ has a rule that targets the state machine emulator/deploy.py's RULE_TARGETS
names, and the IAM invariants that a security reviewer relies on hold (volume, database, table
and password actions only on resources tagged with the stack's name, PassRole only with
iam:PassedToService, no wildcard actions).

Runs with the standard library and cfn-lint's template decoder (it understands !Ref, !Sub, ...).

BA_INFRA_ROOT=DIR checks this template against another checkout's state-machines/, lambdas/,
emulator/deploy.py and core/ (a preview of a merge, say) instead of this repository's.
"""

import ast
import json
import os
import re
import unittest
from pathlib import Path

from cfnlint.decode import decode

INFRA = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("BA_INFRA_ROOT") or INFRA.parent).resolve()
TEMPLATE = INFRA / "template.yaml"
# The organisation flow's workload stack (issue 10): its functions are steps of the same binary.
WORKLOAD_TEMPLATE = INFRA / "workload.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# The tag the flow puts on every temporary volume (core::naming TAG_MANAGED_BY, valued with the stack name), and
# the tag the compute environments put on the worker instances.
VOLUME_TAG = "backup-archiver:managed-by"
STACK_TAG = "backup-archiver:stack"
# Actions on temporary volumes that must be limited to the flow's own volumes and instances.
TAGGED_VOLUME_ACTIONS = {"ec2:attachvolume", "ec2:detachvolume", "ec2:deletevolume"}
# Actions that change or delete what the database flows create at run time (temporary DB instances
# and clusters, their password parameters, temporary DynamoDB tables): allowed only on resources
# tagged with the stack's name.
TAGGED_RUNTIME_ACTIONS = {
    "rds:deletedbinstance", "rds:deletedbcluster", "rds:modifydbinstance", "rds:modifydbcluster",
    "ssm:deleteparameter", "ssm:getparameter", "dynamodb:deletetable", "dynamodb:updatecontinuousbackups",
}
# Actions that create them: allowed only with the stack's tag in the request.
TAGGED_CREATE_ACTIONS = {
    "rds:restoredbinstancefromdbsnapshot", "rds:restoredbclusterfromsnapshot", "rds:createdbinstance",
    "rds:addtagstoresource", "ssm:putparameter", "ssm:addtagstoresource", "dynamodb:tagresource",
}


def load_template(path=TEMPLATE):
    template, matches = decode(str(path))
    if matches:
        raise AssertionError(f"template does not parse: {matches}")
    return template


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def lambda_steps():
    """The handler names of the Lambda binary's steps: one module each under lambdas/src/steps/
    (`create_volume.rs` serves `create-volume`). infra/build-lambdas zips the one binary as
    .build/lambdas/lambdas.zip."""
    return {p.stem.replace("_", "-") for p in (ROOT / "lambdas" / "src" / "steps").glob("*.rs") if p.stem != "mod"}


def pascal(name):
    """delete-volume -> DeleteVolume: the template's (and the emulator's) naming rule."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def logical_id(step):
    """delete-volume -> DeleteVolumeFunction."""
    return pascal(step) + "Function"


def definition_path(location):
    """DefinitionS3Location (relative to infra/, `../state-machines/X.asl.json`) in ROOT."""
    return (ROOT / location.removeprefix("../")).resolve() if location.startswith("../") else (INFRA / location).resolve()


def rule_targets():
    """emulator/deploy.py's RULE_TARGETS: event pattern stem -> state machine stem."""
    tree = ast.parse((ROOT / "emulator" / "deploy.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RULE_TARGETS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("emulator/deploy.py has no RULE_TARGETS")


def rust_str_list(path, const):
    """The strings of `pub const NAME: &[&str] = &[...]` in a Rust file, or None."""
    if not path.exists():
        return None
    match = re.search(rf"pub const {const}: &\[&str\] =\s*&\[([^\]]*)\]", path.read_text())
    return set(re.findall(r'"([a-z_]+)"', match.group(1))) if match else None


def statements(template, with_condition=False):
    """(role name, policy statement) for every inline policy of every IAM role; with
    `with_condition`, also the condition of a statement wrapped in !If [cond, statement, NoValue]."""
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                condition = None
                if isinstance(statement, dict) and list(statement) == ["Fn::If"]:
                    condition, statement = statement["Fn::If"][0], statement["Fn::If"][1]
                yield (name, statement, condition) if with_condition else (name, statement)


def as_list(value):
    return value if isinstance(value, list) else [value]


class StateMachines(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.machines = resources(self.template, "AWS::StepFunctions::StateMachine")

    def test_deploys_exactly_the_files_in_state_machines(self):
        deployed = {}
        for name, machine in self.machines.items():
            props = machine["Properties"]
            self.assertNotIn("Definition", props, f"{name}: the definition comes from its file")
            self.assertNotIn("DefinitionString", props, f"{name}: the definition comes from its file")
            location = props.get("DefinitionS3Location")
            self.assertIsInstance(location, str, f"{name}: DefinitionS3Location must be a local path for `package`")
            deployed[definition_path(location)] = name
        files = {p.resolve() for p in (ROOT / "state-machines").glob("*.asl.json")}
        self.assertEqual(
            set(deployed),
            files,
            "template and state-machines/ disagree: add or remove an AWS::StepFunctions::StateMachine",
        )
        self.assertEqual(len(deployed), len(self.machines), "two state machines deploy the same file")

    def test_every_placeholder_of_every_asl_file_has_a_substitution_and_every_substitution_a_placeholder(self):
        by_file = {definition_path(m["Properties"]["DefinitionS3Location"]): (n, m) for n, m in self.machines.items()}
        files = sorted((ROOT / "state-machines").glob("*.asl.json"))
        self.assertTrue(files, "no state-machines/*.asl.json")
        for path in files:
            with self.subTest(file=path.name):
                self.assertIn(path.resolve(), by_file, f"{path.name} is not deployed")
                name, machine = by_file[path.resolve()]
                used = set(PLACEHOLDER.findall(path.read_text()))
                given = set(machine["Properties"].get("DefinitionSubstitutions", {}))
                self.assertEqual(used - given, set(), f"{name}: placeholders of {path.name} without a substitution")
                self.assertEqual(given - used, set(), f"{name}: substitutions no placeholder of {path.name} uses")

    def test_state_machines_are_standard_and_named_after_their_file(self):
        for name, machine in self.machines.items():
            props = machine["Properties"]
            stem = definition_path(props["DefinitionS3Location"]).name.removesuffix(".asl.json")
            self.assertEqual(props["StateMachineType"], "STANDARD", name)
            self.assertEqual(props["StateMachineName"], {"Fn::Sub": f"${{AWS::StackName}}-{stem}"}, name)
            self.assertEqual(name, pascal(stem) + "StateMachine", name)

    def test_handoff_prefix_is_built_from_the_naming_rule_not_a_reference(self):
        # A !Ref or !GetAtt of another state machine here would make the machines depend on each
        # other in a cycle (each may hand off to every other).
        for name, machine in self.machines.items():
            prefix = machine["Properties"].get("DefinitionSubstitutions", {}).get("StateMachineArnPrefix")
            if prefix is None:
                continue
            self.assertEqual(
                prefix,
                {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-"},
                name,
            )

    def test_definitions_are_json(self):
        for path in (ROOT / "state-machines").glob("*.asl.json"):
            json.loads(path.read_text())

    def test_state_machines_log_to_an_encrypted_log_group(self):
        groups = resources(self.template, "AWS::Logs::LogGroup")
        for name, machine in self.machines.items():
            logging = machine["Properties"]["LoggingConfiguration"]
            group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
            self.assertIn("KmsKeyId", groups[group]["Properties"], name)
            self.assertIn("RetentionInDays", groups[group]["Properties"], name)


class Triggers(unittest.TestCase):
    """One rule per pattern in state-machines/events/ (the ones the local emulator uses), named
    STACK-<pattern stem>, with the same pattern apart from the vault field (which the template
    fills from VaultNames), targeting the state machine RULE_TARGETS names for it."""

    VAULT_FIELDS = {"backupVaultName", "destinationBackupVaultArn"}

    def setUp(self):
        self.template = load_template()
        self.rules = {}
        functions = resources(self.template, "AWS::Lambda::Function")
        for name, rule in resources(self.template, "AWS::Events::Rule").items():
            if any(t["Arn"].get("Fn::GetAtt", [None])[0] in functions for t in rule["Properties"]["Targets"]):
                continue  # the job alerts' rule (JobAlerts below): a function's, not a flow's
            if "ScheduleExpression" in rule["Properties"]:
                continue  # the restore drill's schedule (RestoreDrill below): no event pattern
            sub = rule["Properties"]["Name"]["Fn::Sub"]
            self.assertTrue(sub.startswith("${AWS::StackName}-"), name)
            self.rules[sub.removeprefix("${AWS::StackName}-")] = name

    def test_every_pattern_has_a_rule_and_every_rule_a_pattern(self):
        patterns = {p.stem for p in (ROOT / "state-machines" / "events").glob("*.json")}
        self.assertEqual(set(self.rules), patterns, "template rules and state-machines/events/ disagree")

    def test_rules_use_the_projects_event_patterns(self):
        events = ROOT / "state-machines" / "events"
        for stem, rule in self.rules.items():
            project = json.loads((events / f"{stem}.json").read_text())
            ours = self.template["Resources"][rule]["Properties"]["EventPattern"]
            self.assertEqual(ours["source"], project["source"], rule)
            self.assertEqual(ours["detail-type"], project["detail-type"], rule)
            strip = lambda detail: {k: v for k, v in detail.items() if k not in self.VAULT_FIELDS}
            self.assertEqual(strip(ours["detail"]), strip(project["detail"]), rule)
            self.assertEqual(set(ours["detail"]) & self.VAULT_FIELDS, set(project["detail"]) & self.VAULT_FIELDS, rule)

    def test_rules_target_the_state_machine_rule_targets_names(self):
        targets = rule_targets()
        machines = resources(self.template, "AWS::StepFunctions::StateMachine")
        for stem, rule in self.rules.items():
            self.assertIn(stem, targets, f"emulator/deploy.py RULE_TARGETS has no entry for {stem}")
            (target,) = self.template["Resources"][rule]["Properties"]["Targets"]
            machine = machines[target["Arn"]["Ref"]]["Properties"]["DefinitionS3Location"]
            self.assertEqual(definition_path(machine).name, f"{targets[stem]}.asl.json", rule)
            self.assertEqual(target["RoleArn"], {"Fn::GetAtt": ["EventsRole", "Arn"]}, rule)
            self.assertIn("DeadLetterConfig", target, rule)

    def test_the_events_role_may_start_every_rule_target(self):
        allowed = []
        for role, statement in statements(self.template):
            if role == "EventsRole" and "states:StartExecution" in as_list(statement["Action"]):
                allowed += as_list(statement["Resource"])
        for rule in self.rules.values():
            (target,) = self.template["Resources"][rule]["Properties"]["Targets"]
            self.assertIn(target["Arn"], allowed, rule)


class JobAlerts(unittest.TestCase):
    """relay-alert hears every AWS Backup job event: the vault-notification topic and one rule for the four state
    changes core::alert reads, with the dead-letter queue behind both."""

    def setUp(self):
        self.template = load_template()

    def test_the_rule_sends_every_job_state_change_to_the_relay(self):
        rule = self.template["Resources"]["JobAlertRule"]["Properties"]
        self.assertEqual(rule["Name"], {"Fn::Sub": "${AWS::StackName}-job-alerts"})  # the DLQ policy's prefix
        self.assertEqual(rule["EventPattern"]["source"], ["aws.backup"])
        parse = (ROOT / "core" / "src" / "alert" / "parse.rs").read_text()
        read = set(re.findall(r'\("([A-Za-z ]+ State Change)", AlertKind::', parse))
        self.assertEqual(set(rule["EventPattern"]["detail-type"]), read)
        self.assertNotIn("detail", rule["EventPattern"], "the relay filters (AlertStates), so the rule takes all")
        (target,) = rule["Targets"]
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["RelayAlertFunction", "Arn"]})
        self.assertEqual(target["DeadLetterConfig"], {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}})

    def test_the_relay_hears_the_vault_notification_topic_and_keeps_failures(self):
        subscription = self.template["Resources"]["RelayAlertSubscription"]["Properties"]
        self.assertEqual(subscription["TopicArn"], {"Ref": "TriggerTopic"})
        function = self.template["Resources"]["RelayAlertFunction"]["Properties"]
        self.assertEqual(function["DeadLetterConfig"]["TargetArn"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
        self.assertEqual(function["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"], {"Ref": "DeadLetterQueue"})

    def test_default_states_are_core_defaults(self):
        default = self.template["Parameters"]["AlertStates"]["Default"].split(",")
        source = (ROOT / "core" / "src" / "alert" / "mod.rs").read_text()
        core = re.search(r"pub const DEFAULT_STATES: &\[&str\] = &\[([^\]]*)\]", source).group(1)
        self.assertEqual(default, re.findall(r'"([A-Z]+)"', core))


class DailyDigest(unittest.TestCase):
    """daily-digest runs once a day at DigestHourUtc, unless that is empty, and stays silent as DigestSilence says
    in core::alert::digest's words."""

    def setUp(self):
        self.template = load_template()

    def test_the_rule_runs_the_digest_daily_at_the_configured_hour(self):
        resource = self.template["Resources"]["DigestRule"]
        self.assertEqual(resource["Condition"], "HasDigest")
        self.assertEqual(self.template["Resources"]["DailyDigestEventsPermission"]["Condition"], "HasDigest")
        self.assertEqual(self.template["Conditions"]["HasDigest"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "DigestHourUtc"}, ""]}]})
        rule = resource["Properties"]
        self.assertEqual(rule["ScheduleExpression"], {"Fn::Sub": "cron(0 ${DigestHourUtc} * * ? *)"})
        (target,) = rule["Targets"]
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["DailyDigestFunction", "Arn"]})
        self.assertEqual(target["DeadLetterConfig"], {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}})

    def test_the_hour_parameter_takes_exactly_the_hours_of_a_day_or_nothing(self):
        pattern = re.compile(self.template["Parameters"]["DigestHourUtc"]["AllowedPattern"])
        accepted = [text for text in ["", *map(str, range(-1, 30)), "07", "1.5", "x"] if pattern.fullmatch(text)]
        self.assertEqual(accepted, ["", *map(str, range(24))])

    def test_silence_values_are_cores(self):
        parameter = self.template["Parameters"]["DigestSilence"]
        source = (ROOT / "core" / "src" / "alert" / "digest.rs").read_text()
        words = re.search(r"fn from_str.*?\n    }\n", source, re.S).group(0)
        self.assertEqual(parameter["AllowedValues"], re.findall(r'"([a-z-]+)" =>', words))
        self.assertIn(parameter["Default"], parameter["AllowedValues"])
        function = self.template["Resources"]["DailyDigestFunction"]["Properties"]
        self.assertEqual(function["Environment"]["Variables"]["DIGEST_SILENCE"], {"Ref": "DigestSilence"})


class Functions(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.functions = resources(self.template, "AWS::Lambda::Function")

    def test_every_step_has_a_function_and_every_function_a_step(self):
        expected = {logical_id(step): step for step in lambda_steps()}
        self.assertGreater(len(expected), 0, "no steps under lambdas/src/steps")
        workload = resources(load_template(WORKLOAD_TEMPLATE), "AWS::Lambda::Function")
        functions = {**self.functions, **workload}
        self.assertEqual(set(functions), set(expected), "the templates and lambdas/src/steps disagree")
        for name, step in expected.items():
            props = functions[name]["Properties"]
            self.assertEqual(props["Handler"], step, name)
            self.assertEqual(props["Code"], ".build/lambdas/lambdas.zip", name)
            # A StackSet's stack name (StackSet-NAME-UUID) is too long to start a function's name.
            prefix = "${NamePrefix}" if name in workload else "${AWS::StackName}"
            self.assertEqual(props["FunctionName"], {"Fn::Sub": f"{prefix}-{step}"}, name)

    def test_every_function_is_invoked_by_the_state_machines_or_the_trigger_topic_or_a_schedule(self):
        invokable = []
        machine_roles = {m["Properties"]["RoleArn"]["Fn::GetAtt"][0]
                         for m in resources(self.template, "AWS::StepFunctions::StateMachine").values()}
        for role, statement in statements(self.template):
            if role in machine_roles and "lambda:InvokeFunction" in as_list(statement["Action"]):
                invokable += as_list(statement["Resource"])
        permissions = resources(self.template, "AWS::Lambda::Permission").values()
        subscribed = [p["Properties"]["FunctionName"] for p in permissions
                      if p["Properties"]["Principal"] == "sns.amazonaws.com"
                      and p["Properties"]["SourceArn"] == {"Ref": "TriggerTopic"}]
        schedules = {name for name, rule in resources(self.template, "AWS::Events::Rule").items()
                     if "ScheduleExpression" in rule["Properties"]}
        scheduled = [p["Properties"]["FunctionName"] for p in permissions
                     if p["Properties"]["Principal"] == "events.amazonaws.com"
                     and p["Properties"]["SourceArn"].get("Fn::GetAtt", [None])[0] in schedules]
        for name in self.functions:
            arn = {"Fn::GetAtt": [name, "Arn"]}
            callers = (arn in invokable) + (arn in subscribed) + (arn in scheduled)
            self.assertEqual(callers, 1, f"{name}: invoked by exactly one of them")
        self.assertEqual(scheduled, [{"Fn::GetAtt": ["DailyDigestFunction", "Arn"]}])
        self.assertEqual(subscribed, [{"Fn::GetAtt": ["SnsTriggerFunction", "Arn"]},
                                      {"Fn::GetAtt": ["RelayAlertFunction", "Arn"]}])

    def test_functions_run_on_provided_al2023_x86_64(self):
        for name, function in self.functions.items():
            props = function["Properties"]
            self.assertEqual(props["Runtime"], "provided.al2023", name)
            self.assertEqual(props["Architectures"], ["x86_64"], name)

    def test_each_function_has_its_own_role_and_log_group(self):
        roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in self.functions.values()]
        self.assertEqual(len(roles), len(set(roles)), "functions share a role")
        groups = resources(self.template, "AWS::Logs::LogGroup")
        for name, function in self.functions.items():
            group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            self.assertIn("KmsKeyId", groups[group]["Properties"], name)


# The AWS SDK for Rust's standard retry mode, which every Lambda uses (no RetryConfig in lambdas/): 3 attempts,
# exponential backoff from 1 s with full jitter, so at most 1 s then 2 s of waiting per call.
# https://docs.aws.amazon.com/sdk-for-rust/latest/dg/retries.html
SDK_RETRY_WAITS_SECONDS = 1 + 2


def rust_const_seconds(name):
    """`const NAME: Duration = Duration::from_secs(N)` or `const NAME: u32 = N`, wherever it is under core/ or
    lambdas/: N."""
    for path in sorted((ROOT / "core").rglob("*.rs")) + sorted((ROOT / "lambdas").rglob("*.rs")):
        match = re.search(rf"const {name}: (?:Duration = Duration::from_secs\((\d+)\)|u32 = (\d+));", path.read_text())
        if match:
            return int(match.group(1) or match.group(2))
    raise AssertionError(f"no const {name} under core/ or lambdas/")


def step_sources(step):
    """The Rust sources of one step: lambdas/<step>/ (a crate per step) or a module named after it (one crate)."""
    names = {step, step.replace("-", "_")}
    return [p for p in (ROOT / "lambdas").rglob("*.rs")
            if "common" not in p.parts and (names & set(p.parts) or p.stem in names)]


def without_tests(text):
    """A Rust source up to its `#[cfg(test)]` module: the calls a test makes are not the function's."""
    return text.split("#[cfg(test)]", 1)[0]


def shared_functions():
    """Every function under lambdas/src/common/, by name: its body (the text between its braces)."""
    functions = {}
    for path in sorted((ROOT / "lambdas" / "src" / "common").rglob("*.rs")):
        text = without_tests(path.read_text())
        for match in re.finditer(r"\bfn (\w+)\b[^{;]*\{", text):
            depth, end = 1, match.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            name, body = match.group(1), text[match.end():end]
            if name in functions and any(".send()" in b for b in (body, functions[name])):
                raise AssertionError(f"two functions named {name} under lambdas/src/common/ and one calls AWS: the "
                                     "retry budget cannot tell which one a step calls")
            functions[name] = functions.get(name, "") + body
    return functions


def calls_in(text, functions, seen=(), imported=None):
    """The AWS calls `text` makes, one per call site: its own `.send()`s, and for each call of a shared function
    (lambdas/src/common/) the calls that function makes, followed down. Also whether it posts to Slack. A step's
    bare call counts only for a name it imports from common (its own `describe` is not common's); inside common,
    every bare call of a shared name does."""
    if imported is None:
        imported = set(re.findall(r"\w+", " ".join(re.findall(r"use crate::common[^;]*;", text))))
    calls, posts = text.count(".send()"), "post_to_slack(" in text
    for name, body in functions.items():
        if name in seen:
            continue
        bare = rf"(?<![\w:.])" + name + r"\(" if name in imported else r"(?!)"
        sites = len(re.findall(rf"{bare}|\w::{name}\(|\.{name}\(", text))
        if sites:
            inner_calls, inner_posts = calls_in(body, functions, seen + (name,), set(functions))
            calls += sites * inner_calls
            posts = posts or inner_posts
    return calls, posts


def retry_budget(step):
    """The longest one invocation of `step` can spend waiting to retry, in seconds: the SDK's retry waits for each
    AWS call site in its source and in the shared functions it calls, plus a Slack delivery (core::message) for a
    step that posts to Slack (notify, relay-alert, daily-digest), whose every attempt may take
    SLACK_REQUEST_TIMEOUT and whose every retry may wait SLACK_MAX_RETRY_AFTER. Response times are not counted
    (the Lambdas set no SDK operation timeout: an unanswered call is bounded by the function's own timeout)."""
    sources = step_sources(step)
    if not sources:
        raise AssertionError(f"no Rust source for the step {step} under lambdas/")
    calls, posts = calls_in("\n".join(without_tests(p.read_text()) for p in sources), shared_functions())
    budget = calls * SDK_RETRY_WAITS_SECONDS
    if posts:
        attempts = rust_const_seconds("SLACK_MAX_ATTEMPTS")
        budget += attempts * rust_const_seconds("SLACK_REQUEST_TIMEOUT") + (attempts - 1) * rust_const_seconds(
            "SLACK_MAX_RETRY_AFTER")
    return budget


class Timeouts(unittest.TestCase):
    def test_every_function_outlasts_its_worst_case_retry_budget(self):
        functions = {**resources(load_template(), "AWS::Lambda::Function"),
                     **resources(load_template(WORKLOAD_TEMPLATE), "AWS::Lambda::Function")}
        for name, function in functions.items():
            budget, timeout = retry_budget(function["Properties"]["Handler"]), function["Properties"]["Timeout"]
            with self.subTest(function=name):
                self.assertGreaterEqual(timeout, budget, f"{name}: Timeout {timeout} s, retry budget {budget} s")

    def test_notifys_budget_is_its_slack_retries(self):
        # 4 attempts of up to 10 s, 3 waits of up to 30 s, and the SSM and SNS calls' SDK retries
        self.assertEqual(retry_budget("notify"), 4 * 10 + 3 * 30 + 2 * SDK_RETRY_WAITS_SECONDS)

    def test_relay_alerts_budget_is_its_slack_retries(self):
        # The same Slack delivery (one webhook per event), plus the SDK retries of each call site: two webhook
        # parameters read (SSM), DescribeBackupJob/CopyJob/RestoreJob, the claim's PutObject and DeleteObject,
        # Publish (one site for the text and the chat topics) and the dead-letter SendMessage.
        self.assertEqual(retry_budget("relay-alert"), 4 * 10 + 3 * 30 + 9 * SDK_RETRY_WAITS_SECONDS)

    def test_the_drill_reports_budget_is_its_slack_retries(self):
        # notify's Slack delivery, plus the SDK retries of each call site: two webhook parameters read (SSM), the
        # results' GetObject (common::storage, one site), the report's PutObject and the Publish.
        self.assertEqual(retry_budget("drill-report"), 4 * 10 + 3 * 30 + 5 * SDK_RETRY_WAITS_SECONDS)

    def test_the_daily_digests_budget_is_its_slack_retries(self):
        # The relay's Slack delivery, plus the SDK retries of each call site: two webhook parameters read (SSM),
        # ListBackupJobs, ListCopyJobs, ListRestoreJobs, ListObjectsV2, the manifests' GetObject (in
        # common::storage) and Publish (one site for both topics, in common::channels).
        self.assertEqual(retry_budget("daily-digest"), 4 * 10 + 3 * 30 + 8 * SDK_RETRY_WAITS_SECONDS)

    def test_calls_made_in_shared_code_count_for_the_step_that_calls_it(self):
        # check-volume makes no AWS call of its own: DescribeVolumes is in common::volumes.
        self.assertEqual(retry_budget("check-volume"), 1 * SDK_RETRY_WAITS_SECONDS)


class Iam(unittest.TestCase):
    def setUp(self):
        self.template = load_template()

    def test_volume_actions_require_our_tags(self):
        checked = 0
        for role, statement in statements(self.template):
            actions = {a.lower() for a in as_list(statement["Action"])}
            resources_ = json.dumps(statement["Resource"])
            condition = statement.get("Condition", {}).get("StringEquals", {})
            if actions & TAGGED_VOLUME_ACTIONS:
                checked += 1
                self.assertNotEqual(statement["Resource"], "*", role)
                if "volume/" in resources_:
                    self.assertEqual(condition.get(f"aws:ResourceTag/{VOLUME_TAG}"), {"Ref": "AWS::StackName"},
                                     f"{role}: {sorted(actions)} on volumes of this stack only")
                if "instance/" in resources_:
                    self.assertIn(f"aws:ResourceTag/{STACK_TAG}", condition, f"{role}: {sorted(actions)}")
                self.assertFalse("volume/" in resources_ and "instance/" in resources_, f"{role}: one tag per resource type")
            if "ec2:createvolume" in actions and "volume/" in resources_:
                checked += 1
                self.assertEqual(condition.get(f"aws:RequestTag/{VOLUME_TAG}"), {"Ref": "AWS::StackName"},
                                 f"{role}: CreateVolume without the stack's tag")
        self.assertGreater(checked, 0)

    def test_database_table_and_password_actions_require_our_tag(self):
        checked = 0
        for role, statement in statements(self.template):
            if any(statement is webhook for webhook in self.slack_webhook_statements()):
                continue  # the user's own parameter, named by a parameter: see the test of it
            actions = {a.lower() for a in as_list(statement["Action"])}
            resources_ = json.dumps(statement["Resource"])
            condition = statement.get("Condition", {}).get("StringEquals", {})
            for action in actions & TAGGED_RUNTIME_ACTIONS:
                checked += 1
                self.assertNotEqual(statement["Resource"], "*", f"{role}: {action}")
                self.assertEqual(condition.get(f"aws:ResourceTag/{VOLUME_TAG}"), {"Ref": "AWS::StackName"},
                                 f"{role}: {action} only on what this stack tagged")
            for action in actions & TAGGED_CREATE_ACTIONS:
                if not any(kind in resources_ for kind in (":db:", ":cluster:", ":parameter/", ":table/")):
                    continue  # the other side of a create (the snapshot read, the subnet group)
                checked += 1
                tagged = condition.get(f"aws:RequestTag/{VOLUME_TAG}") == {"Ref": "AWS::StackName"} or (
                    condition.get(f"aws:ResourceTag/{VOLUME_TAG}") == {"Ref": "AWS::StackName"})
                self.assertTrue(tagged, f"{role}: {action} without the stack's tag")
        self.assertGreater(checked, 0)

    def test_temporary_tables_and_passwords_stay_under_the_flows_names(self):
        for role, statement in statements(self.template):
            if any(statement is webhook for webhook in self.slack_webhook_statements()):
                continue
            for action in as_list(statement["Action"]):
                text = json.dumps(statement["Resource"])
                if action.startswith("ssm:"):
                    self.assertIn(":parameter/backup-archiver/*", text, f"{role}: {action}")
                if action in {"dynamodb:DeleteTable", "dynamodb:UpdateContinuousBackups", "dynamodb:TagResource",
                              "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem",
                              "dynamodb:RestoreTableFromAwsBackup"}:
                    self.assertIn(":table/backup-archiver-*", text, f"{role}: {action}")
                    self.assertNotIn('table/*"', text, f"{role}: {action}")

    def slack_webhook_statements(self):
        """The statements that read a Slack webhook's parameter (notify's, relay-alert's two, daily-digest's two)."""
        return [s for _, s in statements(self.template)
                if isinstance(s, dict) and s.get("Sid") in ("ReadTheSlackWebhook", "ReadTheFailureSlackWebhook")]

    def test_only_notify_and_the_relay_read_the_slack_webhooks_and_only_their_parameters(self):
        readers = [(role, s) for role, s in statements(self.template)
                   if any(a.lower() == "ssm:getparameter" for a in as_list(s["Action"]))
                   and "SlackWebhookParameterName" in json.dumps(s["Resource"])]
        self.assertEqual([role for role, _ in readers],
                         ["NotifyFunctionRole", "RelayAlertFunctionRole", "RelayAlertFunctionRole",
                          "DailyDigestFunctionRole", "DailyDigestFunctionRole",
                          "DrillReportFunctionRole", "DrillReportFunctionRole"])
        for (_, statement), parameter in zip(readers, ["SlackWebhookParameterName", "SlackWebhookParameterName",
                                                        "FailureSlackWebhookParameterName", "SlackWebhookParameterName",
                                                        "FailureSlackWebhookParameterName", "SlackWebhookParameterName",
                                                        "FailureSlackWebhookParameterName"]):
            self.assertEqual(as_list(statement["Action"]), ["ssm:GetParameter"])
            self.assertEqual(statement["Resource"], {"Fn::Sub": (
                f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{parameter}}}")})

    def test_instances_carry_the_stack_tag(self):
        for name, environment in resources(self.template, "AWS::Batch::ComputeEnvironment").items():
            self.assertIn(STACK_TAG, environment["Properties"]["ComputeResources"]["Tags"], name)

    def test_pass_role_names_the_service(self):
        for role, statement in statements(self.template):
            if "iam:passrole" in {a.lower() for a in as_list(statement["Action"])}:
                self.assertIn("iam:PassedToService", json.dumps(statement.get("Condition", {})), role)
                self.assertNotEqual(statement["Resource"], "*", role)

    def test_only_aws_backup_assumes_the_restore_role_and_only_start_table_export_passes_it(self):
        role = resources(self.template, "AWS::IAM::Role")["DynamodbRestoreRole"]["Properties"]
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(trust["Principal"], {"Service": "backup.amazonaws.com"})
        passers = {name for name, statement in statements(self.template) if "iam:PassRole" in as_list(statement["Action"])
                   and "DynamodbRestoreRole" in json.dumps(statement["Resource"])}
        self.assertEqual(passers, {"StartTableExportFunctionRole"})

    def test_no_wildcard_actions(self):
        for role, statement in statements(self.template):
            for action in as_list(statement["Action"]):
                self.assertFalse(action == "*" or action.endswith(":*"), f"{role}: {action}")

    def test_delete_recovery_point_only_when_configured(self):
        found = False
        for role, statement, condition in statements(self.template, with_condition=True):
            if "backup:deleterecoverypoint" in {a.lower() for a in as_list(statement["Action"])}:
                found = True
                self.assertEqual(condition, "MayDeleteRecoveryPoints", f"{role}: granted even when not configured")
        self.assertTrue(found or not (ROOT / "lambdas" / "src" / "steps" / "delete_recovery_point.rs").exists(), "nobody may delete")


class Worker(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.job = self.template["Resources"]["WorkerJobDefinition"]

    def test_retries_spot_interruptions_and_nothing_else(self):
        rules = self.job["Properties"]["RetryStrategy"]["EvaluateOnExit"]
        self.assertEqual(rules[0], {"OnStatusReason": "Host EC2*", "Action": "RETRY"})
        self.assertEqual(rules[-1], {"OnReason": "*", "Action": "EXIT"})
        self.assertEqual(len(rules), 2)

    def test_privileged_with_host_dev_and_a_timeout(self):
        props = self.job["Properties"]
        container = props["ContainerProperties"]
        self.assertTrue(container["Privileged"])
        self.assertIn({"Name": "host-dev", "Host": {"SourcePath": "/dev"}}, container["Volumes"])
        self.assertIn("AttemptDurationSeconds", props["Timeout"])

    def test_command_uses_only_the_parameters_the_flow_passes(self):
        # core::flows::ebs JOB_PARAMETERS: what the ASL's SubmitJob passes; the job definition's own
        # Parameters are defaults. A Ref:: to anything else would reach the worker literally.
        flow = (ROOT / "core" / "src" / "flows" / "ebs.rs").read_text()
        match = re.search(r"pub const JOB_PARAMETERS: &\[&str\] = &\[([^\]]*)\]", flow)
        self.assertIsNotNone(match, "core::flows::ebs JOB_PARAMETERS not found")
        passed = set(re.findall(r'"([a-z_]+)"', match.group(1)))
        defaults = set(self.job["Properties"].get("Parameters", {}))
        command = self.job["Properties"]["ContainerProperties"]["Command"]
        refs = {arg.removeprefix("Ref::") for arg in command if arg.startswith("Ref::")}
        self.assertEqual(refs - passed - defaults, set())
        self.assertIn("volume_id", refs)

    def test_job_definitions_are_the_volume_direct_dump_and_drill_jobs(self):
        self.assertEqual(set(resources(self.template, "AWS::Batch::JobDefinition")),
                         {"WorkerJobDefinition", "DirectJobDefinition", "DumpJobDefinition", "DrillJobDefinition"})

    def test_one_spot_queue_per_availability_zone(self):
        queues = resources(self.template, "AWS::Batch::JobQueue")
        environments = self.template["Resources"]
        for name, queue in queues.items():
            order = sorted(queue["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
            first = environments[order[0]["ComputeEnvironment"]["Ref"]]["Properties"]["ComputeResources"]
            second = environments[order[1]["ComputeEnvironment"]["Ref"]]["Properties"]["ComputeResources"]
            self.assertEqual((first["Type"], first["AllocationStrategy"]), ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED"), name)
            self.assertEqual(second["Type"], "EC2", name)
            self.assertEqual(len(first["Subnets"]), 1, f"{name}: one AZ per queue")


class DumpJob(unittest.TestCase):
    def setUp(self):
        self.template = load_template()
        self.job = self.template["Resources"]["DumpJobDefinition"]["Properties"]
        self.worker = self.template["Resources"]["WorkerJobDefinition"]["Properties"]

    def test_same_image_timeout_and_spot_only_retry_as_the_volume_job(self):
        self.assertEqual(self.job["ContainerProperties"]["Image"], self.worker["ContainerProperties"]["Image"])
        self.assertEqual(self.job["Timeout"], self.worker["Timeout"])
        self.assertEqual(self.job["RetryStrategy"], self.worker["RetryStrategy"])

    def test_network_only_not_privileged_no_host_devices(self):
        container = self.job["ContainerProperties"]
        self.assertFalse(container.get("Privileged", False))
        self.assertNotIn("Volumes", container)
        self.assertNotIn("MountPoints", container)

    def test_own_role_without_volume_actions(self):
        role = self.job["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0]
        self.assertNotEqual(role, self.worker["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0])
        for name, statement in statements(self.template):
            if name == role:
                self.assertFalse(any(a.startswith("ec2:") for a in as_list(statement["Action"])), statement)

    def test_command_is_batch_worker_dump_with_the_parameters_the_flow_passes(self):
        command = self.job["ContainerProperties"]["Command"]
        self.assertEqual(command[0], "dump")
        refs = {arg.removeprefix("Ref::") for arg in command if arg.startswith("Ref::")}
        passed = rust_str_list(ROOT / "core" / "src" / "flows" / "rds_dump.rs", "DUMP_JOB_PARAMETERS")
        self.assertIsNotNone(passed, "core::flows::rds_dump DUMP_JOB_PARAMETERS not found")
        defaults = set(self.job.get("Parameters", {}))
        self.assertEqual(refs - passed - defaults, set(), "Ref:: to a parameter nobody passes")
        self.assertEqual(passed - refs, set(), "a parameter the flow passes that the command ignores")


class RestoreDrill(unittest.TestCase):
    """The restore drill runs on DrillSchedule unless it is off; its job reads archives, is not privileged, passes
    only the parameters pick-drill sets, and may make and delete only snapshots tagged with the stack's name, and only
    when DrillRestoreToSnapshot is true."""

    def setUp(self):
        self.template = load_template()
        self.job = self.template["Resources"]["DrillJobDefinition"]["Properties"]
        self.worker = self.template["Resources"]["WorkerJobDefinition"]["Properties"]

    def test_the_schedule_starts_the_drill_unless_off(self):
        rule = self.template["Resources"]["DrillScheduleRule"]
        self.assertEqual(rule["Condition"], "HasDrillSchedule")
        self.assertEqual(self.template["Conditions"]["HasDrillSchedule"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "DrillSchedule"}, "off"]}]})
        (target,) = rule["Properties"]["Targets"]
        self.assertEqual(target["Arn"], {"Ref": "RestoreDrillStateMachine"})
        self.assertIn("DeadLetterConfig", target)
        role = target["RoleArn"]["Fn::GetAtt"][0]
        allowed = [s["Resource"] for r, s in statements(self.template) if r == role]
        self.assertEqual(allowed, [{"Ref": "RestoreDrillStateMachine"}])
        pattern = re.compile(self.template["Parameters"]["DrillSchedule"]["AllowedPattern"])
        for good in ["off", "cron(0 3 ? * SUN *)", "rate(7 days)", self.template["Parameters"]["DrillSchedule"]["Default"]]:
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in ["", "weekly", "cron 0 3"]:
            self.assertFalse(pattern.fullmatch(bad), bad)

    def test_archives_per_drill_are_cores_bounds(self):
        source = (ROOT / "core" / "src" / "flows" / "restore_drill.rs").read_text()
        default = int(re.search(r"pub const DEFAULT_DRILL_ARCHIVES: u32 = (\d+);", source).group(1))
        most = int(re.search(r"pub const MAX_DRILL_ARCHIVES: u32 = (\d+);", source).group(1))
        parameter = self.template["Parameters"]["DrillArchives"]
        self.assertEqual((int(parameter["Default"]), int(parameter["MinValue"]), int(parameter["MaxValue"])),
                         (default, 1, most))

    def test_command_is_batch_worker_drill_with_the_parameters_pick_drill_passes(self):
        command = self.job["ContainerProperties"]["Command"]
        self.assertEqual(command[0], "drill")
        refs = {arg.removeprefix("Ref::") for arg in command if arg.startswith("Ref::")}
        passed = rust_str_list(ROOT / "core" / "src" / "flows" / "restore_drill.rs", "DRILL_JOB_PARAMETERS")
        self.assertEqual(refs, passed)

    def test_same_image_timeout_and_retry_as_the_volume_job_not_privileged(self):
        self.assertEqual(self.job["ContainerProperties"]["Image"], self.worker["ContainerProperties"]["Image"])
        self.assertEqual(self.job["Timeout"], self.worker["Timeout"])
        self.assertEqual(self.job["RetryStrategy"], self.worker["RetryStrategy"])
        self.assertFalse(self.job["ContainerProperties"]["Privileged"])
        self.assertNotIn("Volumes", self.job["ContainerProperties"])

    def test_snapshots_only_when_configured_and_only_ours(self):
        role = self.job["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0]
        snapshot_actions = 0
        for name, statement, condition in statements(self.template, with_condition=True):
            if name != role:
                continue
            actions = {a.lower() for a in as_list(statement["Action"])}
            if any(a.startswith(("ebs:", "ec2:")) for a in actions):
                self.assertEqual(condition, "DrillRestoresSnapshots", statement)
                snapshot_actions += 1
            if actions & {"ebs:startsnapshot", "ebs:putsnapshotblock", "ebs:completesnapshot", "ec2:deletesnapshot",
                          "ec2:createtags"}:
                tags = json.dumps(statement["Condition"]["StringEquals"])
                self.assertIn(f"/{VOLUME_TAG}", tags, statement)
            self.assertNotIn("s3:deleteobject", actions, "a drill never deletes archives")
        self.assertEqual(snapshot_actions, 3)


class DirectJob(unittest.TestCase):
    """The EBS flow's direct read path (ReadPath direct): the worker reads the snapshot's blocks over HTTPS."""

    def setUp(self):
        self.template = load_template()
        self.job = self.template["Resources"]["DirectJobDefinition"]["Properties"]
        self.worker = self.template["Resources"]["WorkerJobDefinition"]["Properties"]

    def test_same_image_timeout_and_spot_only_retry_as_the_volume_job(self):
        self.assertEqual(self.job["ContainerProperties"]["Image"], self.worker["ContainerProperties"]["Image"])
        self.assertEqual(self.job["Timeout"], self.worker["Timeout"])
        self.assertEqual(self.job["RetryStrategy"], self.worker["RetryStrategy"])

    def test_not_privileged_no_host_devices(self):
        container = self.job["ContainerProperties"]
        self.assertFalse(container.get("Privileged", False))
        self.assertNotIn("Volumes", container)
        self.assertNotIn("MountPoints", container)

    def test_the_state_machine_may_submit_it(self):
        name = self.job["JobDefinitionName"]["Fn::Sub"]
        self.assertTrue(name.startswith("${AWS::StackName}-worker"), "SubmitArchiveJobs names job-definition/<stack>-worker*")

    def test_its_role_reads_snapshot_blocks_and_touches_no_volume(self):
        role = self.job["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0]
        self.assertNotIn(role, {self.worker["ContainerProperties"]["JobRoleArn"]["Fn::GetAtt"][0],
                                self.template["Resources"]["DumpJobDefinition"]["Properties"]["ContainerProperties"]
                                ["JobRoleArn"]["Fn::GetAtt"][0]})
        actions = set()
        for name, statement in statements(self.template):
            if name == role:
                actions |= {a.lower() for a in as_list(statement["Action"])}
        self.assertFalse({a for a in actions if a.startswith("ec2:")}, actions)
        self.assertEqual({a for a in actions if a.startswith("ebs:")}, {"ebs:listsnapshotblocks", "ebs:getsnapshotblock"})
        for name, statement, condition in statements(self.template, with_condition=True):
            if name == role and any(a.startswith("kms:") for a in as_list(statement["Action"])):
                self.assertIn("kms:ViaService", statement["Condition"]["StringEquals"], statement)
                if "ebs" in json.dumps(statement["Condition"]):
                    self.assertEqual(as_list(statement["Action"]), ["kms:Decrypt"])
                    self.assertEqual(condition, "HasSnapshotKeys")

    def test_command_is_the_snapshot_read_with_the_parameters_the_flow_passes(self):
        command = self.job["ContainerProperties"]["Command"]
        self.assertEqual(command[:2], ["--snapshot", "Ref::snapshot_id"])
        refs = {arg.removeprefix("Ref::") for arg in command if arg.startswith("Ref::")}
        passed = rust_str_list(ROOT / "core" / "src" / "flows" / "ebs.rs", "DIRECT_JOB_PARAMETERS")
        self.assertIsNotNone(passed, "core::flows::ebs DIRECT_JOB_PARAMETERS not found")
        defaults = set(self.job.get("Parameters", {}))
        self.assertEqual(refs - passed - defaults, set(), "Ref:: to a parameter nobody passes")

    def test_the_read_path_parameter_reaches_the_plan_as_cores_values(self):
        parameter = self.template["Parameters"]["ReadPath"]
        self.assertEqual((parameter["AllowedValues"], parameter["Default"]), (["volume", "direct"], "volume"))
        config = self.template["Resources"]["PlanFunction"]["Properties"]["Environment"]["Variables"]["PLAN_CONFIG"]
        self.assertIn('"read_path": "${ReadPath}"', config["Fn::Sub"][0])
        request = (ROOT / "core" / "src" / "request.rs").read_text()
        enum = re.search(r"pub enum ReadPath \{(.*?)\n\}", request, re.S).group(1)
        self.assertEqual(re.findall(r"^    ([A-Z][a-z]+),", enum, re.M), ["Volume", "Direct"])


class Bucket(unittest.TestCase):
    def test_archive_bucket_and_key_survive_the_stack(self):
        template = load_template()
        for name in ("ArchiveBucket", "ArchiveKey"):
            self.assertEqual(template["Resources"][name]["DeletionPolicy"], "Retain", name)
            self.assertEqual(template["Resources"][name]["UpdateReplacePolicy"], "Retain", name)


class Parameters(unittest.TestCase):
    def test_example_parameters_name_template_parameters_and_every_required_one(self):
        template = load_template()
        params = template["Parameters"]
        example = json.loads((INFRA / "parameters.example.json").read_text())["Parameters"]
        self.assertEqual(set(example) - set(params), set(), "unknown parameters in parameters.example.json")
        required = {name for name, p in params.items() if "Default" not in p and name != "ImageTag"}
        self.assertEqual(required - set(example), set(), "required parameters missing from the example")
        for name, value in example.items():
            self.assertIsInstance(value, str, f"{name}: CloudFormation parameter values are strings")


if __name__ == "__main__":
    unittest.main()


class Workload(unittest.TestCase):
    """The organisation flow's workload template (issue 10): the same IAM invariants, and the copy role passed only
    by start-copy, only to AWS Backup."""

    def setUp(self):
        self.template = load_template(WORKLOAD_TEMPLATE)

    def test_only_start_copy_passes_the_copy_role_and_only_to_aws_backup(self):
        passes = [(role, statement) for role, statement in statements(self.template)
                  if "iam:passrole" in {a.lower() for a in as_list(statement["Action"])}]
        self.assertEqual([role for role, _ in passes], ["StartCopyFunctionRole"])
        [(_, statement)] = passes
        self.assertEqual(statement["Resource"], {"Fn::GetAtt": ["CopyRole", "Arn"]})
        self.assertEqual(statement["Condition"], {"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}})
        [trust] = resources(self.template, "AWS::IAM::Role")["CopyRole"]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"]
        self.assertEqual(trust["Principal"], {"Service": "backup.amazonaws.com"})

    def test_no_wildcard_actions(self):
        for role, statement in statements(self.template):
            for action in as_list(statement["Action"]):
                self.assertFalse(action == "*" or action.endswith(":*"), f"{role}: {action}")

    def test_the_error_queue_takes_tls_only_and_only_the_rules_and_the_steps(self):
        policy = resources(self.template, "AWS::SQS::QueuePolicy")["ErrorQueuePolicy"]["Properties"]["PolicyDocument"]
        by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
        self.assertEqual(by_sid["TlsOnly"]["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
        deny = by_sid["OnlyTheRulesAndTheStepsSend"]
        self.assertEqual((deny["Effect"], deny["Principal"], deny["Action"]), ("Deny", "*", "sqs:SendMessage"))
        senders = json.dumps(deny["Condition"])
        for sender in ("FailedBackupJobRule", "FailedCopyJobRule", "StartCopyFunctionRole",
                       "ShortenRetentionFunctionRole"):
            self.assertIn(sender, senders)
        for config in resources(self.template, "AWS::Lambda::EventInvokeConfig").values():
            self.assertEqual(config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
                             {"Fn::GetAtt": ["ErrorQueue", "Arn"]})

    def test_names_fit_with_the_longest_name_prefix(self):
        """A StackSet's stack is StackSet-NAME-UUID (65 characters and more): the names start with NamePrefix instead,
        whose longest value leaves every function's and rule's name within Lambda's and EventBridge's 64."""
        pattern = self.template["Parameters"]["NamePrefix"]["AllowedPattern"]
        longest = 1 + int(re.fullmatch(r"\^\[a-zA-Z\]\[a-zA-Z0-9-\]\{0,(\d+)\}\$", pattern).group(1))
        for kind, field in (("AWS::Lambda::Function", "FunctionName"), ("AWS::Events::Rule", "Name")):
            for name, resource in resources(self.template, kind).items():
                sub = resource["Properties"][field]["Fn::Sub"]
                self.assertTrue(sub.startswith("${NamePrefix}-"), name)
                self.assertLessEqual(longest + len(sub) - len("${NamePrefix}"), 64, name)
