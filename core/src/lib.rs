//! The backup-archiver domain, free of AWS calls, clocks and I/O.
//!
//! Layout:
//! - [`s3_location`]: parsing and printing `s3://bucket/prefix` destinations.
//! - [`part_size`]: the fixed part size and the segment size that keep every upload within S3's limits.
//! - [`manifest`]: the JSON document that turns a prefix of objects into an archive.
//! - [`dump`]: the RDS native-dump flow's tools, command lines, system databases and object names.
//! - [`arn`]: Amazon Resource Names, parsed once where an event enters.
//! - [`event`]: every trigger (EventBridge, SNS, manual input) parsed into one typed enum.
//! - [`request`]: the `plan` step: an event becomes an [`request::ArchiveRequest`] or a skip.
//! - [`naming`]: archive key prefixes, idempotency keys, RDS export task identifiers.
//! - [`errors`]: the stable Lambda error names that the ASL's `ErrorEquals` match.
//! - [`aws_error`]: which AWS error codes are transient, "not found", or permanent.
//! - [`flow`]: the EBS flow's states: their inputs and outputs, and the volume, job and
//!   verification decisions of its Lambdas.
//! - [`database`]: the RDS dump flow's states: the temporary database's names, class, tags,
//!   master password, readiness and deletion, and the dump job.
//! - [`dynamodb`]: the DynamoDB export flow's states: point-in-time or temporary-table exports,
//!   the temporary table's name and cleanup, the export's status.
//! - [`export`]: the RDS export flow's states: starting an export, reading its status, checking
//!   its files.
//! - [`message`]: the notification an execution ends with, for Slack and SNS.
//! - [`retention`]: the organisation flow's retention shortening: the lifecycle update that
//!   schedules a copied recovery point's deletion sooner, never later.
//!
//! Every type that crosses a process or state-machine boundary lives here, so the worker, the
//! Lambdas, the CLI and the ASL files agree on one set of field names.

pub mod arn;
pub mod aws_error;
pub mod database;
pub mod dump;
pub mod dynamodb;
pub mod errors;
pub mod event;
pub mod export;
pub mod flow;
pub mod manifest;
pub mod message;
pub mod naming;
pub mod part_size;
pub mod request;
pub mod retention;
pub mod s3_location;
