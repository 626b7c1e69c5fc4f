//! The archive bucket as the steps see it: the listing of a prefix, for `check-export` and
//! `pick-drill`, and small objects read whole, for the claim of `create-volume` and `delete-volume`.

use std::collections::BTreeMap;

use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::types::Object;
use aws_sdk_s3::Client;

use crate::common::{AwsFailure, StepError};

/// Every object under `location`'s prefix (as a folder: `prefix/`), as the listing describes
/// it. A failure is `StorageAccessFailed`, or `Retryable` when transient.
pub async fn objects(s3: &Client, location: &S3Location) -> Result<Vec<Object>, StepError> {
    let prefix = if location.prefix.is_empty() { String::new() } else { format!("{}/", location.prefix) };
    let mut pages = s3.list_objects_v2().bucket(&location.bucket).prefix(&prefix).into_paginator().send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            AwsFailure::of(&format!("ListObjectsV2 {location}/"), &e).into_step_error(errors::STORAGE_ACCESS_FAILED)
        })?;
        objects.extend(page.contents.unwrap_or_default());
    }
    Ok(objects)
}

/// Every key under `location`'s prefix with its size ([`objects`]).
pub async fn list(s3: &Client, location: &S3Location) -> Result<BTreeMap<String, u64>, StepError> {
    Ok(objects(s3, location)
        .await?
        .into_iter()
        .filter_map(|object| {
            let size = object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
            Some((object.key?, size))
        })
        .collect())
}

/// The body of `bucket/key`, or `None` when it does not exist. A failure is
/// `StorageAccessFailed`, or `Retryable` when transient.
pub async fn read_optional(s3: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
    let operation = format!("GetObject s3://{bucket}/{key}");
    let output = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => output,
        Err(e) => {
            let failure = AwsFailure::of(&operation, &e);
            return match failure.class {
                AwsErrorClass::NotFound => Ok(None),
                _ => Err(failure.into_step_error(errors::STORAGE_ACCESS_FAILED)),
            };
        }
    };
    let body =
        output.body.collect().await.map_err(|e| StepError::new(errors::RETRYABLE, format!("{operation}: {e}")))?;
    Ok(Some(body.into_bytes().to_vec()))
}
