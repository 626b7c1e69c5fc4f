//! Dump mode: a database server (the RDS flow's temporary instance) archived with its engine's
//! own tools. Each database's dump streams from the tool's stdout through the shared pipeline
//! ([`crate::pipeline`]: compress -> multipart upload) into one object; the manifest is uploaded
//! last. A tool that exits non-zero, a read, compression or upload error, or a signal fails the
//! run and deletes what it stored: a prefix never holds a short dump.
//!
//! What runs, with which arguments, and under which names is decided in
//! [`archiver_core::dump_tools`]; this module runs it.

use std::collections::HashMap;
use std::time::Instant;

use archiver_core::dump_tools::{
    Connection, DumpError as PlanError, DumpObject, DumpTool, Invocation, PG_PASSWORD_ENV,
};
use archiver_core::manifest::{
    ArchiveMode, ArchivedObject, DatabaseSource, DumpInfo, Manifest, SourceInfo, MANIFEST_FORMAT,
};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::Client;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::archive::ArchiveReport;
use crate::command::{self, CommandError};
use crate::compress::{CompressError, Compressor};
use crate::password::{OptionFile, Password, PasswordError};
use crate::pipeline::{self, ManifestUploadError, PipelineOptions};
use crate::upload::{ObjectSpec, UploadError};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("cannot run {program} (is the {engine} client installed?): {source}")]
    ToolMissing {
        program: String,
        engine: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("cannot list the databases of {host}:{port}: {source}")]
    ListDatabases {
        host: String,
        port: u16,
        #[source]
        source: Box<CommandError>,
    },
    #[error("dumping {what} failed: {source}")]
    Dump {
        what: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error(transparent)]
    Compress(#[from] CompressError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Manifest(#[from] ManifestUploadError),
}

impl DumpError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, DumpError::Upload(UploadError::Interrupted))
    }

    /// Whether the run could not start for want of configuration (the engine, the parameter,
    /// the tools) rather than failed on the way.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            DumpError::Plan(PlanError::UnsupportedEngine { .. } | PlanError::BadDatabaseName { .. })
                | DumpError::Password(PasswordError::NotFound { .. } | PasswordError::Empty { .. })
                | DumpError::ToolMissing { .. }
        )
    }
}

/// What to dump and how to reach it.
#[derive(Debug, Clone)]
pub struct DumpRequest {
    /// The RDS engine name (`postgres`, `aurora-mysql`, ...), recorded as given.
    pub engine: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Password,
    /// The databases to dump; empty: every database but the system ones.
    pub databases: Vec<String>,
    /// The snapshot the server was restored from, recorded in the manifest and metadata.
    pub snapshot_id: Option<String>,
}

/// Dumps the server's databases under `dest` and uploads the manifest last.
pub async fn dump_server(
    client: &Client,
    dest: &S3Location,
    request: &DumpRequest,
    options: &PipelineOptions,
    cancel: &CancellationToken,
) -> Result<ArchiveReport, DumpError> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let tool = DumpTool::for_engine(&request.engine)?;
    let requested = DumpTool::requested_databases(&request.databases)?;
    let compressor = Compressor::new(options.compression, options.level)?;
    // Removed when this function returns, whichever way.
    let option_file = match tool {
        DumpTool::Mysqldump => Some(OptionFile::write(&request.password)?),
        DumpTool::PgDump => None,
    };
    let runner = Runner {
        tool,
        password: &request.password,
        connection: Connection {
            host: request.host.clone(),
            port: request.port,
            user: request.user.clone(),
            password_file: option_file.as_ref().map(OptionFile::path),
        },
    };
    let versions = runner.versions(&request.engine).await?;
    let databases = match requested.is_empty() {
        true => runner.list_databases().await?,
        false => requested,
    };
    tracing::info!(engine = %request.engine, host = %request.host, port = request.port, ?databases, "dumping");

    let mut objects = Vec::new();
    let mut result = Ok(());
    for planned in tool.plan(&runner.connection, &databases, options.compression) {
        let version = versions.get(planned.invocation.program).cloned().unwrap_or_default();
        let span = tracing::info_span!(
            "dump",
            database = planned.database.as_deref(),
            tool = planned.invocation.program,
            object = %planned.name
        );
        let dumped = runner
            .dump_object(client, dest, request, options, &compressor, planned, version, cancel)
            .instrument(span)
            .await;
        match dumped {
            Ok(object) => objects.push(object),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let bytes_read = objects.iter().map(|o| o.bytes_in).sum();
    let run = result.map(|()| Manifest {
        format: MANIFEST_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        source: SourceInfo {
            device: format!("{}:{}", request.host, request.port),
            size: bytes_read,
            partition_table: None,
            partition_table_dump: None,
            volume_id: None,
            snapshot_id: request.snapshot_id.clone(),
            database: Some(DatabaseSource {
                engine: request.engine.clone(),
                host: request.host.clone(),
                port: request.port,
                user: request.user.clone(),
            }),
        },
        objects: objects.clone(),
        started_at,
        finished_at: chrono::Utc::now(),
    });
    let manifest_key = pipeline::conclude(client, dest, &options.upload, &objects, run).await?;
    drop(option_file);
    Ok(ArchiveReport {
        location: dest.to_string(),
        manifest_key,
        objects,
        bytes_read,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Runs one engine's tools against one server.
struct Runner<'a> {
    tool: DumpTool,
    password: &'a Password,
    connection: Connection,
}

impl Runner<'_> {
    /// The child for `invocation`: PostgreSQL tools get the password in their environment
    /// (MySQL's read their option file), and none of them prompts for it.
    fn command(&self, invocation: &Invocation) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(invocation.program);
        command.args(&invocation.args);
        if self.tool == DumpTool::PgDump {
            command.env(PG_PASSWORD_ENV, self.password.expose());
        }
        command
    }

    /// Each program's `--version` line, for the manifest; the first missing program fails the run.
    async fn versions(&self, engine: &str) -> Result<HashMap<&'static str, String>, DumpError> {
        let mut versions = HashMap::new();
        for program in self.tool.programs() {
            let invocation = Invocation { program, args: vec!["--version".into()] };
            let out = command::output(self.command(&invocation)).await.map_err(|source| DumpError::ToolMissing {
                program: program.to_string(),
                engine: engine.into(),
                source: Box::new(source),
            })?;
            versions.insert(*program, out.lines().next().unwrap_or_default().trim().to_string());
        }
        Ok(versions)
    }

    async fn list_databases(&self) -> Result<Vec<String>, DumpError> {
        let invocation = self.tool.list_databases(&self.connection);
        let listing = command::output(self.command(&invocation)).await.map_err(|e| DumpError::ListDatabases {
            host: self.connection.host.clone(),
            port: self.connection.port,
            source: Box::new(e.redact(|s| self.password.redact(s))),
        })?;
        Ok(self.tool.parse_databases(&listing)?)
    }

    /// Streams one tool's output into one object.
    #[allow(clippy::too_many_arguments)]
    async fn dump_object(
        &self,
        client: &Client,
        dest: &S3Location,
        request: &DumpRequest,
        options: &PipelineOptions,
        compressor: &std::sync::Arc<Compressor>,
        planned: DumpObject,
        tool_version: String,
        cancel: &CancellationToken,
    ) -> Result<ArchivedObject, DumpError> {
        let key = dest.key(&planned.name);
        let what = match &planned.database {
            Some(database) => format!("database {database:?}"),
            None => "the roles and tablespaces".to_string(),
        };
        let mut metadata = HashMap::from([
            ("archive-mode".to_string(), "dump".to_string()),
            ("engine".to_string(), request.engine.clone()),
            ("dump-tool".to_string(), planned.invocation.program.to_string()),
            ("tool-version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ]);
        let optional = [("database", planned.database.clone()), ("snapshot-id", request.snapshot_id.clone())];
        metadata.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))));
        let object = ObjectSpec::new(key.clone(), metadata, options.compression);

        let chunks = command::stream_stdout(self.command(&planned.invocation)).map(|chunk| {
            chunk.map_err(|source| DumpError::Dump {
                what: what.clone(),
                source: Box::new(source.redact(|s| self.password.redact(s))),
            })
        });
        let stored = pipeline::send_stream(client, options, compressor, object, chunks, None, cancel).await?;
        tracing::info!(bytes_in = stored.bytes_in, bytes_out = stored.size, "dumped");
        Ok(ArchivedObject {
            key,
            mode: ArchiveMode::Dump,
            compression: options.compression,
            partition: None,
            fs_type: None,
            raw_reason: None,
            size: stored.size,
            sha256: stored.sha256,
            bytes_in: stored.bytes_in,
            bytes_out: stored.size,
            content_sha256: stored.content_sha256,
            entries: None,
            dump: Some(DumpInfo {
                engine: request.engine.clone(),
                database: planned.database,
                tool: planned.invocation.program.to_string(),
                tool_version,
                format: planned.format,
            }),
            fs_used_bytes: None,
            segments: stored.segments,
            index: None,
        })
    }
}
