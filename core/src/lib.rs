//! The backup-archiver domain, free of AWS calls, clocks and I/O.
//!
//! Layout:
//! - [`s3_location`]: parsing and printing `s3://bucket/prefix` destinations.
//! - [`part_size`]: choosing a multipart part size that fits any source under S3's limits.
//! - [`manifest`]: the JSON document that turns a prefix of objects into an archive.
//!
//! Every type that crosses a process or state-machine boundary lives here, so the worker, the
//! Lambdas, the CLI and the ASL files agree on one set of field names.

pub mod manifest;
pub mod part_size;
pub mod s3_location;
