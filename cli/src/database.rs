//! `restore --to-database`: a dump archive restored into a database server with `pg_restore`,
//! `psql` or `mysql`, the password from an environment variable or an SSM parameter, never from
//! the command line.

use batch_worker::password::{Password, PasswordError};
use batch_worker::restore::RestoreError;
use batch_worker::restore_database::{self, DatabaseRestoreError, DatabaseUrl};

use crate::{commands, output, ExitCode, Failure, RestoreArgs};

/// The flags of a restore into a database server.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// Restore a dump archive into this server: postgresql://USER@HOST[:PORT] or
    /// mysql://USER@HOST[:PORT] (postgres://, mariadb:// too), without a password. A database
    /// that exists already on the server is never overwritten: nothing is restored then.
    #[arg(long, value_name = "URL")]
    pub to_database: Option<DatabaseUrl>,
    /// With --to-database: the environment variable that holds the password.
    #[arg(long, value_name = "VAR", requires = "to_database", conflicts_with = "password_parameter")]
    pub password_env: Option<String>,
    /// With --to-database: the SSM parameter (SecureString) that holds the password.
    #[arg(long, value_name = "NAME", requires = "to_database")]
    pub password_parameter: Option<String>,
    /// With --to-database: a database to restore; repeat for several. Default: every database of
    /// the archive, PostgreSQL's roles first; PostgreSQL's maintenance database (postgres) only
    /// when named, and then into the existing one.
    #[arg(long = "database", value_name = "NAME", requires = "to_database")]
    pub databases: Vec<String>,
}

pub async fn restore(args: RestoreArgs) -> Result<ExitCode, Failure> {
    let target = args.database.to_database.as_ref().expect("called with --to-database");
    let (config, client) = commands::configure(&args.location.bucket).await?;
    let password = match (&args.database.password_env, &args.database.password_parameter) {
        (Some(var), _) => Password::from_env(var),
        (None, Some(name)) => Password::from_parameter(&aws_sdk_ssm::Client::new(&config), name).await,
        (None, None) => {
            return Err(Failure::usage("--to-database needs --password-env VAR or --password-parameter NAME"))
        }
    }
    .map_err(|e| match e {
        PasswordError::EnvUnset { .. } | PasswordError::NotFound { .. } | PasswordError::Empty { .. } => {
            Failure::usage(e)
        }
        e => Failure::no(e),
    })?;
    let restored =
        restore_database::restore_to_database(&client, &args.location, target, &password, &args.database.databases)
            .await
            .map_err(|e| match e {
                DatabaseRestoreError::Restore(RestoreError::Manifest(e)) => Failure::no(e),
                e if e.is_configuration() => Failure::usage(e),
                e => Failure::no(e),
            })?;
    if args.json {
        output::print_json(&restored);
    } else {
        for r in &restored {
            println!("restored {} into {} with {}", r.key, r.database.as_deref().unwrap_or("(roles)"), r.program);
        }
    }
    Ok(ExitCode::Success)
}
