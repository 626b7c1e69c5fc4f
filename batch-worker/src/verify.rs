//! Reading an archive back: its manifest, and each object checked against it. The fast check
//! (the default) asks S3 for each segment's size and full-object CRC64NVME, which S3 validated
//! when the segment was completed, and compares both with the manifest
//! ([`check_stored_segment`]); the deep check reads every byte and compares the SHA-256 of the
//! whole object and each segment's size and CRC64NVME. An object whose manifest predates
//! checksums is always read in full.

use archiver_core::manifest::{
    check_stored_segment, ArchivedObject, Manifest, ManifestError, Segment, SegmentProblem, StoredObject, MANIFEST_NAME,
};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};

use crate::upload::FullObjectChecksum;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{location} is not an archive: it has no {MANIFEST_NAME}")]
    NoManifest { location: String },
    #[error("cannot read {url}: {message}")]
    Read { url: String, message: String },
    #[error("{url}: {source}")]
    BadManifest {
        url: String,
        #[source]
        source: ManifestError,
    },
}

/// Reads and parses the manifest under `location`.
pub async fn fetch_manifest(client: &Client, location: &S3Location) -> Result<Manifest, VerifyError> {
    let key = location.key(MANIFEST_NAME);
    let url = location.url_of(&key);
    let output = match client.get_object().bucket(&location.bucket).key(&key).send().await {
        Ok(output) => output,
        Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
            return Err(VerifyError::NoManifest { location: location.to_string() })
        }
        Err(e) => return Err(VerifyError::Read { url, message: DisplayErrorContext(e).to_string() }),
    };
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|e| VerifyError::Read { url: url.clone(), message: e.to_string() })?
        .into_bytes();
    Manifest::from_json(&bytes).map_err(|source| VerifyError::BadManifest { url, source })
}

/// How an object was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Size and full-object CRC64NVME of each segment, as S3 reports them.
    Checksum,
    /// Every byte read: SHA-256 of the object, size and CRC64NVME of each segment.
    Sha256,
}

/// The outcome for one segment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentCheck {
    pub key: String,
    pub expected_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_checksum_crc64nvme: Option<String>,
    /// `None` when the segment could not be read.
    pub size: Option<u64>,
    pub checksum_crc64nvme: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The outcome for one object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectCheck {
    pub key: String,
    pub expected_size: u64,
    pub expected_sha256: String,
    /// `None` when the object could not be read (or, with the checksum method, a segment is missing).
    pub size: Option<u64>,
    /// Only with the `sha256` method.
    pub sha256: Option<String>,
    pub method: Method,
    pub segments: Vec<SegmentCheck>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The outcome for a whole archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub location: String,
    pub ok: bool,
    pub objects: Vec<ObjectCheck>,
}

/// Checks every object of the archive under `location` against the manifest: by S3's checksums,
/// or with `deep` by reading every byte.
pub async fn verify_archive(client: &Client, location: &S3Location, deep: bool) -> Result<VerifyReport, VerifyError> {
    let manifest = fetch_manifest(client, location).await?;
    let mut objects = Vec::new();
    for object in &manifest.objects {
        let checksummed = object.stored_segments().iter().all(|s| s.checksum_crc64nvme.is_some());
        let check = if deep || !checksummed {
            read_object(client, &location.bucket, object).await
        } else {
            head_object(client, &location.bucket, object).await
        };
        tracing::info!(
            key = %check.key,
            ok = check.ok,
            method = ?check.method,
            problem = check.problem,
            "checked object"
        );
        objects.push(check);
    }
    Ok(VerifyReport { location: location.to_string(), ok: objects.iter().all(|o| o.ok), objects })
}

/// What S3 reports about `key`; `Ok(None)` when it does not exist.
pub async fn stored_object(client: &Client, bucket: &str, key: &str) -> Result<Option<StoredObject>, String> {
    match client.head_object().bucket(bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await {
        Ok(head) => Ok(Some(StoredObject {
            size: head.content_length.unwrap_or(0).max(0) as u64,
            checksum_crc64nvme: head.checksum_crc64_nvme,
        })),
        Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => Ok(None),
        Err(e) => Err(DisplayErrorContext(e).to_string()),
    }
}

async fn head_object(client: &Client, bucket: &str, object: &ArchivedObject) -> ObjectCheck {
    let mut segments = Vec::new();
    for expected in object.stored_segments() {
        let (stored, problem) = match stored_object(client, bucket, &expected.key).await {
            Ok(stored) => {
                let problem = check_stored_segment(&expected, stored.as_ref()).err().map(|p| p.to_string());
                (stored, problem)
            }
            Err(message) => (None, Some(format!("cannot read {}: {message}", expected.key))),
        };
        segments.push(segment_check(
            &expected,
            stored.as_ref().map(|s| s.size),
            stored.and_then(|s| s.checksum_crc64nvme),
            problem,
        ));
    }
    object_check(object, Method::Checksum, None, segments)
}

async fn read_object(client: &Client, bucket: &str, object: &ArchivedObject) -> ObjectCheck {
    let mut whole = Sha256::new();
    let mut segments = Vec::new();
    for expected in object.stored_segments() {
        let check = match digest_segment(client, bucket, &expected.key, &mut whole).await {
            Ok((size, checksum)) => {
                let problem = check_stored_segment(
                    &expected,
                    Some(&StoredObject { size, checksum_crc64nvme: Some(checksum.clone()) }),
                )
                .err()
                // A manifest without checksums: the whole object's SHA-256 decides.
                .filter(|p| !matches!(p, SegmentProblem::NoChecksumRecorded { .. }))
                .map(|p| p.to_string());
                segment_check(&expected, Some(size), Some(checksum), problem)
            }
            Err(message) => {
                segment_check(&expected, None, None, Some(format!("cannot read {}: {message}", expected.key)))
            }
        };
        let failed = check.size.is_none();
        segments.push(check);
        if failed {
            break;
        }
    }
    let read_all = segments.len() == object.stored_segments().len() && segments.iter().all(|s| s.size.is_some());
    let sha256 = read_all.then(|| format!("{:x}", whole.finalize()));
    object_check(object, Method::Sha256, sha256, segments)
}

fn segment_check(
    expected: &Segment,
    size: Option<u64>,
    checksum: Option<String>,
    problem: Option<String>,
) -> SegmentCheck {
    SegmentCheck {
        key: expected.key.clone(),
        expected_size: expected.size,
        expected_checksum_crc64nvme: expected.checksum_crc64nvme.clone(),
        size,
        checksum_crc64nvme: checksum,
        ok: problem.is_none(),
        problem,
    }
}

fn object_check(
    object: &ArchivedObject,
    method: Method,
    sha256: Option<String>,
    segments: Vec<SegmentCheck>,
) -> ObjectCheck {
    let size = segments
        .iter()
        .map(|s| s.size)
        .sum::<Option<u64>>()
        .filter(|_| segments.len() == object.stored_segments().len());
    let problem = match segments.iter().find_map(|s| s.problem.clone()) {
        Some(problem) => Some(problem),
        None if size != Some(object.size) => {
            Some(format!("size {} differs from the manifest's {}", size.unwrap_or_default(), object.size))
        }
        None if method == Method::Sha256 && sha256.as_deref() != Some(object.sha256.as_str()) => {
            Some("SHA-256 differs from the manifest's".to_string())
        }
        None => None,
    };
    ObjectCheck {
        key: object.key.clone(),
        expected_size: object.size,
        expected_sha256: object.sha256.clone(),
        size,
        sha256,
        method,
        segments,
        ok: problem.is_none(),
        problem,
    }
}

/// Reads `key` whole: its size and CRC64NVME, its bytes added to `whole`.
async fn digest_segment(client: &Client, bucket: &str, key: &str, whole: &mut Sha256) -> Result<(u64, String), String> {
    let mut body =
        client.get_object().bucket(bucket).key(key).send().await.map_err(|e| DisplayErrorContext(e).to_string())?.body;
    let mut checksum = FullObjectChecksum::new();
    let mut size = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
        size += chunk.len() as u64;
        whole.update(&chunk);
        checksum.update(&chunk);
    }
    Ok((size, checksum.finish()))
}
