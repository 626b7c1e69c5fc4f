//! The catalogue: every archive under an S3 prefix, read from the manifests alone (never the
//! data objects, which may be in a Glacier class), so a user finds the archive before the file.

use std::collections::HashMap;

use archiver_core::manifest::{archive_prefix_of, ArchiveMode, Manifest};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::verify::fetch_manifest;

/// Manifests read at once: each is one small GET.
const MANIFESTS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("cannot list {location}: {message}")]
pub struct CatalogueError {
    pub location: String,
    pub message: String,
}

/// One archive, as `archives` prints it. Fields are only ever added.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogueEntry {
    /// `s3://bucket/prefix` of the archive: what `ls`, `find`, `get` and `restore` take.
    pub location: String,
    /// What was archived: the volume id, the database host, or the device path.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    pub started_at: DateTime<Utc>,
    /// The modes of its objects (`files`, `raw`, `dump`), each once.
    pub modes: Vec<ArchiveMode>,
    /// Bytes stored, all objects together.
    pub size: u64,
    /// Bytes before compression.
    pub bytes_in: u64,
    pub objects: usize,
    /// Whether every files-mode object has an index (`ls`, `find`, `get` work).
    pub indexed: bool,
    /// The storage classes of the data objects, as S3 lists them (`STANDARD`, `GLACIER`, ...).
    pub storage_classes: Vec<String>,
}

/// What `archives` keeps.
#[derive(Debug, Clone, Default)]
pub struct CatalogueFilter {
    /// A volume, snapshot or database id, a device, or any part of the archive's prefix.
    pub source: Option<String>,
    /// Archives started at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// The archives under `location`, newest first.
pub async fn list_archives(
    client: &Client,
    location: &S3Location,
    filter: &CatalogueFilter,
) -> Result<Vec<CatalogueEntry>, CatalogueError> {
    let list_prefix = if location.prefix.is_empty() { String::new() } else { format!("{}/", location.prefix) };
    let mut classes: HashMap<String, String> = HashMap::new();
    let mut prefixes = Vec::new();
    let mut pages = client.list_objects_v2().bucket(&location.bucket).prefix(&list_prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CatalogueError {
            location: location.to_string(),
            message: DisplayErrorContext(e).to_string(),
        })?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let class = object.storage_class().map(|c| c.as_str().to_string()).unwrap_or_else(|| "STANDARD".into());
            classes.insert(key.to_string(), class);
            if let Some(archive_prefix) = archive_prefix_of(key) {
                prefixes.push(archive_prefix.to_string());
            }
        }
    }
    let manifests: Vec<(S3Location, Manifest)> = futures::stream::iter(prefixes)
        .map(|prefix| async move {
            let archive = S3Location { bucket: location.bucket.clone(), prefix };
            match fetch_manifest(client, &archive).await {
                Ok(manifest) => Some((archive, manifest)),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable manifest");
                    None
                }
            }
        })
        .buffer_unordered(MANIFESTS_IN_FLIGHT)
        .filter_map(|m| async { m })
        .collect()
        .await;
    let mut entries: Vec<CatalogueEntry> =
        manifests.iter().map(|(archive, m)| describe(archive, m, &classes)).filter(|e| keep(e, filter)).collect();
    entries.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.location.cmp(&b.location)));
    Ok(entries)
}

fn describe(archive: &S3Location, m: &Manifest, classes: &HashMap<String, String>) -> CatalogueEntry {
    let source = m
        .source
        .volume_id
        .clone()
        .or_else(|| m.source.database.as_ref().map(|d| d.host.clone()))
        .unwrap_or_else(|| m.source.device.clone());
    let mut modes = Vec::new();
    let mut storage_classes = Vec::new();
    for o in &m.objects {
        if !modes.contains(&o.mode) {
            modes.push(o.mode);
        }
        for s in o.stored_segments() {
            let class = classes.get(&s.key).cloned().unwrap_or_else(|| "MISSING".into());
            if !storage_classes.contains(&class) {
                storage_classes.push(class);
            }
        }
    }
    CatalogueEntry {
        location: archive.to_string(),
        source,
        snapshot_id: m.source.snapshot_id.clone(),
        started_at: m.started_at,
        modes,
        size: m.total_size(),
        bytes_in: m.objects.iter().map(|o| o.bytes_in).sum(),
        objects: m.objects.len(),
        indexed: m.objects.iter().filter(|o| o.mode == ArchiveMode::Files).all(|o| o.index.is_some()),
        storage_classes,
    }
}

fn keep(entry: &CatalogueEntry, filter: &CatalogueFilter) -> bool {
    let source_ok = filter
        .source
        .as_deref()
        .is_none_or(|id| entry.source == id || entry.snapshot_id.as_deref() == Some(id) || entry.location.contains(id));
    source_ok && filter.since.is_none_or(|since| entry.started_at >= since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(location: &str, source: &str, started_at: &str) -> CatalogueEntry {
        CatalogueEntry {
            location: location.into(),
            source: source.into(),
            snapshot_id: Some("snap-0abc".into()),
            started_at: started_at.parse().unwrap(),
            modes: vec![ArchiveMode::Files],
            size: 1,
            bytes_in: 2,
            objects: 1,
            indexed: true,
            storage_classes: vec!["STANDARD".into()],
        }
    }

    #[test]
    fn keeps_archives_of_the_source_since_the_date() {
        let e = entry("s3://b/archives/ebs/vol-1/2024/01/02/snap-0abc", "vol-1", "2024-01-02T00:00:00Z");
        let filter = |source: Option<&str>, since: Option<&str>| CatalogueFilter {
            source: source.map(Into::into),
            since: since.map(|s| s.parse().unwrap()),
        };
        assert!(keep(&e, &filter(None, None)));
        assert!(keep(&e, &filter(Some("vol-1"), None)));
        assert!(keep(&e, &filter(Some("snap-0abc"), None)));
        assert!(keep(&e, &filter(Some("ebs/vol-1"), Some("2024-01-02T00:00:00Z"))));
        assert!(!keep(&e, &filter(Some("vol-2"), None)));
        assert!(!keep(&e, &filter(None, Some("2024-01-03T00:00:00Z"))));
    }
}
