//! The flows, one module per state machine: each holds the input and output of its states and
//! the decisions of its Lambdas. What they share (the document, the state errors, the outcome)
//! is in [`crate::document`]; the Batch job and its verification, used by the flows whose worker
//! writes our manifest, in [`crate::archive_job`].

use serde::{Deserialize, Serialize};

pub mod dynamodb;
pub mod ebs;
pub mod org_copy;
pub mod rds_dump;
pub mod rds_export;
pub mod restore_drill;

/// Which state machine carries the request on; the ASL of the entry flow branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// `state-machines/ebs-archive.asl.json`.
    EbsArchive,
    /// `state-machines/rds-export.asl.json`.
    RdsExport,
    /// `state-machines/rds-dump.asl.json`.
    RdsDump,
    /// DynamoDB export to S3 (point-in-time or via a temporary restored table).
    DynamodbExport,
}

impl Flow {
    /// The stem of the ASL file that carries this flow (`state-machines/<stem>.asl.json`), which
    /// is also the end of its deployed state machine's name: a flow that planned a request for
    /// another flow hands the trigger over to the state machine of that name.
    pub fn state_machine(self) -> &'static str {
        match self {
            Flow::EbsArchive => "ebs-archive",
            Flow::RdsExport => "rds-export",
            Flow::RdsDump => "rds-dump",
            Flow::DynamodbExport => "dynamodb-export",
        }
    }

    /// Whether the flow's archive ends with our manifest, whose presence means "already
    /// archived" to the `plan` step. The export flows write AWS's own layout and are made
    /// idempotent by their export's identifier or client token instead.
    pub fn writes_manifest(self) -> bool {
        matches!(self, Flow::EbsArchive | Flow::RdsDump)
    }
}
