"""The RDS native-dump flow (state-machines/rds-dump.asl.json) end to end on the emulator, with a real PostgreSQL
15 behind every RDS endpoint: the emulator's router reports the local server as the endpoint of every DB instance
and cluster, and applies the master password that SetPassword sets to it (emulator/router.py), so the real
`batch-worker dump` connects with the password it reads from SSM, and pg_dump really runs.

Each test creates its source DB instance (or Aurora cluster) and snapshot in moto, starts the flow by hand
(`{"snapshot": ARN, "method": "dump"}`), and ends by checking that no database, cluster or password parameter of
the deployment is left."""

import gzip
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import cli, finished, history, states_entered, submitted_jobs

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MASTER_USER = "dbadmin"  # the source instance's master user: the role the dump connects as
DATABASE = "orders"  # the database the source "contains": one table, three rows
TAG_MANAGED_BY = "backup-archiver:managed-by"
PARAMETER_PREFIX = "/backup-archiver/"
START_TIMEOUT = 60  # seconds for the server to accept connections (a second here, more under load)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """PostgreSQL 15 in a temporary directory, run as the `postgres` system user on a free loopback port: the
    superuser `postgres` over the Unix socket without a password (what the router's psql uses), every other role
    over TCP with a SCRAM password only (so the dump works only if SetPassword's password reached the server)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ba-rds-dump-pg-"))
        self.port = free_port()
        self.process = None
        account = pwd.getpwnam("postgres")
        self.uid, self.gid = account.pw_uid, account.pw_gid
        os.chown(self.dir, self.uid, self.gid)

    def as_postgres(self):
        os.setgid(self.gid)
        os.setuid(self.uid)

    def start(self) -> "Postgres":
        data = self.dir / "data"
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                       preexec_fn=self.as_postgres, check=True, capture_output=True, cwd=self.dir)
        log = open(self.dir / "server.log", "wb")
        self.process = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"],
            preexec_fn=self.as_postgres, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode:
            assert self.process.poll() is None, (self.dir / "server.log").read_text()
            assert time.monotonic() < deadline, (self.dir / "server.log").read_text()
            time.sleep(0.1)
        return self

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
                               "-p", str(self.port), "-U", "postgres", "-d", database],
                              input=sql, text=True, capture_output=True, check=True).stdout

    @property
    def mapping(self) -> dict:
        """What Emulator.configure_rds(server=…) takes."""
        return {"host": "127.0.0.1", "port": self.port, "socket_dir": str(self.dir), "superuser": "postgres"}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: PostgreSQL's smart shutdown; nothing is connected by now
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    # scripts/setup installs PostgreSQL 15 and the tests run as root (README): a missing one is a broken machine,
    # which must fail the run rather than pass it with these tests unrun.
    if os.geteuid() != 0:
        pytest.fail("the RDS dump flow tests run PostgreSQL as the `postgres` user and need root: run scripts/test "
                    "as root")
    if not (PG_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN / 'postgres'} is missing): run scripts/setup")
    server = Postgres()
    try:
        server.start()
        server.psql(f"CREATE ROLE {MASTER_USER} LOGIN CREATEDB;\nCREATE DATABASE {DATABASE} OWNER {MASTER_USER};\n")
        server.psql(f"SET ROLE {MASTER_USER};\nCREATE TABLE orders (id int PRIMARY KEY, item text);\n"
                    "INSERT INTO orders VALUES (1, 'tea'), (2, 'scones'), (3, 'jam');\n", database=DATABASE)
        yield server
    finally:
        server.stop()


@pytest.fixture
def mapped(aws, postgres):
    """Every RDS endpoint is the local server for the test, and nothing is mapped or held afterwards."""
    aws.configure_rds(server=postgres.mapping, hold_creating=False)
    yield postgres
    aws.configure_rds(server=None, hold_creating=False)


def source_snapshot(aws, engine: str = "postgres") -> str:
    """A source DB instance (Aurora: a cluster and its instance) and a snapshot of it in moto; returns the
    snapshot's ARN."""
    rds = aws.client("rds")
    name = f"src-{uuid.uuid4().hex[:8]}"
    if engine.startswith("aurora"):
        rds.create_db_cluster(DBClusterIdentifier=name, Engine=engine, MasterUsername=MASTER_USER,
                              MasterUserPassword="source-password-1")
        rds.create_db_instance(DBInstanceIdentifier=f"{name}-1", DBClusterIdentifier=name, Engine=engine,
                               DBInstanceClass="db.t4g.medium")
        snapshot = rds.create_db_cluster_snapshot(DBClusterIdentifier=name, DBClusterSnapshotIdentifier=f"{name}-snap")
        return snapshot["DBClusterSnapshot"]["DBClusterSnapshotArn"]
    rds.create_db_instance(DBInstanceIdentifier=name, Engine=engine, DBInstanceClass="db.t4g.small",
                           MasterUsername=MASTER_USER, MasterUserPassword="source-password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier=name, DBSnapshotIdentifier=f"{name}-snap")
    return snapshot["DBSnapshot"]["DBSnapshotArn"]


def start_dump(aws, stack, snapshot_arn: str) -> str:
    sfn = aws.client("stepfunctions")
    return sfn.start_execution(stateMachineArn=stack.state_machines["rds-dump"],
                               input=json.dumps({"snapshot": snapshot_arn, "method": "dump"}))["executionArn"]


def tagged_leftovers(aws, stack) -> list[str]:
    """Every DB instance, cluster and password parameter of the deployment that still exists."""
    rds, ssm = aws.client("rds"), aws.client("ssm")
    ours = lambda tags: any(t["Key"] == TAG_MANAGED_BY and t["Value"] == stack.settings.name for t in tags)  # noqa: E731
    # Every page: DescribeParameters answers 10 a page, so a leftover could hide on the second one.
    every = lambda client, operation, key: [item for page in client.get_paginator(operation).paginate()  # noqa: E731
                                            for item in page[key]]
    left = [db["DBInstanceIdentifier"] for db in every(rds, "describe_db_instances", "DBInstances")
            if ours(rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"])]
    left += [c["DBClusterIdentifier"] for c in every(rds, "describe_db_clusters", "DBClusters")
             if ours(rds.list_tags_for_resource(ResourceName=c["DBClusterArn"])["TagList"])]
    left += [p["Name"] for p in every(ssm, "describe_parameters", "Parameters") if p["Name"].startswith(PARAMETER_PREFIX)]
    return left


@pytest.fixture
def nothing_left(aws, keep_stack):
    """After every test: no temporary database, cluster or password parameter remains."""
    yield
    assert tagged_leftovers(aws, keep_stack) == []


def job_of(aws, arn: str) -> dict:
    [job_id] = submitted_jobs(aws, arn)
    [job] = aws.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    return job


def set_password(proxy) -> str:
    """The master password SetPassword sent (the fault proxy records RDS calls with their parameters)."""
    [call] = [c for c in proxy.actions("ModifyDBInstance") + proxy.actions("ModifyDBCluster")
              if "MasterUserPassword" in c.params]
    return call.params["MasterUserPassword"]


def archived_objects(aws, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_db_snapshot_is_dumped_verified_and_its_database_deleted(aws, keep_stack, proxy, slack, mapped, nothing_left,
                                                                   tmp_path, monkeypatch):
    snapshot_arn = source_snapshot(aws)
    arn = start_dump(aws, keep_stack, snapshot_arn)
    execution = finished(aws, arn, timeout=120)
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"), states_entered(aws, arn))
    entered = states_entered(aws, arn)
    assert entered == ["Plan", "Route", "RestoreDatabase", "WaitForDatabase", "CheckDatabase", "SetPassword",
                       "WaitForPassword", "CheckPassword", "DumpJob", "DeleteDatabase", "Verify",
                       "ShouldDeleteRecoveryPoint", "NotifySuccess", "Archived"], entered
    output = json.loads(execution["output"])

    # The restore: a private small instance from our snapshot, in the deployment's subnet group.
    [restore] = proxy.actions("RestoreDBInstanceFromDBSnapshot")
    assert restore.params["DBSnapshotIdentifier"] == snapshot_arn
    assert restore.params["DBInstanceClass"] == "db.t4g.small"
    assert restore.params["PubliclyAccessible"] == "false"
    identifier = restore.params["DBInstanceIdentifier"]
    assert [c.params["DBInstanceIdentifier"] for c in proxy.actions("DeleteDBInstance")] == [identifier]

    # The job: the real worker's dump of the local server, as the master user, with the parameter's name only.
    job = job_of(aws, arn)
    assert job["status"] == "SUCCEEDED", job
    command = job["container"]["command"]
    assert command[:2] == ["batch-worker", "dump"], command
    parameters = job["parameters"]
    assert (parameters["engine"], parameters["host"], parameters["port"], parameters["user"]) == (
        "postgres", "127.0.0.1", str(mapped.port), MASTER_USER)
    assert parameters["password_parameter"].startswith(PARAMETER_PREFIX)

    # The archive: the manifest verified, and the orders database restorable with pg_restore.
    verification = output["verification"]
    bucket, prefix = verification["location"].removeprefix("s3://").split("/", 1)
    objects = archived_objects(aws, bucket, prefix)
    manifest = json.loads(objects[verification["manifest_key"]])
    dumped = {entry["dump"].get("database") for entry in manifest["objects"] if entry.get("dump")}
    assert DATABASE in dumped, manifest
    [orders_key] = [k for k in objects if k.endswith(f"/{DATABASE}.pgdump.gz")]
    (tmp_path / "orders.pgdump").write_bytes(gzip.decompress(objects[orders_key]))
    listing = subprocess.run(["pg_restore", "--list", str(tmp_path / "orders.pgdump")], capture_output=True,
                             text=True, check=True).stdout
    assert "TABLE public orders" in listing, listing
    assert "COPY public.orders" in subprocess.run(["pg_restore", "--data-only", "-f", "-",
                                                     str(tmp_path / "orders.pgdump")],
                                                    capture_output=True, text=True, check=True).stdout

    # Back into a server: `restore --to-database` into a fresh PostgreSQL, the password from an environment
    # variable, gives the roles and the same rows.
    fresh = Postgres()
    try:
        fresh.start()
        fresh.psql("ALTER ROLE postgres PASSWORD 'restore-secret';")
        monkeypatch.setenv("BA_RESTORE_PASSWORD", "restore-secret")
        result = cli(aws, "restore", verification["location"], "--to-database",
                     f"postgresql://postgres@127.0.0.1:{fresh.port}", "--password-env", "BA_RESTORE_PASSWORD", "--json")
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert "restore-secret" not in result.stdout + result.stderr
        assert fresh.psql("SELECT id, item FROM orders ORDER BY id;", database=DATABASE) == "1|tea\n2|scones\n3|jam\n"
        assert fresh.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DATABASE}';") == (
            f"{MASTER_USER}\n")
    finally:
        fresh.stop()

    # The database and the password are gone (also checked by `nothing_left`), and one success was notified.
    assert output["deleted_database"]["password_parameter_deleted"] is True, output["deleted_database"]
    [message] = slack.delivered()
    assert "FAILED" not in json.dumps(message), message


def test_password_appears_in_no_history_log_or_command_line(aws, keep_stack, proxy, slack, mapped, nothing_left):
    arn = start_dump(aws, keep_stack, source_snapshot(aws))
    execution = finished(aws, arn, timeout=120)
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"), states_entered(aws, arn))
    password = set_password(proxy)
    assert len(password) >= 32
    assert password not in json.dumps(history(aws, arn), default=str), "the execution history holds the password"
    assert password not in json.dumps(execution, default=str)
    lambda_logs = sorted((aws.state_dir / "logs" / "lambda").glob("*.log"))
    assert aws.function_log(keep_stack.functions["set-database-password"]) in lambda_logs, lambda_logs
    for log in lambda_logs:
        assert password not in log.read_text(errors="replace"), f"{log} holds the password"
    job = job_of(aws, arn)
    assert password not in json.dumps(job, default=str), "the job's description (command, parameters) holds it"
    assert password not in aws.job_log(job["jobId"]).read_text(errors="replace"), "the worker's log holds it"
    router_log = aws.state_dir / "logs" / "router.log"  # the router applied the password to the server
    assert password not in router_log.read_text(errors="replace"), "the router's log holds it"


def test_database_that_never_becomes_available_is_deleted_after_bounded_polls(aws, keep_stack, proxy, slack, mapped,
                                                                            nothing_left):
    aws.configure_rds(hold_creating=True)
    snapshot_arn = source_snapshot(aws)
    arn = start_dump(aws, keep_stack, snapshot_arn)
    execution = finished(aws, arn, timeout=180)
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "DbNotReady", execution
    entered = states_entered(aws, arn)
    assert "SetPassword" not in entered and "DumpJob" not in entered, entered
    assert entered[-4:] == ["Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert submitted_jobs(aws, arn) == []
    # Bounded: CheckDatabase's Retry (12 attempts) ran out rather than polling forever.
    polls = proxy.actions("DescribeDBInstances")
    assert 13 <= len(polls) <= 40, len(polls)
    assert len(proxy.actions("DeleteDBInstance")) == 1
    # The snapshot (the recovery point of a backup) is kept.
    assert proxy.actions("DeleteRecoveryPoint") == []
    rds = aws.client("rds")
    assert rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_arn.rsplit(":", 1)[1])["DBSnapshots"]
    [message] = slack.delivered()
    assert "FAILED: DbNotReady" in message["text"], message


def test_dump_that_fails_deletes_the_database_and_fails_with_job_failed(aws, keep_stack, proxy, slack, mapped,
                                                                        nothing_left):
    # Every endpoint leads to a port nobody listens on: pg_dump cannot connect, the worker exits non-zero.
    aws.configure_rds(server={**mapped.mapping, "port": free_port()})
    arn = start_dump(aws, keep_stack, source_snapshot(aws))
    execution = finished(aws, arn, timeout=120)
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "JobFailed", execution
    entered = states_entered(aws, arn)
    assert "DumpJob" in entered and "JobFailed" in entered, entered
    assert "Verify" not in entered and "DeleteDatabase" not in entered, entered
    assert entered[-4:] == ["Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert job_of(aws, arn)["status"] == "FAILED"
    assert len(proxy.actions("DeleteDBInstance")) == 1
    [message] = slack.delivered()
    assert "FAILED: JobFailed" in message["text"], message


def test_cli_starts_the_dump_flow_with_method_dump(aws, keep_stack, proxy, slack, mapped, nothing_left):
    snapshot_arn = source_snapshot(aws)
    result = cli(aws, "start", "--snapshot", snapshot_arn, "--method", "dump", "--wait", "--json",
                 "--state-machine", keep_stack.state_machines["rds-dump"], timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "SUCCEEDED", report
    assert report["state_machine_arn"] == keep_stack.state_machines["rds-dump"]


def test_aurora_cluster_snapshot_restores_a_cluster_and_an_instance_and_deletes_both(aws, keep_stack, proxy, slack,
                                                                                    mapped, nothing_left):
    snapshot_arn = source_snapshot(aws, engine="aurora-postgresql")
    arn = start_dump(aws, keep_stack, snapshot_arn)
    execution = finished(aws, arn, timeout=120)
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"), states_entered(aws, arn))
    [restore] = proxy.actions("RestoreDBClusterFromSnapshot")
    cluster = restore.params["DBClusterIdentifier"]
    [instance] = proxy.actions("CreateDBInstance")
    assert instance.params["DBClusterIdentifier"] == cluster
    assert instance.params["DBInstanceClass"] == "db.t4g.medium"
    assert [c.params["DBInstanceIdentifier"] for c in proxy.actions("DeleteDBInstance")] == [
        instance.params["DBInstanceIdentifier"]]
    assert cluster in [c.params["DBClusterIdentifier"] for c in proxy.actions("DeleteDBCluster")]
    assert job_of(aws, arn)["parameters"]["engine"] == "aurora-postgresql"
