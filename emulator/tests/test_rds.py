"""The router's RDS adjustments (router.py, control.Emulator.configure_rds): a database held in `creating`, and
endpoints mapped to a local server. The password half (psql on a real PostgreSQL) is shown by
tests/flow/test_rds_dump.py."""


def restored_instance(aws, name: str) -> str:
    rds = aws.client("rds")
    rds.create_db_instance(DBInstanceIdentifier=f"{name}-src", Engine="postgres", DBInstanceClass="db.t4g.small",
                           MasterUsername="dbadmin", MasterUserPassword="not-known-1", AllocatedStorage=20)
    rds.create_db_snapshot(DBInstanceIdentifier=f"{name}-src", DBSnapshotIdentifier=f"{name}-snap")
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=name, DBSnapshotIdentifier=f"{name}-snap",
                                             DBInstanceClass="db.t4g.small")
    return name


def test_held_instances_stay_creating_until_released(aws):
    identifier = restored_instance(aws, "held")
    rds = aws.client("rds")
    try:
        assert aws.configure_rds(hold_creating=True)["hold_creating"] is True
        for _ in range(3):
            [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
            assert db["DBInstanceStatus"] == "creating"
    finally:
        aws.configure_rds(hold_creating=False)
    [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    assert db["DBInstanceStatus"] == "available"


def test_mapped_server_is_the_endpoint_of_every_instance(aws):
    identifier = restored_instance(aws, "mapped")
    rds = aws.client("rds")
    try:
        aws.configure_rds(server={"host": "127.0.0.1", "port": 54321, "socket_dir": "/nonexistent"})
        [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        assert (db["Endpoint"]["Address"], db["Endpoint"]["Port"]) == ("127.0.0.1", 54321)
    finally:
        aws.configure_rds(server=None)
    [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    assert db["Endpoint"]["Address"] != "127.0.0.1"
