//! Restoring a dump archive into a database server: each dump streamed from S3, decompressed and
//! checked against the manifest's SHA-256 as it goes, into `pg_restore`, `psql` or `mysql` on
//! their stdin. The password reaches them as it reaches the dump tools (environment or a private
//! option file), never by a command line. A database that exists already on the target is never
//! overwritten: the restore refuses before it starts.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use archiver_core::dump_tools::{Connection, DumpTool, Invocation, PG_MAINTENANCE_DATABASE, PG_PASSWORD_ENV};
use archiver_core::manifest::{ArchiveMode, ArchivedObject};
use archiver_core::s3_location::S3Location;

use crate::command::{self, CommandError};
use crate::password::{OptionFile, Password, PasswordError};
use crate::restore::{decompressor, open_segments, HashingReader, RestoreError};
use crate::verify::fetch_manifest;

/// The tail of a tool's stderr kept for the error message.
const STDERR_TAIL: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseRestoreError {
    #[error("{url:?} is not a database URL like postgresql://USER@HOST:PORT or mysql://USER@HOST:PORT: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("the archive holds no database dumps")]
    NotADump,
    #[error("the archive holds a {engine} dump, which does not restore into {scheme}://")]
    WrongEngine { engine: String, scheme: String },
    #[error("the archive has no dump of database {database:?}; it has {}", available.join(", "))]
    NoSuchDatabase { database: String, available: Vec<String> },
    #[error(
        "database {database:?} exists already on {host}:{port}: drop it or restore into another server; \
         nothing was restored"
    )]
    DatabaseExists { database: String, host: String, port: u16 },
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("cannot list the databases of {host}:{port}: {source}")]
    ListDatabases {
        host: String,
        port: u16,
        #[source]
        source: CommandError,
    },
    #[error("restoring {key} with {program} failed ({status}): {stderr}")]
    Tool { key: String, program: String, status: String, stderr: String },
    #[error("cannot read {key}: {source}")]
    Read {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("{key} does not match the manifest ({problem}): database {database} was restored from it; drop it")]
    Mismatch { key: String, database: String, problem: String },
    #[error("a restore task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DatabaseRestoreError {
    /// An error of the request rather than of the run.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            DatabaseRestoreError::BadUrl { .. }
                | DatabaseRestoreError::NotADump
                | DatabaseRestoreError::WrongEngine { .. }
                | DatabaseRestoreError::NoSuchDatabase { .. }
                | DatabaseRestoreError::DatabaseExists { .. }
                | DatabaseRestoreError::Password(PasswordError::EnvUnset { .. } | PasswordError::NotFound { .. })
        )
    }
}

/// The server a restore writes into, from `postgresql://USER@HOST[:PORT]` or
/// `mysql://USER@HOST[:PORT]` (also `postgres://`, `mariadb://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub scheme: String,
    pub tool: DumpTool,
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl std::str::FromStr for DatabaseUrl {
    type Err = DatabaseRestoreError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why| DatabaseRestoreError::BadUrl { url: url.into(), why };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (tool, default_port) = match scheme {
            "postgresql" | "postgres" => (DumpTool::PgDump, 5432),
            "mysql" | "mariadb" => (DumpTool::Mysqldump, 3306),
            _ => return Err(bad("the scheme is none of postgresql, postgres, mysql, mariadb")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('?') {
            return Err(bad("the target is a server: no database or options in the URL"));
        }
        let (user, address) = authority.rsplit_once('@').ok_or_else(|| bad("no USER@"))?;
        if user.contains(':') {
            return Err(bad("a password never goes on the command line: use --password-env or --password-parameter"));
        }
        if user.is_empty() {
            return Err(bad("the user is empty"));
        }
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad("the port is not a number"))?),
            None => (address, default_port),
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        Ok(DatabaseUrl { scheme: scheme.into(), tool, host: host.into(), port, user: user.into() })
    }
}

/// One dump restored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoredDatabase {
    /// `None` for PostgreSQL's roles and tablespaces.
    pub database: Option<String>,
    pub key: String,
    pub program: String,
    /// Bytes of the dump fed to the program.
    pub bytes: u64,
}

/// Restores the dumps under `location` into the server `target`: every database (PostgreSQL's
/// roles first), or the ones named in `databases`. PostgreSQL's maintenance database
/// (`postgres`) exists on every server: it is restored into the existing one, and only when
/// named.
pub async fn restore_to_database(
    client: &aws_sdk_s3::Client,
    location: &S3Location,
    target: &DatabaseUrl,
    password: &Password,
    databases: &[String],
) -> Result<Vec<RestoredDatabase>, DatabaseRestoreError> {
    let manifest = fetch_manifest(client, location).await.map_err(RestoreError::from)?;
    let dumps: Vec<&ArchivedObject> = manifest.objects.iter().filter(|o| o.mode == ArchiveMode::Dump).collect();
    let engine =
        dumps.first().and_then(|o| o.dump.as_ref()).map(|d| d.engine.clone()).ok_or(DatabaseRestoreError::NotADump)?;
    if DumpTool::for_engine(&engine).ok() != Some(target.tool) {
        return Err(DatabaseRestoreError::WrongEngine { engine, scheme: target.scheme.clone() });
    }
    let database_of = |o: &ArchivedObject| o.dump.as_ref().and_then(|d| d.database.clone());
    for name in databases {
        if !dumps.iter().any(|o| database_of(o).as_ref() == Some(name)) {
            let available = dumps.iter().filter_map(|o| database_of(o)).collect();
            return Err(DatabaseRestoreError::NoSuchDatabase { database: name.clone(), available });
        }
    }
    let chosen: Vec<&ArchivedObject> = dumps
        .into_iter()
        .filter(|o| match database_of(o) {
            // The globals come with any restore of a whole PostgreSQL server.
            None => databases.is_empty(),
            Some(name) if databases.is_empty() => !(target.tool == DumpTool::PgDump && name == PG_MAINTENANCE_DATABASE),
            Some(name) => databases.contains(&name),
        })
        .collect();

    // Removed when this function returns, whichever way.
    let option_file = match target.tool {
        DumpTool::Mysqldump => Some(OptionFile::write(password)?),
        DumpTool::PgDump => None,
    };
    let connection = Connection {
        host: target.host.clone(),
        port: target.port,
        user: target.user.clone(),
        password_file: option_file.as_ref().map(OptionFile::path),
    };
    let existing = existing_databases(target.tool, &connection, password).await?;
    for object in &chosen {
        let Some(name) = database_of(object) else { continue };
        let into_existing = target.tool == DumpTool::PgDump && name == PG_MAINTENANCE_DATABASE;
        if existing.contains(&name) && !into_existing {
            return Err(DatabaseRestoreError::DatabaseExists {
                database: name,
                host: target.host.clone(),
                port: target.port,
            });
        }
    }

    let mut restored = Vec::new();
    for object in chosen {
        let database = database_of(object);
        let create = database.as_deref() != Some(PG_MAINTENANCE_DATABASE);
        let invocation = target.tool.restore(&connection, database.as_deref(), create);
        let compressed = open_segments(client, &location.bucket, object).await?;
        let (key, program) = (object.key.clone(), invocation.program.to_string());
        let (object, password, tool) = (object.clone(), password.clone(), target.tool);
        let bytes =
            tokio::task::spawn_blocking(move || feed(tool, &invocation, &password, compressed, &object)).await??;
        tracing::info!(database = database.as_deref().unwrap_or("(globals)"), key, program, bytes, "restored");
        restored.push(RestoredDatabase { database, key, program, bytes });
    }
    Ok(restored)
}

/// The server's databases, system ones included.
async fn existing_databases(
    tool: DumpTool,
    connection: &Connection,
    password: &Password,
) -> Result<Vec<String>, DatabaseRestoreError> {
    let invocation = tool.list_databases(connection);
    let listing = command::output(child(tool, &invocation, password).into()).await.map_err(|e| {
        DatabaseRestoreError::ListDatabases {
            host: connection.host.clone(),
            port: connection.port,
            source: e.redact(|s| password.redact(s)),
        }
    })?;
    let separator = if tool == DumpTool::PgDump { '\0' } else { '\n' };
    Ok(listing.split(separator).map(|name| name.trim_end_matches('\n').to_string()).filter(|n| !n.is_empty()).collect())
}

/// PostgreSQL's tools get the password in their environment; MySQL's read their option file.
fn child(tool: DumpTool, invocation: &Invocation, password: &Password) -> Command {
    let mut command = Command::new(invocation.program);
    command.args(&invocation.args);
    if tool == DumpTool::PgDump {
        command.env(PG_PASSWORD_ENV, password.expose());
    }
    command
}

/// Runs the restore tool with the object's decompressed stream on its stdin; returns the bytes
/// fed. The tool's exit status is checked before the stream's SHA-256, so that a tool that
/// stopped early reports its own error.
fn feed(
    tool: DumpTool,
    invocation: &Invocation,
    password: &Password,
    compressed: crate::restore::Segments,
    object: &ArchivedObject,
) -> Result<u64, DatabaseRestoreError> {
    let key = object.key.clone();
    let read_err = |source| DatabaseRestoreError::Read { key: key.clone(), source };
    let mut content = HashingReader::new(decompressor(object.compression, compressed).map_err(read_err)?);
    // stderr goes to a file: a tool that complains a lot while we write its stdin cannot block.
    let stderr = tempfile::tempfile().map_err(read_err)?;
    let mut running = child(tool, invocation, password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().map_err(read_err)?)
        .spawn()
        .map_err(|source| DatabaseRestoreError::Read {
            key: format!("{key} (starting {})", invocation.program),
            source,
        })?;
    let mut stdin = running.stdin.take().expect("stdin is piped");
    let copied = io::copy(&mut content, &mut stdin).and_then(|_| stdin.flush());
    drop(stdin);
    let status = running.wait().map_err(read_err)?;
    if !status.success() {
        return Err(DatabaseRestoreError::Tool {
            key,
            program: invocation.program.into(),
            status: status.to_string(),
            stderr: password.redact(&tail(stderr)),
        });
    }
    copied.map_err(read_err)?;
    let (bytes, sha256) = content.finish();
    if bytes != object.bytes_in || sha256 != object.content_sha256 {
        return Err(DatabaseRestoreError::Mismatch {
            key,
            database: object.dump.as_ref().and_then(|d| d.database.clone()).unwrap_or_else(|| "(globals)".into()),
            problem: format!(
                "{bytes} bytes with SHA-256 {sha256}, expected {} with {}",
                object.bytes_in, object.content_sha256
            ),
        });
    }
    Ok(bytes)
}

/// The last [`STDERR_TAIL`] bytes of a tool's stderr file, trimmed.
fn tail(mut file: std::fs::File) -> String {
    use std::io::Seek;
    let len = file.seek(io::SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(io::SeekFrom::Start(len.saturating_sub(STDERR_TAIL as u64)));
    let mut text = Vec::new();
    let _ = file.read_to_end(&mut text);
    String::from_utf8_lossy(&text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_urls_with_default_ports() {
        let url: DatabaseUrl = "postgresql://master@db.example".parse().unwrap();
        assert_eq!(
            (url.tool, url.host.as_str(), url.port, url.user.as_str()),
            (DumpTool::PgDump, "db.example", 5432, "master")
        );
        let url: DatabaseUrl = "mariadb://admin@10.0.0.5:3307/".parse().unwrap();
        assert_eq!((url.tool, url.port), (DumpTool::Mysqldump, 3307));
    }

    #[test]
    fn refuses_a_password_in_the_url_and_other_malformed_urls() {
        for url in [
            "postgresql://master:secret@db",
            "oracle://u@h",
            "db.example",
            "mysql://@h",
            "mysql://u@h:x",
            "postgres://u@h/app",
        ] {
            assert!(matches!(url.parse::<DatabaseUrl>(), Err(DatabaseRestoreError::BadUrl { .. })), "{url}");
        }
        let error = "postgresql://master:secret@db".parse::<DatabaseUrl>().unwrap_err().to_string();
        assert!(error.contains("--password-env"), "{error}");
    }
}
