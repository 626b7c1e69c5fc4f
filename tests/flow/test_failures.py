"""Every way the EBS flow can go wrong, on the stack configured to delete recovery points: each shows that the
temporary volume is gone (no leak), that the recovery point and its snapshot are still there (the emulator's AWS
Backup deletes the snapshot with its recovery point, so a wrong deletion would show), that one failure
notification was sent, and the execution's status and error."""

import json
import os
import signal
import threading

from conftest import (
    DELETE_VAULT, ROOT, backup_job, cli, created_volume_ids, executions, finished, new_executions, output_of,
    put_event, recovery_point_fate, settle, states_entered, submitted_jobs, volumes_of, wait_for_running_job,
)
from emulator.deploy import register_job_definition
from faults import wait_until


def ebs_state_machine() -> dict:
    return json.loads((ROOT / "state-machines" / "ebs-archive.asl.json").read_text())


def start(aws, stack, vault=DELETE_VAULT, resource_type="EBS"):
    snapshot_id, event = backup_job(aws, vault, resource_type)
    before = executions(aws, stack)
    put_event(aws, event)
    [arn] = new_executions(aws, stack, before)
    return arn, snapshot_id, event


def assert_failed_cleanly(aws, proxy, slack, execution, error, event, volume_created=True):
    arn = execution["executionArn"]
    assert execution["status"] == "FAILED", execution
    assert execution.get("error") == error, execution
    entered = states_entered(aws, arn)
    # Our errors end in `Failed` (States.* ones would end in FailedInStepFunctions).
    assert entered[-4:] == ["Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert "DeleteRecoveryPoint" not in entered
    assert proxy.actions("DeleteRecoveryPoint") == [], "the recovery point must be kept"
    assert recovery_point_fate(aws, event) == "kept"
    # The one volume CreateVolume made (if the flow got that far) is gone.
    assert len(created_volume_ids(aws, arn)) == (1 if volume_created else 0), created_volume_ids(aws, arn)
    assert volumes_of(aws, arn) == [], "no temporary volume is left"
    [message] = slack.delivered()
    assert f"FAILED: {error}" in message["text"], message
    return message


def test_volume_that_never_becomes_available_is_deleted_and_no_job_runs(aws, delete_stack, proxy, slack):
    proxy.report_volumes_creating()
    arn, _, event = start(aws, delete_stack)
    execution = finished(aws, arn)
    message = assert_failed_cleanly(aws, proxy, slack, execution, "VolumeNotReady", event)
    assert submitted_jobs(aws, arn) == []
    # The bounded poll: CheckVolume (which describes its one volume by id) ran once and then once per attempt of
    # its VolumeNotReady Retry, and then stopped rather than looping.
    [retry] = [r for r in ebs_state_machine()["States"]["CheckVolume"]["Retry"]
               if r["ErrorEquals"] == ["VolumeNotReady"]]
    checks = [c for c in proxy.actions("DescribeVolumes") if "VolumeId.1" in c.params]
    assert len(checks) == 1 + retry["MaxAttempts"], len(checks)
    [deleted] = [c.params["VolumeId"] for c in proxy.actions("DeleteVolume")]
    assert f"{deleted} deleted" in json.dumps(message)


def test_worker_that_exits_non_zero_fails_the_execution_after_cleanup(aws, delete_stack, proxy, slack):
    proxy.fail_uploads()  # S3 refuses the worker's uploads: it aborts, detaches and exits 1
    arn, snapshot_id, event = start(aws, delete_stack)
    execution = finished(aws, arn)
    message = assert_failed_cleanly(aws, proxy, slack, execution, "JobFailed", event)
    assert "exit code 1" in execution["cause"] or '"ExitCode": 1' in execution["cause"], execution["cause"]
    assert "exit code 1" in json.dumps(message)
    assert proxy.actions("DetachVolume"), "the worker detached the volume itself"
    # No manifest: the failed archive is not an archive.
    listed = aws.client("s3").list_objects_v2(Bucket=delete_stack.bucket).get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("manifest.json") and snapshot_id in o["Key"]]

    # The operator fixes the cause and replays the same input: it archives.
    proxy.reset()
    slack.reset()
    replayed = cli(aws, "replay", arn, "--wait", "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["status"] == "SUCCEEDED" and report["snapshot_id"] == snapshot_id
    assert len(proxy.actions("DeleteRecoveryPoint")) == 1, "deleted once the replay verified the archive"
    assert recovery_point_fate(aws, event) == "deleted"


def test_replay_by_batch_job_is_refused_while_the_snapshot_is_being_archived(aws, delete_stack, proxy, slack):
    proxy.stall_uploads()
    arn, snapshot_id, event = start(aws, delete_stack)
    job = wait_for_running_job(aws)
    refused = cli(aws, "replay", "--batch-job", job["job_id"])
    assert refused.returncode == 1 and "still running" in refused.stderr, refused.stderr
    started = cli(aws, "start", "--snapshot", snapshot_id, "--state-machine", delete_stack.state_machine_arn)
    assert started.returncode == 1 and f"is archiving {snapshot_id}" in started.stderr, started.stderr
    proxy.release()
    assert finished(aws, arn)["status"] == "SUCCEEDED"
    assert recovery_point_fate(aws, event) == "deleted", "the one archive, verified, released it"


def test_killed_worker_leaves_an_attached_volume_that_the_cleanup_detaches_and_deletes(aws, delete_stack, proxy,
                                                                                        slack):
    proxy.stall_uploads()
    arn, _, event = start(aws, delete_stack)
    job = wait_for_running_job(aws)
    wait_until(proxy.stalled.is_set, 20, "the worker's first upload")
    [volume_id] = created_volume_ids(aws, arn)
    attached = aws.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert attached["State"] == "in-use", attached
    os.killpg(job["pid"], signal.SIGKILL)  # as an OOM kill or a lost host would: no detach, no abort
    proxy.release()
    execution = finished(aws, arn)
    assert_failed_cleanly(aws, proxy, slack, execution, "JobFailed", event)
    assert "137" in execution["cause"], execution["cause"]
    detaches = proxy.actions("DetachVolume")
    assert detaches and all(d.params["VolumeId"] == volume_id for d in detaches), "the cleanup detached it"


def test_delete_volume_failing_once_is_retried_and_the_archive_completes(aws, delete_stack, proxy, slack):
    proxy.fail("DeleteVolume", times=1, status=503, code="ServiceUnavailable")
    arn, snapshot_id, event = start(aws, delete_stack)
    execution = finished(aws, arn)
    assert execution["status"] == "SUCCEEDED", execution
    deletes = proxy.actions("DeleteVolume")
    assert [d.faulted for d in deletes] == [True, False], "failed once, then retried by the ASL"
    assert volumes_of(aws, arn) == []
    entered = states_entered(aws, arn)
    assert "Cleanup" not in entered and entered.count("DeleteVolume") == 1
    assert len(proxy.actions("DeleteRecoveryPoint")) == 1, "verified, so deleted: exactly once"
    assert recovery_point_fate(aws, event) == "deleted"
    [message] = slack.delivered()
    assert f"Archived {snapshot_id}" in message["text"]


def test_recovery_point_gone_before_its_deletion_counts_as_released(aws, delete_stack, proxy, slack):
    # Its lifecycle (or an operator) deletes the recovery point while the worker archives: AWS Backup then answers
    # DeleteRecoveryPoint with ResourceNotFoundException, which the flow reads as "already gone", not a failure.
    proxy.stall_uploads()
    arn, _, event = start(aws, delete_stack)
    wait_until(proxy.stalled.is_set, 20, "the worker's first upload")
    aws.client("backup").delete_recovery_point(BackupVaultName=DELETE_VAULT, RecoveryPointArn=event["resources"][0])
    proxy.release()
    execution = finished(aws, arn)
    assert execution["status"] == "SUCCEEDED", execution
    assert len(proxy.actions("DeleteRecoveryPoint")) == 1, "the flow's own call, answered not found"
    assert output_of(execution)["recovery_point_deletion"] == {"recovery_point_arn": event["resources"][0],
                                                               "deleted": False}
    assert recovery_point_fate(aws, event) == "deleted"


def test_archive_overwritten_with_same_size_bytes_fails_verify_and_keeps_the_recovery_point(aws, delete_stack, proxy,
                                                                                            slack):
    # After the worker wrote the archive and before Verify, something writes other bytes of the same size under
    # the object's key: sizes still match, only the full-object checksum S3 keeps can tell.
    s3 = aws.client("s3")
    overwritten = {}

    def overwrite_archive_object():
        [manifest_key] = [o["Key"] for o in s3.list_objects_v2(Bucket=delete_stack.bucket)["Contents"]
                          if o["Key"].endswith("manifest.json") and snapshot_id in o["Key"]]
        manifest = json.loads(s3.get_object(Bucket=delete_stack.bucket, Key=manifest_key)["Body"].read())
        key = manifest["objects"][0]["key"]
        body = bytearray(s3.get_object(Bucket=delete_stack.bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket=delete_stack.bucket, Key=key, Body=bytes(body), ChecksumAlgorithm="CRC64NVME")
        overwritten.update(key=key, size=len(body))

    proxy.before("DeleteVolume", overwrite_archive_object)
    arn, snapshot_id, event = start(aws, delete_stack)
    execution = finished(aws, arn)
    assert_failed_cleanly(aws, proxy, slack, execution, "ArchiveIncomplete", event)
    assert states_entered(aws, arn)[-5:-4] == ["Verify"]
    key, size = overwritten["key"], overwritten["size"]
    assert s3.head_object(Bucket=delete_stack.bucket, Key=key)["ContentLength"] == size
    assert f"{key}: S3's CRC64NVME" in execution["cause"] and "differs from the manifest's" in execution["cause"], \
        execution["cause"]


def test_delete_volume_failing_once_in_the_cleanup_is_retried_and_the_failure_reported(aws, delete_stack, proxy,
                                                                                       slack):
    proxy.fail_uploads()
    proxy.fail("DeleteVolume", times=1, status=503, code="ServiceUnavailable")
    arn, _, event = start(aws, delete_stack)
    execution = finished(aws, arn)
    assert_failed_cleanly(aws, proxy, slack, execution, "JobFailed", event)
    deletes = proxy.actions("DeleteVolume")
    assert [d.faulted for d in deletes] == [True, False], "failed once, then retried by the cleanup's Retry"


def test_job_that_times_out_is_stopped_and_its_volume_deleted(aws, delete_stack, proxy, slack):
    s = delete_stack.settings
    register_job_definition(aws, s, delete_stack.job_definition, delete_stack.instance_id, timeout_seconds=3)
    try:
        proxy.stall_uploads()  # the worker is stuck mid-archive until Batch's timeout stops it
        arn, _, event = start(aws, delete_stack)
        execution = finished(aws, arn)
    finally:
        proxy.release()
        register_job_definition(aws, s, delete_stack.job_definition, delete_stack.instance_id)
    assert_failed_cleanly(aws, proxy, slack, execution, "JobFailed", event)
    assert "Job attempt duration exceeded timeout" in execution["cause"], execution["cause"]


def test_duplicate_event_archives_once_and_the_duplicate_fails_loudly(aws, delete_stack, proxy, slack):
    snapshot_id, event = backup_job(aws, DELETE_VAULT)
    before = executions(aws, delete_stack)
    put_event(aws, event)
    put_event(aws, event)  # EventBridge delivers at least once
    arns = new_executions(aws, delete_stack, before, count=2)
    results = [finished(aws, arn) for arn in arns]
    assert sorted(r["status"] for r in results) == ["FAILED", "SUCCEEDED"], results
    [duplicate] = [r for r in results if r["status"] == "FAILED"]
    assert duplicate["error"] == "DuplicateArchive", duplicate
    assert snapshot_id in duplicate["cause"]
    assert sum(len(submitted_jobs(aws, r["executionArn"])) for r in results) == 1, "one archive job"
    assert len(proxy.actions("DeleteRecoveryPoint")) == 1, "deleted once, by the execution that archived"
    assert recovery_point_fate(aws, event) == "deleted"
    assert all(volumes_of(aws, r["executionArn"]) == [] for r in results)
    texts = sorted(m["text"] for m in slack.delivered())
    assert len(texts) == 2, "one message per execution: the archive, and the refused duplicate"
    assert any(f"Archived {snapshot_id}" in t for t in texts), texts
    assert any("FAILED: DuplicateArchive" in t for t in texts), texts


def test_same_event_twice_at_the_same_instant_archives_once(aws, delete_stack, proxy, slack):
    # EC2 lists volumes by tag eventually consistently: just after two CreateVolume calls, each racer may see
    # no volume at all. The proxy makes every such listing empty, so only the claim (an S3 conditional write,
    # strongly consistent) can tell the two executions apart.
    proxy.hide_tagged_volumes()
    snapshot_id, event = backup_job(aws, DELETE_VAULT)
    before = executions(aws, delete_stack)
    together = threading.Barrier(2)

    def deliver():
        together.wait()
        put_event(aws, event)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    arns = new_executions(aws, delete_stack, before, count=2)
    results = [finished(aws, arn) for arn in arns]
    assert sorted(r["status"] for r in results) == ["FAILED", "SUCCEEDED"], results
    [winner] = [r for r in results if r["status"] == "SUCCEEDED"]
    [duplicate] = [r for r in results if r["status"] == "FAILED"]
    assert duplicate["error"] == "DuplicateArchive", duplicate
    assert f"{snapshot_id} is already being archived by {winner['executionArn']}" in duplicate["cause"], duplicate
    assert len(proxy.actions("CreateVolume")) == 1, "the duplicate stopped before making a volume"
    assert sum(len(submitted_jobs(aws, r["executionArn"])) for r in results) == 1, "one archive job"
    assert len(proxy.actions("DeleteRecoveryPoint")) == 1, "deleted once, by the execution that archived"
    assert recovery_point_fate(aws, event) == "deleted"
    # The winner's claim outlives the duplicate's cleanup, and its success: it marks who archived the snapshot.
    destination = output_of(winner)["destination"]
    claims = aws.client("s3").list_objects_v2(Bucket=destination["bucket"], Prefix=f"{destination['prefix']}/.claims/")
    [claim] = claims["Contents"]
    body = json.loads(aws.client("s3").get_object(Bucket=destination["bucket"], Key=claim["Key"])["Body"].read())
    assert body["execution_id"] == winner["executionArn"], body


def test_duplicate_delivered_after_the_archive_completed_makes_no_second_archive(aws, keep_stack, proxy, slack):
    _, event = backup_job(aws, keep_stack.vaults[0])
    before = executions(aws, keep_stack)
    put_event(aws, event)
    [first] = new_executions(aws, keep_stack, before)
    assert finished(aws, first)["status"] == "SUCCEEDED"
    slack.reset()
    proxy.reset()
    before = executions(aws, keep_stack)
    put_event(aws, event)  # hours later, say: a retried delivery
    [second] = new_executions(aws, keep_stack, before)
    execution = finished(aws, second)
    assert execution["status"] == "FAILED" and execution["error"] == "DuplicateArchive", execution
    assert "manifest.json exists" in execution["cause"], execution["cause"]
    assert proxy.actions("CreateVolume") == [] and submitted_jobs(aws, second) == []
    assert recovery_point_fate(aws, event) == "kept"
    [message] = slack.delivered()
    assert "FAILED: DuplicateArchive" in message["text"], message


def test_malformed_event_fails_with_the_field_named(aws, delete_stack, proxy, slack):
    _, event = backup_job(aws, DELETE_VAULT)
    del event["detail"]["backupJobId"]
    before = executions(aws, delete_stack)
    put_event(aws, event)
    [arn] = new_executions(aws, delete_stack, before)
    execution = finished(aws, arn)
    assert_failed_cleanly(aws, proxy, slack, execution, "InvalidEvent", event, volume_created=False)
    assert "detail.backupJobId" in execution["cause"]
    assert proxy.actions("CreateVolume") == [] and submitted_jobs(aws, arn) == []


def test_unsupported_resource_type_starts_nothing_and_fails_loudly_if_started(aws, delete_stack, proxy, slack):
    _, event = backup_job(aws, DELETE_VAULT, resource_type="EFS")
    event["detail"]["resourceArn"] = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123456789abcdef0"
    before = executions(aws, delete_stack)
    put_event(aws, event)
    settle()
    assert [a for a in executions(aws, delete_stack) if a not in before] == [], "the rule takes EBS only"
    # Started by other means (a broader rule, an operator), the plan skips it without a lookup, and someone who
    # expected an archive hears that there is none.
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=delete_stack.state_machine_arn, input=json.dumps(event))["executionArn"]
    execution = finished(aws, arn)
    assert execution["status"] == "FAILED" and execution["error"] == "NotArchivable", execution
    assert "resource type EFS is not archived" in execution["cause"], execution["cause"]
    assert states_entered(aws, arn)[:3] == ["Plan", "Route", "Unarchivable"]
    assert proxy.actions("CreateVolume") == [] and proxy.actions("DescribeSnapshots") == []
    assert proxy.actions("DeleteRecoveryPoint") == [] and recovery_point_fate(aws, event) == "kept"
    [message] = slack.delivered()
    assert "FAILED: NotArchivable" in message["text"], message


def test_event_of_a_failed_job_is_skipped_quietly(aws, delete_stack, proxy, slack):
    _, event = backup_job(aws, DELETE_VAULT)
    event["detail"]["state"] = "FAILED"
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=delete_stack.state_machine_arn, input=json.dumps(event))["executionArn"]
    execution = finished(aws, arn)
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, arn) == ["Plan", "Route", "Skipped"]
    assert output_of(execution)["reason"]["code"] == "job_not_completed"
    assert slack.delivered() == [], "a job that made no recovery point pages nobody"
    assert proxy.actions("DeleteRecoveryPoint") == [] and recovery_point_fate(aws, event) == "kept"


def test_event_from_another_vault_starts_nothing(aws, delete_stack):
    before = executions(aws, delete_stack)
    _, event = backup_job(aws, "some-other-vault")
    put_event(aws, event)
    settle()
    assert [a for a in executions(aws, delete_stack) if a not in before] == []
    assert recovery_point_fate(aws, event) == "kept"
