//! The one binary of every Lambda function of the flows. Each function runs it with its own
//! `Handler` property (infra/template.yaml), which the Lambda runtime passes in `_HANDLER`; the
//! binary runs that step ([`steps`]), building only that step's SDK clients. One binary links
//! the AWS SDK once: nineteen did it nineteen times, which was most of the release build's time.
//!
//! Layout: [`steps`] has one module per step (`plan`, `create-volume`, …), each a thin adapter
//! over `archiver_core`; [`common`] what they share (errors as Diagnostics, SDK error mapping,
//! configuration, and the volumes', databases', tables' and archives' helpers).

use std::process::ExitCode;

mod common;
mod steps;

/// Where the Lambda runtime puts the function's `Handler` property.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>
const HANDLER_ENV: &str = "_HANDLER";

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber();
    let handler = std::env::var(HANDLER_ENV).unwrap_or_default();
    match steps::run(&handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(handler, %error, "the function stopped");
            ExitCode::FAILURE
        }
    }
}
