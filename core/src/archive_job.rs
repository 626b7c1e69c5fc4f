//! The Batch job that writes an archive, and the `verify` step that checks what it wrote: shared
//! by the flows whose worker writes our manifest (EBS, RDS dump).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::FlowError;
use crate::manifest::{Manifest, MANIFEST_NAME};
use crate::s3_location::S3Location;

/// The Batch job that archives the volume. The ASL passes these fields to `batch:submitJob.sync`
/// as they are: the job definition's command refers to the parameters as `Ref::volume_id`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveJob {
    /// The queue of the volume's AZ.
    pub queue: String,
    /// The snapshot's idempotency key: the same for every attempt, readable in the Batch console.
    pub name: String,
    /// `volume_id`, `snapshot_id`, `destination` (an `s3://` URL), `mode`, `execution_id`.
    pub parameters: BTreeMap<String, String>,
}

/// What the ASL keeps of `batch:submitJob.sync`'s job description, at `$.job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Verify.

/// Input of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyInput {
    pub destination: S3Location,
}

/// Output of `verify`, at `$.verification`: the archive is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// `s3://bucket/prefix`.
    pub location: String,
    pub manifest_key: String,
    pub objects: u64,
    /// Bytes stored, the manifest's objects summed.
    pub total_size: u64,
}

/// Checks that every object `manifest` lists exists in `listing` (key -> size, as ListObjectsV2
/// reported the prefix) with the manifest's size. A cheap check (no download): the worker
/// computed the checksums while uploading, and `backup-archiver verify` recomputes them.
pub fn verify_listing(
    destination: &S3Location,
    manifest: &Manifest,
    listing: &BTreeMap<String, u64>,
) -> Result<Verification, FlowError> {
    let incomplete = |problem: String| FlowError::ArchiveIncomplete { location: destination.to_string(), problem };
    for object in &manifest.objects {
        match listing.get(&object.key) {
            None => return Err(incomplete(format!("{} is missing", destination.url_of(&object.key)))),
            Some(&size) if size != object.size => {
                return Err(incomplete(format!(
                    "{} has {size} bytes, the manifest says {}",
                    destination.url_of(&object.key),
                    object.size
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Verification {
        location: destination.to_string(),
        manifest_key: destination.key(MANIFEST_NAME),
        objects: manifest.objects.len() as u64,
        total_size: manifest.total_size(),
    })
}

/// The `ArchiveIncomplete` error for a prefix without a readable manifest.
pub fn missing_manifest(destination: &S3Location, why: &str) -> FlowError {
    FlowError::ArchiveIncomplete {
        location: destination.to_string(),
        problem: format!("{} {why}", destination.url_of(&destination.key(MANIFEST_NAME))),
    }
}
