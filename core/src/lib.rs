//! The backup-archiver domain, free of AWS calls, clocks and I/O.
//!
//! Layout, from the leaves up (a module uses only those above it; `tests/module_graph.rs`
//! fails on an import cycle):
//! - [`arn`]: Amazon Resource Names, parsed once where an event enters.
//! - [`s3_location`]: parsing and printing `s3://bucket/prefix` destinations.
//! - [`errors`]: the stable Lambda error names that the ASL's `ErrorEquals` match.
//! - [`aws_error`]: which AWS error codes are transient, "not found", or permanent.
//! - [`part_size`]: the fixed part size and the segment size that keep every upload within S3's limits.
//! - [`manifest`]: the JSON document that turns a prefix of objects into an archive.
//! - [`index`]: the index of a tar object (entries -> stream offsets, members -> segment offsets)
//!   that lets a reader fetch one file by byte ranges.
//! - [`dump_tools`]: the database dump tools the worker runs: command lines, system databases,
//!   object names.
//! - [`resource`]: the kinds of resource archived and the methods a database snapshot takes.
//! - [`event`]: every trigger (EventBridge, SNS, manual input) parsed into one typed enum.
//! - [`naming`]: archive key prefixes, idempotency keys, RDS export task identifiers, the tags
//!   and client tokens of temporary resources.
//! - [`claim`]: the strongly consistent claim (an S3 conditional write) on an idempotency key
//!   that makes two executions of one snapshot archive it once.
//! - [`request`]: the `plan` step: an event becomes an [`request::ArchiveRequest`] or a skip.
//! - [`document`]: what every flow's execution shares: the document, the errors its states fail
//!   with, the handoff, the recovery point's deletion, the outcome and the notification report.
//! - [`archive_job`]: the Batch job that writes an archive and the `verify` step that checks it
//!   (EBS and RDS dump flows).
//! - [`flows`]: one module per state machine, each with its states' inputs and outputs and its
//!   Lambdas' decisions: [`flows::ebs`] (temporary volume, archive job), [`flows::rds_export`]
//!   (RDS snapshot export), [`flows::rds_dump`] (temporary database, dump job),
//!   [`flows::dynamodb`] (point-in-time or temporary-table exports), [`flows::org_copy`] (a
//!   workload account's copies into the central backup account, then the retention shortening),
//!   [`flows::restore_drill`] (the scheduled read-back of a sample of the archives).
//! - [`message`]: the notification an execution ends with, for Slack and SNS, read from any
//!   flow's document.
//! - [`alert`]: every AWS Backup job event (vault notification, EventBridge job and recovery
//!   point state change) read into one alert, filtered, routed, and rendered for Slack, SNS and
//!   Amazon Q Developer in chat applications; and the `plan` step's skip of such
//!   an event that starts no archive.
//! - [`retention`]: the organisation flow's retention shortening: the lifecycle update that
//!   schedules a copied recovery point's deletion sooner, never later.
//!
//! Every type that crosses a process or state-machine boundary lives here, so the worker, the
//! Lambdas, the CLI and the ASL files agree on one set of field names.

pub mod alert;
pub mod archive_job;
pub mod arn;
pub mod aws_error;
pub mod claim;
pub mod document;
pub mod dump_tools;
pub mod errors;
pub mod event;
pub mod flows;
pub mod index;
pub mod manifest;
pub mod message;
pub mod naming;
pub mod part_size;
pub mod request;
pub mod resource;
pub mod retention;
pub mod s3_location;
