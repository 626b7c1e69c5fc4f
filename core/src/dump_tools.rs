//! The RDS native-dump flow's decisions: which tools dump an RDS engine, the command lines the
//! worker runs (never with the password: that travels by environment or option file), which
//! databases are system databases, and the object names a dump gets.
//!
//! The worker (`batch-worker dump`) runs what is described here; nothing in this module does I/O.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::{Compression, DumpFormat};

/// The database `psql` connects to for listing the others. RDS creates it for the master user;
/// so does `initdb`.
pub const PG_MAINTENANCE_DATABASE: &str = "postgres";

/// The object name of a PostgreSQL server's roles and tablespaces (`pg_dumpall --globals-only`).
pub const GLOBALS_STEM: &str = "globals";

/// PostgreSQL's password variable: children get it in their environment, never in argv.
pub const PG_PASSWORD_ENV: &str = "PGPASSWORD";

/// The family of tools that dumps an engine's databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpTool {
    /// `pg_dump` per database, `pg_dumpall --globals-only` for roles, `psql` to list databases.
    PgDump,
    /// `mysqldump` per database, `mysql` to list databases (MySQL, MariaDB and Aurora MySQL).
    Mysqldump,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DumpError {
    #[error("engine {engine:?} has no native dump support; use one of {}", SUPPORTED_ENGINES.join(", "))]
    UnsupportedEngine { engine: String },
    #[error("--database {database:?} is not a database name: {why}")]
    BadDatabaseName { database: String, why: &'static str },
    #[error("the server has no databases to dump besides its system databases ({})", system.join(", "))]
    NoDatabases { system: Vec<&'static str> },
}

/// RDS engine names (`Engine` of DescribeDBSnapshots) that this module can dump.
pub const SUPPORTED_ENGINES: &[&str] = &["postgres", "aurora-postgresql", "mysql", "mariadb", "aurora-mysql", "aurora"];

/// Databases of a PostgreSQL server that hold no user data: the templates and RDS's own.
const PG_SYSTEM_DATABASES: &[&str] = &["template0", "template1", "rdsadmin"];
/// Schemas of a MySQL or MariaDB server that the server itself maintains; `mysql` holds users and
/// grants, which a restore into a new instance must not overwrite.
const MYSQL_SYSTEM_DATABASES: &[&str] = &["information_schema", "performance_schema", "sys", "mysql"];

/// Where the server is and who connects. The password is not here: see [`DumpTool::password_file_contents`]
/// and [`PG_PASSWORD_ENV`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The MySQL option file holding the password (`--defaults-extra-file`); unused by PostgreSQL.
    pub password_file: Option<PathBuf>,
}

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: &'static str,
    pub args: Vec<String>,
}

/// One object of a dump archive, before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpObject {
    /// `None` for the server-wide globals.
    pub database: Option<String>,
    /// The object name under the archive prefix.
    pub name: String,
    pub format: DumpFormat,
    pub invocation: Invocation,
}

impl DumpTool {
    /// The tools for an RDS engine name.
    pub fn for_engine(engine: &str) -> Result<DumpTool, DumpError> {
        match engine {
            "postgres" | "aurora-postgresql" => Ok(DumpTool::PgDump),
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Ok(DumpTool::Mysqldump),
            _ => Err(DumpError::UnsupportedEngine { engine: engine.into() }),
        }
    }

    /// Every program the worker runs for this engine, whose `--version` goes in the manifest.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            DumpTool::PgDump => &["psql", "pg_dump", "pg_dumpall"],
            DumpTool::Mysqldump => &["mysql", "mysqldump"],
        }
    }

    pub fn system_databases(self) -> &'static [&'static str] {
        match self {
            DumpTool::PgDump => PG_SYSTEM_DATABASES,
            DumpTool::Mysqldump => MYSQL_SYSTEM_DATABASES,
        }
    }

    pub fn is_system_database(self, name: &str) -> bool {
        self.system_databases().contains(&name)
    }

    /// The command that prints the server's databases, one per record, for [`Self::parse_databases`].
    pub fn list_databases(self, connection: &Connection) -> Invocation {
        match self {
            DumpTool::PgDump => {
                let mut args = pg_connection_args(connection, PG_MAINTENANCE_DATABASE);
                // -X: no ~/.psqlrc; -A -t: bare values; -0: NUL after each record, so any name
                // (even one with a newline) comes back intact.
                args.extend(["-X", "-A", "-t", "-0", "-c"].map(String::from));
                args.push(
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname".into(),
                );
                Invocation { program: "psql", args }
            }
            DumpTool::Mysqldump => {
                let mut args = mysql_connection_args(connection);
                // --batch --skip-column-names --raw: one unescaped name per line.
                args.extend(
                    ["--batch", "--skip-column-names", "--raw", "--execute", "SHOW DATABASES"].map(String::from),
                );
                Invocation { program: "mysql", args }
            }
        }
    }

    /// The databases in `listing` (the output of [`Self::list_databases`]) without the system
    /// databases, sorted.
    pub fn parse_databases(self, listing: &str) -> Result<Vec<String>, DumpError> {
        let separator = match self {
            DumpTool::PgDump => '\0',
            DumpTool::Mysqldump => '\n',
        };
        let mut databases: Vec<String> = listing
            .split(separator)
            .map(|name| name.trim_end_matches('\n'))
            .filter(|name| !name.is_empty() && !self.is_system_database(name))
            .map(String::from)
            .collect();
        databases.sort();
        databases.dedup();
        if databases.is_empty() {
            return Err(DumpError::NoDatabases { system: self.system_databases().to_vec() });
        }
        Ok(databases)
    }

    /// The databases named on the command line, in order, each once. A system database named
    /// explicitly is dumped: the operator asked for it.
    pub fn requested_databases(requested: &[String]) -> Result<Vec<String>, DumpError> {
        let mut databases: Vec<String> = Vec::new();
        for database in requested {
            let why = if database.is_empty() {
                Some("it is empty")
            } else if database.contains('\0') {
                Some("it contains a NUL byte")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(DumpError::BadDatabaseName { database: database.clone(), why });
            }
            if !databases.contains(database) {
                databases.push(database.clone());
            }
        }
        Ok(databases)
    }

    /// Every object a dump of `databases` writes, in the order they run: for PostgreSQL the
    /// globals first (small, and a quick check that the credentials work), then each database.
    pub fn plan(self, connection: &Connection, databases: &[String], compression: Compression) -> Vec<DumpObject> {
        let mut objects = Vec::new();
        if self == DumpTool::PgDump {
            let mut args = pg_connection_args(connection, PG_MAINTENANCE_DATABASE);
            // On RDS the master user cannot read pg_authid; without passwords pg_dumpall reads
            // pg_roles instead. Restored roles need new passwords anyway.
            args.extend(["--globals-only", "--no-role-passwords"].map(String::from));
            objects.push(DumpObject {
                database: None,
                name: format!("{GLOBALS_STEM}.sql.{}", compression.extension()),
                format: DumpFormat::Sql,
                invocation: Invocation { program: "pg_dumpall", args },
            });
        }
        for database in databases {
            let (invocation, format) = match self {
                DumpTool::PgDump => {
                    let mut args = pg_connection_args(connection, database);
                    // Uncompressed custom format: our compressor compresses (in parallel), and
                    // pg_restore reads the result after a gunzip or zstd -d.
                    args.extend(["--format=custom", "--compress=0"].map(String::from));
                    (Invocation { program: "pg_dump", args }, DumpFormat::Custom)
                }
                DumpTool::Mysqldump => {
                    let mut args = mysql_connection_args(connection);
                    args.extend(
                        [
                            // A consistent InnoDB snapshot without locking tables; row by row, not buffered.
                            "--single-transaction",
                            "--quick",
                            "--routines",
                            "--triggers",
                            "--events",
                            // Binary columns as hex literals: the dump stays valid whatever the bytes.
                            "--hex-blob",
                            // With CREATE DATABASE and USE, so the dump restores under its name.
                            "--databases",
                        ]
                        .map(String::from),
                    );
                    args.push(database.clone());
                    (Invocation { program: "mysqldump", args }, DumpFormat::Sql)
                }
            };
            objects.push(DumpObject {
                database: Some(database.clone()),
                name: self.object_name(database, compression),
                format,
                invocation,
            });
        }
        objects
    }

    /// The object name of one database's dump: `<database>.pgdump.gz` (pg_restore's custom
    /// format) or `<database>.sql.gz`, with the name made safe for a key (see [`key_safe`]).
    pub fn object_name(self, database: &str, compression: Compression) -> String {
        let kind = match self {
            DumpTool::PgDump => "pgdump",
            DumpTool::Mysqldump => "sql",
        };
        format!("{}.{kind}.{}", key_safe(database), compression.extension())
    }

    /// The command that restores one dump object read from its stdin: `psql` for PostgreSQL's
    /// globals (`database` `None`; without ON_ERROR_STOP, so a role that exists already is
    /// reported and skipped), `pg_restore` for a database, `mysql` for a MySQL dump (which
    /// creates and selects its database itself). With `create`, pg_restore connects to the
    /// maintenance database and creates the dumped one under its name; without, it restores into
    /// the existing `database`.
    pub fn restore(self, connection: &Connection, database: Option<&str>, create: bool) -> Invocation {
        match (self, database) {
            (DumpTool::PgDump, None) => {
                let mut args = pg_connection_args(connection, PG_MAINTENANCE_DATABASE);
                args.extend(["-X", "-q"].map(String::from));
                Invocation { program: "psql", args }
            }
            (DumpTool::PgDump, Some(database)) => {
                let mut args = pg_connection_args(connection, if create { PG_MAINTENANCE_DATABASE } else { database });
                args.push("--exit-on-error".into());
                if create {
                    args.push("--create".into());
                }
                Invocation { program: "pg_restore", args }
            }
            (DumpTool::Mysqldump, _) => Invocation { program: "mysql", args: mysql_connection_args(connection) },
        }
    }

    /// The contents of the `--defaults-extra-file` that gives `mysql` and `mysqldump` the
    /// password without putting it on their command line.
    pub fn password_file_contents(password: &str) -> String {
        // Option files unescape \\, \", \n, \r, \t and \b inside a quoted value; a quoted value
        // may hold # and spaces.
        let mut escaped = String::with_capacity(password.len() + 2);
        for c in password.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '"' => escaped.push_str("\\\""),
                '\n' => escaped.push_str("\\n"),
                '\r' => escaped.push_str("\\r"),
                '\t' => escaped.push_str("\\t"),
                '\u{8}' => escaped.push_str("\\b"),
                c => escaped.push(c),
            }
        }
        format!("[client]\npassword=\"{escaped}\"\n")
    }
}

/// `-h -p -U`, never prompting (`-w`), and the database as a quoted conninfo `dbname`, so a
/// database whose name contains `=` is not read as a connection string.
fn pg_connection_args(connection: &Connection, database: &str) -> Vec<String> {
    let quoted = database.replace('\\', "\\\\").replace('\'', "\\'");
    vec![
        "-h".into(),
        connection.host.clone(),
        "-p".into(),
        connection.port.to_string(),
        "-U".into(),
        connection.user.clone(),
        "-w".into(),
        format!("--dbname=dbname='{quoted}'"),
    ]
}

/// The option file first (mysql reads `--defaults-extra-file` only there), then TCP to the host.
fn mysql_connection_args(connection: &Connection) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(file) = &connection.password_file {
        args.push(format!("--defaults-extra-file={}", file.display()));
    }
    args.extend([
        format!("--host={}", connection.host),
        format!("--port={}", connection.port),
        format!("--user={}", connection.user),
        // "localhost" would otherwise mean the Unix socket.
        "--protocol=TCP".into(),
    ]);
    args
}

/// A database name as a key component: ASCII letters, digits, `.`, `_` and `-` stay; every other
/// byte (`/` above all, which would make a prefix) becomes `%XX`, so distinct names stay distinct.
/// The manifest keeps the real name.
pub fn key_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"._-".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `text` with every occurrence of `secret` replaced, for a tool's stderr that goes into an
/// error message or a log.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    text.replace(secret, "<redacted>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_read_stdin_and_never_name_the_password() {
        let pg = connection(None);
        let create = DumpTool::PgDump.restore(&pg, Some("app"), true);
        assert_eq!(create.program, "pg_restore");
        assert!(create.args.contains(&"--create".into()) && create.args.contains(&"--exit-on-error".into()));
        assert!(create.args.contains(&"--dbname=dbname='postgres'".into()), "{:?}", create.args);
        let existing = DumpTool::PgDump.restore(&pg, Some("postgres"), false);
        assert!(!existing.args.contains(&"--create".into()));
        assert_eq!(DumpTool::PgDump.restore(&pg, None, false).program, "psql");
        let mysql = DumpTool::Mysqldump.restore(&connection(Some("/run/x/client.cnf")), Some("shop"), true);
        assert_eq!(mysql.program, "mysql");
        assert_eq!(mysql.args[0], "--defaults-extra-file=/run/x/client.cnf");
    }

    fn connection(password_file: Option<&str>) -> Connection {
        Connection {
            host: "db.example".into(),
            port: 5432,
            user: "master".into(),
            password_file: password_file.map(PathBuf::from),
        }
    }

    #[test]
    fn maps_rds_engines_to_tools() {
        for engine in ["postgres", "aurora-postgresql"] {
            assert_eq!(DumpTool::for_engine(engine), Ok(DumpTool::PgDump));
        }
        for engine in ["mysql", "mariadb", "aurora-mysql", "aurora"] {
            assert_eq!(DumpTool::for_engine(engine), Ok(DumpTool::Mysqldump));
        }
        for engine in SUPPORTED_ENGINES {
            assert!(DumpTool::for_engine(engine).is_ok(), "{engine}");
        }
    }

    #[test]
    fn rejects_engines_without_dump_tools_naming_the_supported_ones() {
        let err = DumpTool::for_engine("oracle-ee").unwrap_err();
        assert_eq!(err, DumpError::UnsupportedEngine { engine: "oracle-ee".into() });
        assert!(err.to_string().contains("aurora-postgresql"), "{err}");
        assert!(DumpTool::for_engine("Postgres").is_err(), "RDS engine names are lower case");
    }

    #[test]
    fn skips_postgres_templates_and_rdsadmin() {
        let listing = "app\0postgres\0rdsadmin\0template1\0two\nlines\0";
        assert_eq!(DumpTool::PgDump.parse_databases(listing).unwrap(), ["app", "postgres", "two\nlines"]);
    }

    #[test]
    fn skips_mysql_system_schemas() {
        let listing = "information_schema\nshop\nmysql\nperformance_schema\nsys\nanalytics\n";
        assert_eq!(DumpTool::Mysqldump.parse_databases(listing).unwrap(), ["analytics", "shop"]);
    }

    #[test]
    fn a_server_with_only_system_databases_has_nothing_to_dump() {
        assert!(matches!(DumpTool::Mysqldump.parse_databases("mysql\nsys\n"), Err(DumpError::NoDatabases { .. })));
        assert!(matches!(DumpTool::PgDump.parse_databases(""), Err(DumpError::NoDatabases { .. })));
    }

    #[test]
    fn requested_databases_keep_order_once_each_and_reject_empty_names() {
        let requested = ["b", "a", "b", "mysql"].map(String::from);
        assert_eq!(DumpTool::requested_databases(&requested).unwrap(), ["b", "a", "mysql"]);
        assert!(matches!(DumpTool::requested_databases(&[String::new()]), Err(DumpError::BadDatabaseName { .. })));
    }

    #[test]
    fn postgres_plan_dumps_globals_first_then_each_database_in_custom_format() {
        let objects = DumpTool::PgDump.plan(&connection(None), &["app".into(), "a=b".into()], Compression::Gzip);
        let names: Vec<_> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["globals.sql.gz", "app.pgdump.gz", "a%3Db.pgdump.gz"]);
        assert_eq!(objects[0].database, None);
        assert_eq!(objects[0].invocation.program, "pg_dumpall");
        assert!(objects[0].invocation.args.contains(&"--no-role-passwords".to_string()));
        let app = &objects[1];
        assert_eq!((app.invocation.program, app.format), ("pg_dump", DumpFormat::Custom));
        assert_eq!(
            app.invocation.args,
            [
                "-h",
                "db.example",
                "-p",
                "5432",
                "-U",
                "master",
                "-w",
                "--dbname=dbname='app'",
                "--format=custom",
                "--compress=0"
            ]
        );
        assert!(
            objects[2].invocation.args.contains(&"--dbname=dbname='a=b'".to_string()),
            "a name with = stays a name"
        );
    }

    #[test]
    fn mysql_plan_puts_the_option_file_first_and_dumps_each_database() {
        let objects = DumpTool::Mysqldump.plan(&connection(Some("/tmp/x/my.cnf")), &["shop".into()], Compression::Zstd);
        assert_eq!(objects.len(), 1, "no globals object for MySQL");
        let shop = &objects[0];
        assert_eq!(
            (shop.name.as_str(), shop.invocation.program, shop.format),
            ("shop.sql.zst", "mysqldump", DumpFormat::Sql)
        );
        assert_eq!(shop.invocation.args[0], "--defaults-extra-file=/tmp/x/my.cnf");
        assert_eq!(shop.invocation.args.last().map(String::as_str), Some("shop"));
        for flag in [
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--databases",
            "--protocol=TCP",
        ] {
            assert!(shop.invocation.args.iter().any(|a| a == flag), "{flag} in {:?}", shop.invocation.args);
        }
    }

    #[test]
    fn list_commands_print_one_name_per_record() {
        let pg = DumpTool::PgDump.list_databases(&connection(None));
        assert_eq!(pg.program, "psql");
        assert!(pg.args.contains(&"-0".to_string()) && pg.args.contains(&"--dbname=dbname='postgres'".to_string()));
        let my = DumpTool::Mysqldump.list_databases(&connection(Some("/f")));
        assert_eq!(my.program, "mysql");
        assert_eq!(my.args.last().map(String::as_str), Some("SHOW DATABASES"));
    }

    #[test]
    fn no_invocation_carries_a_password_argument() {
        for tool in [DumpTool::PgDump, DumpTool::Mysqldump] {
            let connection = connection(Some("/f"));
            let mut invocations: Vec<_> =
                tool.plan(&connection, &["d".into()], Compression::Gzip).into_iter().map(|o| o.invocation).collect();
            invocations.push(tool.list_databases(&connection));
            for invocation in invocations {
                assert!(
                    !invocation
                        .args
                        .iter()
                        .any(|a| a.starts_with("--password") || a == "-p" && tool == DumpTool::Mysqldump),
                    "{invocation:?}"
                );
            }
        }
    }

    #[test]
    fn key_safe_names_escape_slashes_and_keep_plain_names() {
        assert_eq!(key_safe("app_db-1.v2"), "app_db-1.v2");
        assert_eq!(key_safe("a/b"), "a%2Fb");
        assert_eq!(key_safe("100%"), "100%25");
        assert_eq!(key_safe("café"), "caf%C3%A9");
        assert_ne!(key_safe("a/b"), key_safe("a%2Fb"), "escaping keeps distinct names distinct");
    }

    #[test]
    fn password_file_quotes_and_escapes_the_password() {
        assert_eq!(
            DumpTool::password_file_contents(r#"p@ss "w\o#rd" x"#),
            "[client]\npassword=\"p@ss \\\"w\\\\o#rd\\\" x\"\n"
        );
        assert_eq!(DumpTool::password_file_contents("a\nb"), "[client]\npassword=\"a\\nb\"\n");
    }

    #[test]
    fn redacts_every_occurrence_of_the_secret() {
        assert_eq!(redact("pw=s3cret, again s3cret", "s3cret"), "pw=<redacted>, again <redacted>");
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
