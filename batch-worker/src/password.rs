//! The database password of a dump or a restore: read from SSM Parameter Store (or, for an
//! operator's restore, an environment variable), held in a type that never
//! prints it, and handed to a tool only by its environment (PostgreSQL) or by an option file
//! readable by us alone (MySQL), never by its command line, a log line or an error message.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use archiver_core::dump_tools::{redact, DumpTool};
use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("SSM parameter {name} does not exist")]
    NotFound { name: String },
    #[error("cannot read SSM parameter {name}: {message}")]
    Read { name: String, message: String },
    #[error("SSM parameter {name} has no value")]
    Empty { name: String },
    #[error("environment variable {name} holds no password")]
    EnvUnset { name: String },
    #[error("cannot write the MySQL option file for the password: {0}")]
    OptionFile(#[source] std::io::Error),
}

/// A password. `Debug` prints `<redacted>`, and there is no `Display`: the value leaves only
/// through [`Password::expose`], at the two places that hand it to a tool.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Reads the SecureString (or String) parameter `name`, decrypted.
    pub async fn from_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<Password, PasswordError> {
        let output = client.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
            match e.as_service_error() {
                Some(GetParameterError::ParameterNotFound(_)) => PasswordError::NotFound { name: name.into() },
                // SSM's messages name the parameter, never its value.
                _ => PasswordError::Read { name: name.into(), message: DisplayErrorContext(e).to_string() },
            }
        })?;
        match output.parameter.and_then(|p| p.value) {
            Some(value) if !value.is_empty() => Ok(Password(value)),
            _ => Err(PasswordError::Empty { name: name.into() }),
        }
    }

    /// The value of environment variable `name` (an operator's shell, a secret injected into a
    /// container), so that it never appears on a command line.
    pub fn from_env(name: &str) -> Result<Password, PasswordError> {
        match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Password(value)),
            _ => Err(PasswordError::EnvUnset { name: name.into() }),
        }
    }

    /// The value, for a child's environment or the option file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` (a tool's stderr) with the password cut out.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.0)
    }
}

/// The `--defaults-extra-file` of `mysql` and `mysqldump`: a 0600 file in a private temporary
/// directory, removed when this is dropped (on every path, panics included).
pub struct OptionFile {
    dir: tempfile::TempDir,
}

impl OptionFile {
    /// The file's name in its directory.
    const NAME: &'static str = "client.cnf";

    pub fn write(password: &Password) -> Result<OptionFile, PasswordError> {
        // The directory is ours alone (0700), and the file is created 0600 before anything is
        // written to it.
        let dir =
            tempfile::Builder::new().prefix("backup-archiver-mysql-").tempdir().map_err(PasswordError::OptionFile)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(PasswordError::OptionFile)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join(Self::NAME))
            .map_err(PasswordError::OptionFile)?;
        file.write_all(DumpTool::password_file_contents(password.expose()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(PasswordError::OptionFile)?;
        Ok(OptionFile { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(Self::NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let password = Password("hunter2".into());
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        assert_eq!(password.redact("auth failed for hunter2"), "auth failed for <redacted>");
    }

    #[test]
    fn option_file_is_private_and_removed_on_drop() {
        let file = OptionFile::write(&Password("p\"w".into())).unwrap();
        let path = file.path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(file.dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[client]\npassword=\"p\\\"w\"\n");
        let dir = file.dir.path().to_path_buf();
        drop(file);
        assert!(!path.exists() && !dir.exists());
    }
}
