//! Cold storage: which of an archive's segment objects are in a Glacier class and not readable
//! now, and thawing (RestoreObject) only those that a `get` needs. The manifest and the index
//! are always in a class readable at once, so finding a file never waits.

use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, StorageClass, Tier};
use aws_sdk_s3::Client;
use futures::StreamExt;

/// HeadObject and RestoreObject requests in flight.
const REQUESTS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ThawError {
    #[error("cannot read the storage class of {url}: {message}")]
    Head { url: String, message: String },
    #[error("cannot start the restore of {url}: {message}")]
    Restore { url: String, message: String },
}

/// Whether a stored object can be read now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Readability {
    Readable,
    /// In an archive class and not restored: needs RestoreObject.
    Frozen {
        storage_class: String,
    },
    /// A restore is under way.
    Thawing {
        storage_class: String,
    },
}

/// One segment object and its state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectState {
    pub key: String,
    #[serde(flatten)]
    pub readability: Readability,
}

/// How a thaw is asked for.
#[derive(Debug, Clone)]
pub struct ThawRequest {
    pub tier: Tier,
    /// How long the restored copy stays readable.
    pub days: i32,
}

/// The state of each of `keys`.
pub async fn states(client: &Client, location: &S3Location, keys: &[String]) -> Result<Vec<ObjectState>, ThawError> {
    futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            let head = client.head_object().bucket(&location.bucket).key(&key).send().await.map_err(|e| {
                ThawError::Head { url: location.url_of(&key), message: DisplayErrorContext(e).to_string() }
            })?;
            let class = head.storage_class().cloned().unwrap_or(StorageClass::Standard);
            let archived = match &class {
                StorageClass::Glacier | StorageClass::DeepArchive => true,
                // Intelligent-Tiering's archive tiers also need a restore; its other tiers do not.
                StorageClass::IntelligentTiering => head.archive_status().is_some(),
                _ => false,
            };
            let storage_class = class.as_str().to_string();
            let readability = match head.restore() {
                _ if !archived => Readability::Readable,
                Some(restore) if restore.contains("ongoing-request=\"true\"") => Readability::Thawing { storage_class },
                Some(restore) if restore.contains("ongoing-request=\"false\"") => Readability::Readable,
                _ => Readability::Frozen { storage_class },
            };
            Ok(ObjectState { key, readability })
        })
        .buffered(REQUESTS_IN_FLIGHT)
        .collect::<Vec<Result<_, _>>>()
        .await
        .into_iter()
        .collect()
}

/// Starts a restore of every frozen object of `states` (and of none other); returns the states
/// after it, the started ones thawing.
pub async fn thaw(
    client: &Client,
    location: &S3Location,
    states: Vec<ObjectState>,
    request: ThawRequest,
) -> Result<Vec<ObjectState>, ThawError> {
    let request = &request;
    futures::stream::iter(states)
        .map(|state| async move {
            let Readability::Frozen { storage_class } = state.readability else { return Ok(state) };
            let mut restore = RestoreRequest::builder();
            if storage_class != StorageClass::IntelligentTiering.as_str() {
                // Intelligent-Tiering restores into its own tiers and takes no expiry.
                restore = restore.days(request.days);
            }
            let restore = restore
                .glacier_job_parameters(
                    GlacierJobParameters::builder().tier(request.tier.clone()).build().expect("tier is set"),
                )
                .build();
            let sent = client.restore_object().bucket(&location.bucket).key(&state.key).restore_request(restore).send();
            match sent.await {
                Ok(_) => {}
                Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("RestoreAlreadyInProgress") => {}
                Err(e) => {
                    return Err(ThawError::Restore {
                        url: location.url_of(&state.key),
                        message: DisplayErrorContext(e).to_string(),
                    })
                }
            }
            tracing::info!(key = %state.key, tier = ?request.tier, days = request.days, "restore started");
            Ok(ObjectState { key: state.key, readability: Readability::Thawing { storage_class } })
        })
        .buffered(REQUESTS_IN_FLIGHT)
        .collect::<Vec<Result<_, _>>>()
        .await
        .into_iter()
        .collect()
}

/// What `get` and `mount` say when some objects cannot be read yet.
pub fn not_readable_message(location: &S3Location, objects: &[ObjectState]) -> String {
    let list = |frozen: bool| -> Vec<String> {
        objects
            .iter()
            .filter_map(|o| match (&o.readability, frozen) {
                (Readability::Frozen { storage_class }, true) | (Readability::Thawing { storage_class }, false) => {
                    Some(format!("{} ({storage_class})", location.url_of(&o.key)))
                }
                _ => None,
            })
            .collect()
    };
    let (frozen, thawing) = (list(true), list(false));
    let mut parts = Vec::new();
    if !frozen.is_empty() {
        parts.push(format!(
            "{} object(s) must be thawed before they can be read: {}; `get --thaw [--tier bulk|standard|expedited] \
             [--days N]` restores only these",
            frozen.len(),
            frozen.join(", ")
        ));
    }
    if !thawing.is_empty() {
        parts.push(format!(
            "{} object(s) are being thawed: {}; run the same command again later",
            thawing.len(),
            thawing.join(", ")
        ));
    }
    parts.join("; ")
}
