//! Running the system tools the worker relies on (`losetup`, `blkid`, `sfdisk`; `pg_dump`,
//! `mysqldump` and their clients) with their stderr and exit status kept for the error message:
//! to completion ([`run`], [`output`]), or streaming their stdout ([`stream_stdout`]).

use std::ffi::OsStr;
use std::process::{Command, ExitStatus, Output, Stdio};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::compress::CHUNK_SIZE;

/// The tail of a streaming program's stderr kept for the error message: enough for any tool's
/// complaint, bounded whatever it prints along the way.
const STDERR_TAIL: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {args} failed ({status}): {stderr}")]
    Failed { program: String, args: String, status: ExitStatus, stderr: String },
    #[error("failed to read the output of {program}: {source}")]
    Read {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    /// The same error with `redact` applied to the program's stderr, the one part of it that
    /// comes from outside.
    pub fn redact(self, redact: impl Fn(&str) -> String) -> Self {
        match self {
            CommandError::Failed { program, args, status, stderr } => {
                CommandError::Failed { program, args, status, stderr: redact(&stderr) }
            }
            other => other,
        }
    }
}

/// Runs `program args...` to completion and returns its stdout, or an error carrying its stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<String, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    let output = command.output().map_err(|source| CommandError::Spawn { program: program.to_string(), source })?;
    checked(&command, output)
}

/// [`run`] for a command built by the caller (with its environment), without blocking the runtime.
pub async fn output(mut command: tokio::process::Command) -> Result<String, CommandError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| CommandError::Spawn { program: program_of(command.as_std()), source })?;
    checked(command.as_std(), output)
}

/// Starts `command` and yields its stdout in [`CHUNK_SIZE`] chunks as it is written, never more
/// than one chunk in memory. The stream ends cleanly only after the program exited with 0;
/// otherwise its last item is the error, with the tail of the program's stderr. Dropping the
/// stream early kills the program.
pub fn stream_stdout(mut command: tokio::process::Command) -> impl Stream<Item = Result<Bytes, CommandError>> {
    let program = program_of(command.as_std());
    let started = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn { program: program.clone(), source })
        .map(|mut child| {
            let stdout = child.stdout.take().expect("stdout is piped");
            let stderr = tokio::spawn(read_tail(child.stderr.take().expect("stderr is piped")));
            let args = describe_args(command.as_std());
            Streaming { child, stdout, stderr, args }
        });
    futures::stream::unfold(Some(started), move |state| {
        let program = program.clone();
        async move {
            let mut running = match state? {
                Ok(running) => running,
                Err(e) => return Some((Err(e), None)),
            };
            let mut chunk = BytesMut::with_capacity(CHUNK_SIZE);
            while chunk.len() < CHUNK_SIZE {
                match running.stdout.read_buf(&mut chunk).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(source) => return Some((Err(CommandError::Read { program, source }), None)),
                }
            }
            if !chunk.is_empty() {
                return Some((Ok(chunk.freeze()), Some(Ok(running))));
            }
            // End of output: the program's exit status decides whether that was the end.
            let status = match running.child.wait().await {
                Ok(status) => status,
                Err(source) => return Some((Err(CommandError::Read { program, source }), None)),
            };
            if status.success() {
                return None;
            }
            let stderr = running.stderr.await.unwrap_or_default();
            let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
            Some((Err(CommandError::Failed { program, args: running.args, status, stderr }), None))
        }
    })
}

/// A program whose stdout is being streamed.
struct Streaming {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    args: String,
}

async fn read_tail(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    tail
}

fn checked(command: &Command, output: Output) -> Result<String, CommandError> {
    if !output.status.success() {
        return Err(CommandError::Failed {
            program: program_of(command),
            args: describe_args(command),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn program_of(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

fn describe_args(command: &Command) -> String {
    command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn shell(script: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[tokio::test]
    async fn streams_stdout_in_whole_chunks_and_ends_on_success() {
        let items: Vec<_> = stream_stdout(shell("head -c 2500000 /dev/zero")).collect().await;
        let sizes: Vec<usize> = items.into_iter().map(|i| i.unwrap().len()).collect();
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 2_500_000 - 2 * CHUNK_SIZE]);
    }

    #[tokio::test]
    async fn a_failing_program_ends_its_stream_with_its_stderr() {
        let items: Vec<_> = stream_stdout(shell("printf partial; echo 'no such table' >&2; exit 3")).collect().await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().as_ref(), b"partial");
        match &items[1] {
            Err(CommandError::Failed { program, stderr, status, .. }) => {
                assert_eq!((program.as_str(), stderr.as_str(), status.code()), ("sh", "no such table", Some(3)));
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let items: Vec<_> = stream_stdout(tokio::process::Command::new("/nonexistent/tool")).collect().await;
        assert!(matches!(items.as_slice(), [Err(CommandError::Spawn { .. })]), "{items:?}");
    }

    #[tokio::test]
    async fn redacts_only_the_stderr() {
        let mut command = shell("echo \"password $SECRET rejected\" >&2; exit 1");
        command.env("SECRET", "hunter2");
        let err = output(command).await.unwrap_err();
        let text = err.redact(|s| s.replace("hunter2", "<redacted>")).to_string();
        assert!(text.contains("password <redacted> rejected") && !text.contains("hunter2"), "{text}");
    }
}
