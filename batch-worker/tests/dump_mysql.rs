//! `batch-worker dump --engine mariadb` (the MySQL-family tools) against a real MariaDB server on
//! loopback, with the password in moto's SSM and the archive in moto's S3: each database restored
//! with `mariadb` after dropping it, compared table by table, and checked by
//! `backup-archiver verify`. Failures leave nothing in the bucket and never print the password.

mod common;

use common::db::Mariadb;
use common::{assert_not_leaked, assert_success, workdir, World};

/// Quotes, a backslash, a `#` and spaces: the option file's quoting must keep them.
const PASSWORD: &str = r#"My s3cr"et\#'x"#;
const PARAMETER: &str = "/backup-archiver/test/mysql-master";

/// Two databases with a few thousand rows of varied types (blobs with non-UTF-8 bytes, NULLs,
/// unicode, decimals, JSON), a trigger and a procedure.
fn populate(db: &Mariadb) {
    db.root_sql(
        "SET SESSION max_recursive_iterations = 100000; \
         CREATE DATABASE shop CHARACTER SET utf8mb4; CREATE DATABASE analytics CHARACTER SET utf8mb4; \
         CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(100) NULL, price DECIMAL(12,2), \
           created DATETIME(6), payload BLOB NULL, doc JSON NULL, flag TINYINT(1)); \
         INSERT INTO shop.items WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 3000) \
           SELECT i, IF(i % 7 = 0, NULL, CONCAT('naïve ☃ ', i)), i * 1.25, \
           TIMESTAMP '2024-01-01 00:00:00' + INTERVAL i MINUTE, \
           IF(i % 5 = 0, NULL, CONCAT(UNHEX(MD5(i)), X'00FF80FE')), JSON_OBJECT('i', i, 's', 'ü\"'), i % 2 FROM seq; \
         CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT); \
         CREATE TRIGGER shop.items_audit AFTER UPDATE ON shop.items FOR EACH ROW INSERT INTO shop.audit (item) VALUES (NEW.id); \
         CREATE PROCEDURE shop.touch(IN n INT) UPDATE shop.items SET flag = 1 - flag WHERE id = n; \
         CREATE TABLE analytics.events (id BIGINT PRIMARY KEY, kind VARCHAR(20), body TEXT NULL, raw VARBINARY(16)); \
         INSERT INTO analytics.events WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 2500) \
           SELECT i, CONCAT('kind ', i % 9, ' 日本'), IF(i % 3 = 0, NULL, CONCAT(REPEAT('x', i % 50), '\\ttab')), \
           UNHEX(LPAD(HEX(i), 8, '0')) FROM seq;",
    );
}

/// Row count and an md5 of every row rendered as text (blobs as hex), in id order.
fn table_digest(db: &Mariadb, table: &str, columns: &str) -> String {
    db.root_sql(&format!(
        "SET SESSION group_concat_max_len = 1073741824; \
         SELECT CONCAT(COUNT(*), ' ', MD5(COALESCE(GROUP_CONCAT(CONCAT_WS('|', {columns}) ORDER BY id SEPARATOR '\\n'), ''))) FROM {table}"
    ))
}

const ITEMS: (&str, &str) = (
    "shop.items",
    "id, COALESCE(name, 'NULL'), price, created, COALESCE(HEX(payload), 'NULL'), COALESCE(doc, 'NULL'), flag",
);
const EVENTS: (&str, &str) = ("analytics.events", "id, kind, COALESCE(body, 'NULL'), HEX(raw)");

fn dump_args(db: &Mariadb, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--engine",
        "mariadb",
        "--host",
        "127.0.0.1",
        "--port",
        &db.port.to_string(),
        "--user",
        &db.user,
        "--password-parameter",
        PARAMETER,
        "--compression",
        "gzip",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn mariadb_dump_restores_every_database_with_the_same_rows() {
    let db = Mariadb::start(PASSWORD);
    populate(&db);
    let world = World::new("mydump");
    world.put_parameter(PARAMETER, PASSWORD);

    let out = world.dump("my", &dump_args(&db, &[]));
    assert_success("batch-worker dump", &out);
    assert_not_leaked(PASSWORD, &out);
    assert_eq!(
        world.s3.keys("my/"),
        ["my/analytics.sql.gz", "my/manifest.json", "my/shop.sql.gz"],
        "system schemas are skipped"
    );
    assert!(world.s3.s3.multipart_uploads(&world.s3.bucket).is_empty());
    let manifest = world.manifest("my");
    assert!(!manifest.to_string().contains(PASSWORD), "the manifest holds the password");
    for object in manifest["objects"].as_array().expect("objects") {
        assert_eq!(
            (object["mode"].as_str(), object["dump"]["tool"].as_str(), object["dump"]["format"].as_str()),
            (Some("dump"), Some("mysqldump"), Some("sql")),
            "{object}"
        );
    }
    assert_success("backup-archiver verify", &world.verify("my"));

    let before = [table_digest(&db, ITEMS.0, ITEMS.1), table_digest(&db, EVENTS.0, EVENTS.1)];
    assert!(before[0].starts_with("3000 ") && before[1].starts_with("2500 "), "{before:?}");
    let dir = workdir("myrestore");
    db.root_sql("DROP DATABASE shop; DROP DATABASE analytics");
    for database in ["shop", "analytics"] {
        let file = dir.path().join(format!("{database}.sql"));
        world.gunzip_object(&format!("my/{database}.sql.gz"), &file);
        db.root_source(&file);
    }
    let after = [table_digest(&db, ITEMS.0, ITEMS.1), table_digest(&db, EVENTS.0, EVENTS.1)];
    assert_eq!(after, before, "rows after the restore");
    assert_eq!(
        db.root_sql("SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = 'shop'; SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = 'shop'"),
        "1\n1",
        "routines and triggers are restored"
    );
}

#[test]
fn mariadb_dump_of_a_missing_database_fails_and_leaves_nothing() {
    let db = Mariadb::start(PASSWORD);
    populate(&db);
    let world = World::new("myfail");
    world.put_parameter(PARAMETER, PASSWORD);

    // shop is stored before the second dump fails: it must be deleted again.
    let out = world.dump("my", &dump_args(&db, &["--database", "shop", "--database", "gone"]));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_not_leaked(PASSWORD, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mysqldump") && stderr.contains("gone"),
        "the error names the tool and the database: {stderr}"
    );
    world.s3.assert_nothing_under("my/");
}

#[test]
fn mariadb_dump_with_a_wrong_password_fails_without_printing_it() {
    let db = Mariadb::start(PASSWORD);
    let world = World::new("myauth");
    let wrong = "wrong-Passw0rd-value";
    world.put_parameter(PARAMETER, wrong);

    let out = world.dump("my", &dump_args(&db, &["--database", "shop"]));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_not_leaked(wrong, &out);
    assert_not_leaked(PASSWORD, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Access denied"), "{}", String::from_utf8_lossy(&out.stderr));
    world.s3.assert_nothing_under("my/");
}

#[test]
fn restore_to_database_restores_into_a_fresh_mariadb_with_the_password_from_ssm() {
    let db = Mariadb::start(PASSWORD);
    populate(&db);
    let world = World::new("mytodb");
    world.put_parameter(PARAMETER, PASSWORD);
    assert_success("batch-worker dump", &world.dump("my", &dump_args(&db, &[])));
    let target_password = r#"Other "fresh" #pw"#;
    let fresh = Mariadb::start(target_password);
    world.put_parameter("/backup-archiver/test/restore-target", target_password);
    let url = format!("mariadb://master@127.0.0.1:{}", fresh.port);

    let out = world.restore_to_database(
        "my",
        &url,
        &["--password-parameter", "/backup-archiver/test/restore-target", "--database", "shop"],
        &[],
    );
    assert_success("backup-archiver restore --to-database", &out);
    assert_not_leaked(target_password, &out);
    assert_eq!(table_digest(&fresh, ITEMS.0, ITEMS.1), table_digest(&db, ITEMS.0, ITEMS.1));
    assert_eq!(fresh.root_sql("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = 'shop'"), "1");
    assert_eq!(
        fresh.root_sql("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'analytics'"),
        "0",
        "only the database asked for"
    );
    // All of them now: shop exists already, so nothing is restored.
    let all =
        world.restore_to_database("my", &url, &["--password-parameter", "/backup-archiver/test/restore-target"], &[]);
    assert_eq!(all.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&all.stderr));
    assert!(String::from_utf8_lossy(&all.stderr).contains("\"shop\" exists already"));
    assert_eq!(fresh.root_sql("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'analytics'"), "0");
    let out = world.restore_to_database(
        "my",
        &url,
        &["--password-parameter", "/backup-archiver/test/restore-target", "--database", "analytics"],
        &[],
    );
    assert_success("restore of the other database", &out);
    assert_eq!(table_digest(&fresh, EVENTS.0, EVENTS.1), table_digest(&db, EVENTS.0, EVENTS.1));
}
