"""Job-event alerts end to end (issue 11): the real relay-alert Lambda, deployed from infra/template.yaml into the
emulator, relays AWS Backup's events to the local Slack stand-in (answering 200, 429 or 500 as scripted) and to the
notification topic, once per job and state (its claim is an S3 conditional write in the emulated archive bucket), and
puts what it cannot read or deliver in the dead-letter queue. Every call it makes passes the IAM check.

The emulator does not deliver SNS subscriptions or EventBridge rules to Lambda functions, so each test invokes the
function with the payload SNS or EventBridge would hand it (an SNS delivery `{"Records": [...]}` or the event), as the
template's TriggerTopic subscription and JobAlertRule do in AWS."""

import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import FIXTURES, KEEP_VAULT, settings, sns_messages
from emulator.deploy import deploy
from slack import FakeSlack

# (fixture, state, sent with the default AlertStates FAILED, ABORTED, EXPIRED, PARTIAL)
EVENTS = [
    ("eventbridge-backup-job-failed.json", "FAILED", True),
    ("alerts/eventbridge-backup-job-aborted.json", "ABORTED", True),
    ("alerts/eventbridge-backup-job-expired.json", "EXPIRED", True),
    ("alerts/eventbridge-backup-job-partial.json", "PARTIAL", True),
    ("alerts/eventbridge-backup-job-created.json", "CREATED", False),
    ("alerts/eventbridge-backup-job-running.json", "RUNNING", False),
    ("eventbridge-backup-job-completed-ebs.json", "COMPLETED", False),
    ("eventbridge-copy-job-failed.json", "FAILED", True),
    ("alerts/eventbridge-copy-job-running.json", "RUNNING", False),
    ("eventbridge-copy-job-completed.json", "COMPLETED", False),
    ("alerts/eventbridge-restore-job-failed.json", "FAILED", True),
    ("alerts/eventbridge-restore-job-completed.json", "COMPLETED", False),
    ("alerts/eventbridge-recovery-point-state-change-expired.json", "EXPIRED", True),
    ("alerts/eventbridge-recovery-point-state-change-partial.json", "PARTIAL", True),
    ("alerts/eventbridge-recovery-point-state-change-completed.json", "COMPLETED", False),
    ("sns-backup-vault-backup-job-failed.json", "FAILED", True),
    ("sns-backup-vault-backup-job-expired.json", "EXPIRED", True),
    ("sns-backup-vault-backup-job-completed.json", "COMPLETED", False),
    ("alerts/sns-backup-vault-copy-job-failed.json", "FAILED", True),
    ("alerts/sns-backup-vault-restore-job-completed.json", "COMPLETED", False),
    ("alerts/sns-backup-vault-recovery-point-modified.json", "MODIFIED", False),
    ("alerts/sns-backup-vault-backup-job-started-older-name.json", "STARTED", False),
    ("alerts/sns-backup-vault-backup-job-completed-older-name.json", "COMPLETED", False),
    ("alerts/sns-backup-vault-backup-job-failed-older-name.json", "FAILED", True),
    ("alerts/sns-backup-vault-backup-job-expired-older-name.json", "EXPIRED", True),
    ("alerts/sns-eventbridge-backup-job-failed.json", "FAILED", True),
]

UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
SNAPSHOT = re.compile(r"snap-[0-9a-f]{17}")


def fresh(name: str) -> dict:
    """A fixture with new job ids and snapshots (the same within it), so that each test's events are new to the
    relay's claims whatever ran before."""
    text, ids = (FIXTURES / name).read_text(), {}
    text = UUID.sub(lambda m: ids.setdefault(m.group(0), str(uuid.uuid4()).upper()), text)
    text = SNAPSHOT.sub(lambda m: ids.setdefault(m.group(0), "snap-" + uuid.uuid4().hex[:17]), text)
    return json.loads(text)


def relay(aws, stack, event: dict) -> dict:
    response = aws.client("lambda").invoke(FunctionName=stack.functions["relay-alert"], Payload=json.dumps(event))
    answer = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, answer
    return answer


def dead_letters(aws, stack) -> list[dict]:
    """The relay's messages in the stack's dead-letter queue, taken off it."""
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{stack.settings.name}-dead-letters")["QueueUrl"]
    found = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if body.get("source") == "relay-alert":
                found.append(body)
    return found


@pytest.mark.parametrize("name,state,sent", EVENTS, ids=[e[0].removeprefix("alerts/") for e in EVENTS])
def test_each_event_type_and_state_is_relayed_or_filtered(aws, keep_stack, slack, name, state, sent):
    answer = relay(aws, keep_stack, fresh(name))
    if sent:
        assert answer.get("sent") == ["Slack webhook", "SNS topic"], answer
        [message] = slack.delivered()
        assert state in message["text"], message["text"]
        [text] = sns_messages(aws, keep_stack)
        assert state in text.splitlines()[0], text
    else:
        assert state in answer.get("filtered", ""), answer
        assert slack.delivered() == [] and sns_messages(aws, keep_stack) == []


def test_a_redelivery_and_the_same_change_by_the_other_route_send_one_message(aws, keep_stack, slack):
    by_rule = fresh("eventbridge-backup-job-failed.json")
    job = by_rule["detail"]["backupJobId"]
    by_vault = json.loads((FIXTURES / "sns-backup-vault-backup-job-failed.json").read_text().replace(
        "6A5B4C3D-2E1F-0A9B-8C7D-6E5F4A3B2C1D", job))
    answers = [relay(aws, keep_stack, event) for event in (by_rule, by_rule, by_vault)]
    assert "sent" in answers[0], answers
    assert answers[1]["duplicate"] == answers[2]["duplicate"] == f"backups/.alerts/backup-job/{job}/FAILED", answers
    assert len(slack.delivered()) == 1 and len(sns_messages(aws, keep_stack)) == 1
    aborted = json.loads(json.dumps(by_rule).replace('"FAILED"', '"ABORTED"'))
    assert "sent" in relay(aws, keep_stack, aborted), "another state of the job is another message"


def test_two_deliveries_at_the_same_instant_send_one_message(aws, keep_stack, slack):
    # The emulator runs several processes per function, as Lambda runs concurrent invocations: only the conditional
    # write of the claim stands between the two deliveries and two messages.
    event = fresh("alerts/eventbridge-backup-job-partial.json")
    start = threading.Barrier(2)

    def deliver():
        start.wait()
        return relay(aws, keep_stack, event)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: deliver(), range(2)))
    assert sorted("sent" in a for a in answers) == [False, True] and any("duplicate" in a for a in answers), answers
    assert len(slack.delivered()) == 1 and len(sns_messages(aws, keep_stack)) == 1


def test_a_429_is_retried_after_retry_after(aws, keep_stack, slack):
    slack.answer_next(429, retry_after=1)
    answer = relay(aws, keep_stack, fresh("alerts/eventbridge-backup-job-aborted.json"))
    assert "sent" in answer, answer
    assert [status for status, _ in slack.requests] == [429, 200]
    assert dead_letters(aws, keep_stack) == []


def test_a_malformed_event_goes_to_the_dead_letter_queue(aws, keep_stack, slack):
    dead_letters(aws, keep_stack)
    event = fresh("eventbridge-backup-job-failed.json")
    del event["detail"]["state"]
    answer = relay(aws, keep_stack, event)
    assert answer["dead_letter"] == "malformed" and "detail.state" in answer["error"], answer
    [letter] = dead_letters(aws, keep_stack)
    assert letter["reason"] == "malformed" and letter["event"] == event, letter
    assert slack.delivered() == []


def test_slack_down_puts_the_event_in_the_dead_letter_queue(aws, keep_stack, slack):
    dead_letters(aws, keep_stack)
    for _ in range(4):  # core::message SLACK_MAX_ATTEMPTS
        slack.answer_next(500)
    event = fresh("alerts/eventbridge-restore-job-failed.json")
    answer = relay(aws, keep_stack, event)
    assert answer["dead_letter"] == "undelivered" and answer["sent"] == ["SNS topic"], answer
    assert [status for status, _ in slack.requests] == [500] * 4
    [letter] = dead_letters(aws, keep_stack)
    assert letter["event"] == event and "Slack webhook" in letter["error"] and "500" in letter["error"], letter


@pytest.fixture(scope="module")
def failure_slack():
    server = FakeSlack()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def routed_stack(aws, proxy, slack, failure_slack, device, iam):
    """A stack whose alerts send COMPLETED too, only about one vault and EBS or RDS, failures to their own webhook."""
    # Its own archive vault (vaults are per account); the alert filter names the vault the events are about.
    s = settings("alerts", "alerts-archive-vault", False, device, proxy, slack)
    aws.client("ssm").put_parameter(Name="/alerts/failure-webhook", Value=failure_slack.url, Type="SecureString",
                                    Overwrite=True)
    s.parameters = {"AlertStates": "FAILED,COMPLETED", "AlertVaultNames": KEEP_VAULT, "AlertResourceTypes": "EBS,RDS",
                    "FailureSlackWebhookParameterName": "/alerts/failure-webhook"}
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


def test_filters_and_routes(aws, routed_stack, slack, failure_slack):
    failure_slack.reset()
    failed, completed = fresh("eventbridge-backup-job-failed.json"), fresh("eventbridge-backup-job-completed-ebs.json")
    assert "sent" in relay(aws, routed_stack, failed)
    assert "sent" in relay(aws, routed_stack, completed)
    assert [m["text"] for m in failure_slack.delivered()] == [
        ":rotating_light: Backup job FAILED: EBS vol-0123456789abcdef0 in archive-vault"]
    assert [m["text"] for m in slack.delivered()] == [
        ":white_check_mark: Backup job COMPLETED: EBS vol-0fedcba9876543210 in archive-vault"]
    other_vault = fresh("eventbridge-backup-job-failed.json")
    other_vault["detail"]["backupVaultName"] = "another-vault"
    del other_vault["detail"]["backupVaultArn"]
    assert "another-vault" in relay(aws, routed_stack, other_vault)["filtered"]
    efs = fresh("eventbridge-backup-job-failed.json")
    efs["detail"]["resourceType"] = "EFS"
    assert "EFS" in relay(aws, routed_stack, efs)["filtered"]
    assert "ABORTED" in relay(aws, routed_stack, fresh("alerts/eventbridge-backup-job-aborted.json"))["filtered"]
    assert len(failure_slack.delivered()) == 1 and len(slack.delivered()) == 1
