//! Reading an archive back: its manifest, and each object streamed and checked against the
//! manifest's size and SHA-256.

use archiver_core::manifest::{Manifest, ManifestError, MANIFEST_NAME};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};

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

/// The outcome for one object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectCheck {
    pub key: String,
    pub expected_size: u64,
    pub expected_sha256: String,
    /// `None` when the object could not be read.
    pub size: Option<u64>,
    pub sha256: Option<String>,
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

/// Streams every object of the archive under `location` and compares it with the manifest.
pub async fn verify_archive(client: &Client, location: &S3Location) -> Result<VerifyReport, VerifyError> {
    let manifest = fetch_manifest(client, location).await?;
    let mut objects = Vec::new();
    for object in &manifest.objects {
        let (size, sha256, problem) = match digest_object(client, &location.bucket, &object.key).await {
            Ok((size, sha256)) => {
                let problem = if size != object.size {
                    Some(format!("size {size} differs from the manifest's {}", object.size))
                } else if sha256 != object.sha256 {
                    Some("SHA-256 differs from the manifest's".to_string())
                } else {
                    None
                };
                (Some(size), Some(sha256), problem)
            }
            Err(message) => (None, None, Some(message)),
        };
        tracing::info!(key = %object.key, ok = problem.is_none(), problem, "checked object");
        objects.push(ObjectCheck {
            key: object.key.clone(),
            expected_size: object.size,
            expected_sha256: object.sha256.clone(),
            size,
            sha256,
            ok: problem.is_none(),
            problem,
        });
    }
    Ok(VerifyReport { location: location.to_string(), ok: objects.iter().all(|o| o.ok), objects })
}

async fn digest_object(client: &Client, bucket: &str, key: &str) -> Result<(u64, String), String> {
    let mut body = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?
        .body;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}
