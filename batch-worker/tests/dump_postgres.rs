//! `batch-worker dump --engine postgres` against a real PostgreSQL 15 server on loopback, with
//! the password in moto's SSM and the archive in moto's S3: restored with pg_restore into fresh
//! databases, compared table by table, and checked by `backup-archiver verify`. Failures leave
//! nothing in the bucket and never print the password.

mod common;

use common::db::Postgres;
use common::{assert_not_leaked, assert_success, workdir, World};

/// Quotes, a backslash, a `#` and spaces: whatever quoting the password goes through must keep it.
const PASSWORD: &str = r#"Pg s3cr"et\#'x"#;
const PARAMETER: &str = "/backup-archiver/test/pg-master";

/// Two databases, each with a few thousand rows of varied types: bytea with non-UTF-8 bytes,
/// NULLs, unicode, numerics, timestamps, arrays, jsonb; a role that owns one of them.
fn populate(pg: &Postgres) {
    pg.psql("postgres", "CREATE ROLE app_owner NOLOGIN");
    pg.psql("postgres", "CREATE DATABASE app OWNER app_owner");
    pg.psql("postgres", "CREATE DATABASE shop");
    pg.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), created timestamptz, \
         payload bytea, tags text[], doc jsonb, flag boolean); \
         INSERT INTO items SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'naïve ☃ ' || i END, i * 1.25, \
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', \
         CASE WHEN i % 5 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') || '\\x00ff80fe'::bytea END, \
         ARRAY['a' || i, NULL, 'ü'], jsonb_build_object('i', i, 's', 'ü\"'), i % 2 = 0 \
         FROM generate_series(1, 3000) i; \
         ALTER TABLE items OWNER TO app_owner",
    );
    pg.psql(
        "shop",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, total double precision, \
         note text, raw bytea); \
         INSERT INTO orders (customer, total, note, raw) SELECT 'Kunde ' || i || ' 日本', i / 3.0, \
         CASE WHEN i % 3 = 0 THEN NULL ELSE repeat('x', i % 50) || E'\\ttab' END, \
         decode(lpad(to_hex(i), 8, '0'), 'hex') FROM generate_series(1, 2500) i; \
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100",
    );
}

/// Row count and an md5 of the table's rows in id order, rendered as text.
fn table_digest(pg: &Postgres, database: &str, table: &str) -> String {
    pg.psql(
        database,
        &format!("SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY id), '')) FROM {table} t"),
    )
}

fn dump_args(pg: &Postgres, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--engine",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        &pg.port.to_string(),
        "--user",
        &pg.user,
        "--password-parameter",
        PARAMETER,
        "--snapshot-id",
        "rds:app-2026-01-01",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn postgres_dump_restores_every_database_with_the_same_rows() {
    let pg = Postgres::start(PASSWORD);
    populate(&pg);
    let world = World::new("pgdump");
    world.put_parameter(PARAMETER, PASSWORD);

    let out = world.dump("pg", &dump_args(&pg, &[]));
    assert_success("batch-worker dump", &out);
    assert_not_leaked(PASSWORD, &out);
    let bucket = &world.s3.bucket;
    assert_eq!(
        world.s3.keys("pg/"),
        ["pg/app.pgdump.gz", "pg/globals.sql.gz", "pg/manifest.json", "pg/postgres.pgdump.gz", "pg/shop.pgdump.gz"],
        "templates are skipped, the maintenance database is kept"
    );
    assert!(world.s3.s3.multipart_uploads(bucket).is_empty());

    let manifest = world.manifest("pg");
    let text = manifest.to_string();
    assert!(!text.contains(PASSWORD), "the manifest holds the password: {text}");
    assert_eq!(manifest["source"]["database"]["engine"], "postgres");
    assert_eq!(manifest["source"]["snapshot_id"], "rds:app-2026-01-01");
    let objects = manifest["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 4);
    for object in objects {
        assert_eq!(object["mode"], "dump", "{object}");
        assert!(object["dump"]["tool_version"].as_str().unwrap().contains("15."), "{object}");
    }
    let app = objects.iter().find(|o| o["dump"]["database"] == "app").expect("app object");
    assert_eq!((app["dump"]["tool"].as_str(), app["dump"]["format"].as_str()), (Some("pg_dump"), Some("custom")));

    let verified = world.verify("pg");
    assert_success("backup-archiver verify", &verified);

    // Restore into fresh databases and compare.
    let dir = workdir("pgrestore");
    let globals = dir.path().join("globals.sql");
    world.gunzip_object("pg/globals.sql.gz", &globals);
    let globals_sql = std::fs::read_to_string(&globals).expect("read globals");
    assert!(globals_sql.contains("CREATE ROLE app_owner"), "{globals_sql}");
    assert!(!globals_sql.contains("SCRAM-SHA-256$"), "--no-role-passwords keeps hashes out");
    for (database, table) in [("app", "items"), ("shop", "orders")] {
        let file = dir.path().join(format!("{database}.pgdump"));
        world.gunzip_object(&format!("pg/{database}.pgdump.gz"), &file);
        let restored = format!("{database}_restored");
        pg.psql("postgres", &format!("CREATE DATABASE {restored}"));
        let mut restore = pg.client("pg_restore");
        restore.args(["--exit-on-error", "-d", &restored]).arg(&file);
        common::run_ok(&mut restore);
        let expected = table_digest(&pg, database, table);
        assert!(expected.starts_with(if table == "items" { "3000 " } else { "2500 " }), "{expected}");
        assert_eq!(table_digest(&pg, &restored, table), expected, "{database}.{table} after restore");
    }
    assert_eq!(
        pg.psql("shop_restored", "SELECT count(*) FROM big_orders"),
        pg.psql("shop", "SELECT count(*) FROM big_orders")
    );
    assert_eq!(pg.psql("app_restored", "SELECT tableowner FROM pg_tables WHERE tablename = 'items'"), "app_owner");
}

#[test]
fn postgres_dump_of_a_missing_database_fails_and_leaves_nothing() {
    let pg = Postgres::start(PASSWORD);
    populate(&pg);
    let world = World::new("pgfail");
    world.put_parameter(PARAMETER, PASSWORD);

    // globals and app are stored before the third dump fails: they must be deleted again.
    let out = world.dump("pg", &dump_args(&pg, &["--database", "app", "--database", "gone"]));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_not_leaked(PASSWORD, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_dump") && stderr.contains("gone"),
        "the error names the tool and the database: {stderr}"
    );
    world.s3.assert_nothing_under("pg/");
}

#[test]
fn postgres_dump_with_a_wrong_password_fails_without_printing_it() {
    let pg = Postgres::start(PASSWORD);
    let world = World::new("pgauth");
    let wrong = "wrong-Passw0rd-value";
    world.put_parameter(PARAMETER, wrong);

    let out = world.dump("pg", &dump_args(&pg, &[]));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_not_leaked(wrong, &out);
    assert_not_leaked(PASSWORD, &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    world.s3.assert_nothing_under("pg/");
}

#[test]
fn postgres_dump_of_a_stopped_server_fails_and_leaves_nothing() {
    let world = World::new("pgdown");
    world.put_parameter(PARAMETER, PASSWORD);
    let port = {
        let pg = Postgres::start(PASSWORD);
        pg.port
        // Dropped: the server is gone before the dump starts.
    };
    let args: Vec<String> = [
        "--engine",
        "aurora-postgresql",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--user",
        "master",
        "--password-parameter",
        PARAMETER,
        "--database",
        "app",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = world.dump("pg", &args);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_not_leaked(PASSWORD, &out);
    world.s3.assert_nothing_under("pg/");
}

#[test]
fn restore_to_database_restores_every_database_into_a_fresh_server_and_never_overwrites_one() {
    let pg = Postgres::start(PASSWORD);
    populate(&pg);
    let world = World::new("pgtodb");
    world.put_parameter(PARAMETER, PASSWORD);
    assert_success("batch-worker dump", &world.dump("pg", &dump_args(&pg, &[])));
    let target_password = "Fresh 'server' pa$$";
    let fresh = Postgres::start(target_password);
    let url = format!("postgresql://master@127.0.0.1:{}", fresh.port);

    let out =
        world.restore_to_database("pg", &url, &["--password-env", "TARGET_PW"], &[("TARGET_PW", target_password)]);
    assert_success("backup-archiver restore --to-database", &out);
    assert_not_leaked(target_password, &out);
    for (database, table) in [("app", "items"), ("shop", "orders")] {
        assert_eq!(table_digest(&fresh, database, table), table_digest(&pg, database, table), "{database}.{table}");
    }
    // The roles came first, so the restored table keeps its owner.
    assert_eq!(fresh.psql("app", "SELECT tableowner FROM pg_tables WHERE tablename = 'items'"), "app_owner");
    assert_eq!(
        fresh.psql("shop", "SELECT count(*) FROM big_orders"),
        pg.psql("shop", "SELECT count(*) FROM big_orders")
    );

    // Again: the databases exist now, and nothing is touched.
    fresh.psql("shop", "DELETE FROM orders WHERE id > 10");
    let again =
        world.restore_to_database("pg", &url, &["--password-env", "TARGET_PW"], &[("TARGET_PW", target_password)]);
    assert_eq!(again.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&again.stderr));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(fresh.psql("shop", "SELECT count(*) FROM orders"), "10");
}

#[test]
fn restore_to_database_refuses_a_password_on_the_command_line() {
    let world = World::new("pgtodb-url");
    let out =
        world.restore_to_database("pg", "postgresql://master:secret@127.0.0.1:5432", &["--password-env", "X"], &[]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never goes on the command line"));
}
