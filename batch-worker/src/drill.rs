//! A restore drill of one archive (`batch-worker drill`, the job of
//! `state-machines/restore-drill.asl.json`): every byte of every object read and checked against the
//! manifest ([`verify_archive`] with `deep`), then, when asked and the archive matched, each raw
//! object restored into a new EBS snapshot ([`restore_to_snapshot`], which checks the decompressed
//! stream against the manifest too) and that snapshot deleted. The verdict is a core
//! [`DrillResult`], written to S3 for the `drill-report` step.

use std::time::Instant;

use archiver_core::flows::restore_drill::{DrillObject, DrillRestore, DrillResult};
use archiver_core::manifest::ArchiveMode;
use archiver_core::naming::TAG_MANAGED_BY;
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio_util::sync::CancellationToken;

use crate::restore_snapshot::{restore_to_snapshot, SnapshotRestoreOptions};
use crate::verify::{fetch_manifest, verify_archive, VerifyReport};

/// The tag naming the drill on the snapshots it makes, beside the stack's managed-by tag (which
/// the job role requires to create and delete them).
pub const TAG_DRILL: &str = "backup-archiver:drill";

#[derive(Debug, thiserror::Error)]
#[error("cannot write the drill's result to {url}: {message}")]
pub struct DrillError {
    pub url: String,
    pub message: String,
}

/// How a drill names the snapshots it makes.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The drill's id, on the snapshots' tags and descriptions.
    pub drill_id: String,
    /// The stack's name: the value of the snapshots' managed-by tag.
    pub deployment: String,
}

/// The EBS clients a restore to a snapshot needs.
pub struct SnapshotClients {
    pub ebs: aws_sdk_ebs::Client,
    pub ec2: aws_sdk_ec2::Client,
}

/// Drills the archive at `location`, and with `snapshots` restores each raw object into a snapshot
/// and deletes it; the verdict is in the result (`ok`), never an error.
pub async fn drill_archive(
    s3: &aws_sdk_s3::Client,
    snapshots: Option<&SnapshotClients>,
    location: &S3Location,
    options: &DrillOptions,
    cancel: &CancellationToken,
) -> DrillResult {
    let clock = Instant::now();
    let (problem, objects) = match verify_archive(s3, location, true).await {
        Ok(report) => (None, drill_objects(&report)),
        Err(e) => (Some(e.to_string()), Vec::new()),
    };
    let matched = problem.is_none() && objects.iter().all(|o| o.ok);
    let restores = match snapshots {
        Some(clients) if matched => restore_raw_objects(s3, clients, location, options, cancel).await,
        _ => Vec::new(),
    };
    let result = DrillResult::judge(location.to_string(), problem, objects, restores, clock.elapsed().as_secs_f64());
    tracing::info!(location = %location, ok = result.ok, objects = result.objects.len(), "drilled");
    result
}

fn drill_objects(report: &VerifyReport) -> Vec<DrillObject> {
    report
        .objects
        .iter()
        .map(|o| DrillObject { key: o.key.clone(), ok: o.ok, bytes: o.size.unwrap_or(0), problem: o.problem.clone() })
        .collect()
}

/// Each raw object into a new snapshot, which is deleted at once: the proof that it restores.
async fn restore_raw_objects(
    s3: &aws_sdk_s3::Client,
    clients: &SnapshotClients,
    location: &S3Location,
    options: &DrillOptions,
    cancel: &CancellationToken,
) -> Vec<DrillRestore> {
    let manifest = match fetch_manifest(s3, location).await {
        Ok(manifest) => manifest,
        Err(e) => return vec![DrillRestore::failed(location.to_string(), e.to_string())],
    };
    let mut restores = Vec::new();
    for object in manifest.objects.iter().filter(|o| o.mode == ArchiveMode::Raw) {
        let restore_options = SnapshotRestoreOptions {
            partition: object.partition.as_ref().map(|p| p.number),
            description: Some(format!(
                "backup-archiver restore drill {} of {} (deleted after the drill)",
                options.drill_id,
                location.url_of(&object.key)
            )),
            tags: vec![
                (TAG_MANAGED_BY.to_string(), options.deployment.clone()),
                (TAG_DRILL.to_string(), options.drill_id.clone()),
            ],
            ..SnapshotRestoreOptions::default()
        };
        let restore =
            match restore_to_snapshot(s3, &clients.ebs, &clients.ec2, location, &restore_options, None, cancel).await {
                Ok(restored) => {
                    let deleted = clients.ec2.delete_snapshot().snapshot_id(&restored.snapshot_id).send().await;
                    let problem = deleted.err().map(|e| {
                        format!(
                            "cannot delete snapshot {}: {}: delete it by hand",
                            restored.snapshot_id,
                            DisplayErrorContext(e)
                        )
                    });
                    tracing::info!(
                        snapshot_id = restored.snapshot_id,
                        deleted = problem.is_none(),
                        "restored and deleted"
                    );
                    DrillRestore {
                        key: object.key.clone(),
                        snapshot_id: Some(restored.snapshot_id),
                        blocks_written: restored.blocks_written,
                        deleted: problem.is_none(),
                        ok: problem.is_none(),
                        problem,
                    }
                }
                Err(e) => DrillRestore::failed(object.key.clone(), e.to_string()),
            };
        restores.push(restore);
    }
    restores
}

/// Writes `result` to `at` (`s3://bucket/key`), where `drill-report` reads it.
pub async fn write_result(s3: &aws_sdk_s3::Client, at: &S3Location, result: &DrillResult) -> Result<(), DrillError> {
    let body = serde_json::to_vec_pretty(result).expect("drill results serialize");
    s3.put_object()
        .bucket(&at.bucket)
        .key(&at.prefix)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| DrillError { url: at.to_string(), message: DisplayErrorContext(e).to_string() })
}
