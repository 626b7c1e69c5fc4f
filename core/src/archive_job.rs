//! The Batch job that writes an archive, and the `verify` step that checks what it wrote: shared
//! by the flows whose worker writes our manifest (EBS, RDS dump).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::FlowError;
use crate::manifest::{check_stored_segment, Manifest, StoredObject, MANIFEST_NAME};
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
    /// Stored objects (segments) whose size and full-object CRC64NVME, as S3 reported them,
    /// equal the manifest's: every segment of every object, or `verify` fails.
    #[serde(default)]
    pub checksums_verified: u64,
}

/// Decides `verify`: every stored segment of every object `manifest` lists must be reported by
/// S3 with the manifest's size and full-object CRC64NVME ([`check_stored_segment`]). `stored`
/// maps each segment's key to what HeadObject with checksum mode reported (`None`: it does not
/// exist; a key absent from the map counts as missing). S3 validated that checksum against the
/// bytes when the segment was completed and keeps it with the object, so a match means S3 holds
/// exactly the bytes the worker wrote: a same-size overwrite or a wrong object under the right
/// name fails here, and the recovery point is kept. A manifest without checksums fails too: only
/// `backup-archiver verify --deep` can vouch for it, and the flow never deletes on less.
pub fn verify_segments(
    destination: &S3Location,
    manifest: &Manifest,
    stored: &BTreeMap<String, Option<StoredObject>>,
) -> Result<Verification, FlowError> {
    let mut checksums_verified = 0;
    for object in &manifest.objects {
        for segment in object.stored_segments() {
            check_stored_segment(&segment, stored.get(&segment.key).and_then(Option::as_ref)).map_err(|problem| {
                FlowError::ArchiveIncomplete {
                    location: destination.to_string(),
                    problem: format!("object {}: {problem}", destination.url_of(&object.key)),
                }
            })?;
            checksums_verified += 1;
        }
    }
    Ok(Verification {
        location: destination.to_string(),
        manifest_key: destination.key(MANIFEST_NAME),
        objects: manifest.objects.len() as u64,
        total_size: manifest.total_size(),
        checksums_verified,
    })
}

/// The `ArchiveIncomplete` error for a prefix without a readable manifest.
pub fn missing_manifest(destination: &S3Location, why: &str) -> FlowError {
    FlowError::ArchiveIncomplete {
        location: destination.to_string(),
        problem: format!("{} {why}", destination.url_of(&destination.key(MANIFEST_NAME))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Segment;

    fn destination() -> S3Location {
        "s3://archive/a".parse().unwrap()
    }

    /// The sample manifest with its object in two segments, and what S3 reports for them when
    /// every byte is as the worker wrote it.
    fn two_segments() -> (Manifest, BTreeMap<String, Option<StoredObject>>) {
        let mut manifest = crate::manifest::tests::sample();
        let segments = vec![
            Segment { key: "a/part1.tar.gz".into(), size: 1000, checksum_crc64nvme: Some("AAAAAAAAAAE=".into()) },
            Segment { key: "a/part1.tar.gz.0001".into(), size: 234, checksum_crc64nvme: Some("AAAAAAAAAAI=".into()) },
        ];
        let stored = segments
            .iter()
            .map(|s| {
                (s.key.clone(), Some(StoredObject { size: s.size, checksum_crc64nvme: s.checksum_crc64nvme.clone() }))
            })
            .collect();
        manifest.objects[0].segments = segments;
        (manifest, stored)
    }

    fn problem(result: Result<Verification, FlowError>) -> String {
        match result {
            Err(FlowError::ArchiveIncomplete { location, problem }) => {
                assert_eq!(location, "s3://archive/a");
                problem
            }
            other => panic!("expected ArchiveIncomplete, got {other:?}"),
        }
    }

    #[test]
    fn every_segment_matching_verifies_the_archive() {
        let (manifest, stored) = two_segments();
        let verification = verify_segments(&destination(), &manifest, &stored).unwrap();
        assert_eq!(
            verification,
            Verification {
                location: "s3://archive/a".into(),
                manifest_key: "a/manifest.json".into(),
                objects: 1,
                total_size: 1234,
                checksums_verified: 2,
            }
        );
    }

    #[test]
    fn a_segment_of_another_size_fails() {
        let (manifest, mut stored) = two_segments();
        stored.get_mut("a/part1.tar.gz.0001").unwrap().as_mut().unwrap().size = 233;
        let problem = problem(verify_segments(&destination(), &manifest, &stored));
        assert_eq!(
            problem,
            "object s3://archive/a/part1.tar.gz: a/part1.tar.gz.0001 holds 233 bytes, the manifest says 234"
        );
    }

    #[test]
    fn a_same_size_segment_with_other_bytes_fails_on_its_checksum() {
        let (manifest, mut stored) = two_segments();
        stored.get_mut("a/part1.tar.gz").unwrap().as_mut().unwrap().checksum_crc64nvme = Some("AAAAAAAAAAM=".into());
        let problem = problem(verify_segments(&destination(), &manifest, &stored));
        assert!(
            problem.contains("a/part1.tar.gz: S3's CRC64NVME AAAAAAAAAAM= differs from the manifest's AAAAAAAAAAE="),
            "{problem}"
        );
    }

    #[test]
    fn a_missing_segment_fails_whether_reported_absent_or_not_asked() {
        let (manifest, mut stored) = two_segments();
        stored.insert("a/part1.tar.gz.0001".into(), None);
        let reported = problem(verify_segments(&destination(), &manifest, &stored));
        assert!(reported.ends_with("a/part1.tar.gz.0001 does not exist"), "{reported}");
        stored.remove("a/part1.tar.gz.0001");
        assert_eq!(problem(verify_segments(&destination(), &manifest, &stored)), reported);
    }

    #[test]
    fn an_object_s3_keeps_no_checksum_for_fails() {
        let (manifest, mut stored) = two_segments();
        stored.get_mut("a/part1.tar.gz.0001").unwrap().as_mut().unwrap().checksum_crc64nvme = None;
        let problem = problem(verify_segments(&destination(), &manifest, &stored));
        assert!(problem.ends_with("a/part1.tar.gz.0001: S3 reports no CRC64NVME checksum for it"), "{problem}");
    }

    /// A manifest written before checksums existed: its sizes match, but the flow does not delete
    /// the recovery point on a size alone.
    #[test]
    fn a_manifest_without_checksums_fails() {
        let (mut manifest, stored) = two_segments();
        manifest.objects[0].segments.clear();
        let stored = BTreeMap::from([(
            "a/part1.tar.gz".to_string(),
            Some(StoredObject {
                size: 1234,
                checksum_crc64nvme: stored["a/part1.tar.gz"].clone().unwrap().checksum_crc64nvme,
            }),
        )]);
        let problem = problem(verify_segments(&destination(), &manifest, &stored));
        assert!(problem.contains("the manifest records no checksum"), "{problem}");
    }
}
