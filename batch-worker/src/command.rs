//! Running the few system tools the worker relies on (`losetup`, `blkid`, `sfdisk`) with their
//! stderr and exit status kept for the error message.

use std::ffi::OsStr;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {args} failed ({status}): {stderr}")]
    Failed { program: String, args: String, status: std::process::ExitStatus, stderr: String },
}

/// Runs `program args...` to completion and returns its stdout, or an error carrying its stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<String, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let output = Command::new(program)
        .args(&args)
        .output()
        .map_err(|source| CommandError::Spawn { program: program.to_string(), source })?;
    if !output.status.success() {
        return Err(CommandError::Failed {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
