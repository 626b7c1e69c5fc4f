//! The organisation flow of a workload account: each recovery point AWS Backup completes in a
//! local vault is copied into the central backup account's vault of the same name, in the backup
//! region (the alternate region when the point is already in the backup region), then, when
//! configured, into the central account's vault in the point's own region; after the last copy
//! has COMPLETED, the original's retention is shortened ([`crate::retention`]).
//!
//! The chain is event-driven, one decision per AWS Backup event:
//! ```text
//! Backup Job State Change COMPLETED, local vault        -> first copy   (StartCopyJob)
//! Copy Job State Change COMPLETED, into the first copy  -> second copy  (when configured)
//! Copy Job State Change COMPLETED, into the last copy   -> shorten the original's retention
//! FAILED backup or copy jobs                            -> the error queue and a notification
//! ```
//! Each copy is its own job, so a failed second copy never undoes the first, and the retention
//! is shortened only once every configured copy exists. The copies' arrival in the central
//! account starts the archive flow there.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::arn::Arn;
use crate::event::{BackupJobDetail, CopyJobDetail, EventBridgeEvent, JobState, TriggerEvent};

/// What the operator configured for a workload account (the StackSet's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgCopyConfig {
    /// The central backup account's id, whose vaults receive the copies.
    pub central_account_id: String,
    /// Where copies go first.
    pub backup_region: String,
    /// Where copies of recovery points made in `backup_region` go instead, so that the first copy
    /// is always in another region than the original.
    pub alternate_region: String,
    /// Also copy into the central account's vault in the original's own region.
    #[serde(default)]
    pub second_copy: bool,
    /// The role AWS Backup assumes to copy (passed with iam:PassedToService backup.amazonaws.com).
    pub copy_role_arn: String,
    /// The local vaults whose recovery points are copied.
    pub vaults: Vec<String>,
    #[serde(default)]
    pub jobs: JobSelection,
}

/// Which backup jobs' recovery points are copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSelection {
    /// Jobs started by hand or by StartBackupJob, not by a backup plan (the reference project's
    /// choice: a plan can already copy with its own copy actions).
    #[default]
    OnDemand,
    /// Every job.
    All,
    /// Jobs of these backup plans (ARNs), and on-demand jobs.
    Plans(Vec<String>),
}

/// The StartCopyJob request, in the API's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyRequest {
    pub source_backup_vault_name: String,
    pub recovery_point_arn: String,
    pub destination_backup_vault_arn: String,
    pub iam_role_arn: String,
    /// The same for every delivery of the event that asks for this copy, so AWS Backup starts
    /// one job however often EventBridge delivers it.
    pub idempotency_token: String,
}

/// The retention step's input: the original recovery point, once its last copy exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionTarget {
    pub backup_vault_name: String,
    pub recovery_point_arn: String,
}

/// What one AWS Backup event asks of the organisation flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OrgCopyDecision {
    Copy { request: CopyRequest, copy: CopyNumber },
    ShortenRetention { target: RetentionTarget },
    Nothing { reason: String },
}

/// Which of the (at most two) copies a request makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyNumber {
    First,
    Second,
}

/// An event the flow cannot act on, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct OrgCopyError {
    pub field: &'static str,
    pub reason: String,
}

fn missing(field: &'static str) -> OrgCopyError {
    OrgCopyError { field, reason: "is missing".into() }
}

impl OrgCopyConfig {
    /// The region of the first copy of a recovery point made in `region`.
    pub fn first_copy_region<'a>(&'a self, region: &'a str) -> &'a str {
        if region == self.backup_region {
            &self.alternate_region
        } else {
            &self.backup_region
        }
    }

    fn central_vault_arn(&self, partition: &str, region: &str, vault: &str) -> String {
        format!("arn:{partition}:backup:{region}:{}:backup-vault:{vault}", self.central_account_id)
    }
}

/// A Backup Job State Change: COMPLETED in a configured vault, of a selected job, starts the
/// first copy.
pub fn decide_backup_job(
    event: &EventBridgeEvent<BackupJobDetail>,
    config: &OrgCopyConfig,
) -> Result<OrgCopyDecision, OrgCopyError> {
    let detail = &event.detail;
    if detail.state != JobState::Completed {
        return Ok(nothing(format!("the backup job is {}, not COMPLETED", detail.state.as_str())));
    }
    let vault = detail.vault_name().ok_or_else(|| missing("detail.backupVaultName"))?;
    if !config.vaults.iter().any(|v| v == vault) {
        return Ok(nothing(format!("vault {vault} is not one whose recovery points are copied")));
    }
    let plan = detail.other.get("createdBy").and_then(|c| c.get("backupPlanArn")).and_then(|p| p.as_str());
    let selected = match (&config.jobs, plan) {
        (JobSelection::All, _) | (_, None) => true,
        (JobSelection::OnDemand, Some(_)) => false,
        (JobSelection::Plans(plans), Some(plan)) => plans.iter().any(|p| p == plan),
    };
    if !selected {
        return Ok(nothing(format!("the job was started by backup plan {}, not selected", plan.unwrap_or_default())));
    }
    let point = event.resources.first().ok_or_else(|| missing("resources[0]"))?;
    let region = event.region.as_deref().ok_or_else(|| missing("region"))?;
    let destination = config.central_vault_arn(&point.partition, config.first_copy_region(region), vault);
    Ok(OrgCopyDecision::Copy { request: copy_request(vault, point, destination, config), copy: CopyNumber::First })
}

/// A Copy Job State Change from a configured vault: the first copy's COMPLETED starts the second
/// (when configured); the last copy's COMPLETED shortens the original's retention.
pub fn decide_copy_job(
    event: &EventBridgeEvent<CopyJobDetail>,
    config: &OrgCopyConfig,
) -> Result<OrgCopyDecision, OrgCopyError> {
    let detail = &event.detail;
    if detail.state != JobState::Completed {
        return Ok(nothing(format!("the copy job is {}, not COMPLETED", detail.state.as_str())));
    }
    let source_vault = detail.source_backup_vault_arn.as_ref().ok_or_else(|| missing("detail.sourceBackupVaultArn"))?;
    let vault = crate::event::vault_name_of(source_vault).ok_or_else(|| OrgCopyError {
        field: "detail.sourceBackupVaultArn",
        reason: format!("{source_vault} names no backup vault"),
    })?;
    if !config.vaults.iter().any(|v| v == vault) {
        return Ok(nothing(format!("vault {vault} is not one whose recovery points are copied")));
    }
    let destination =
        detail.destination_backup_vault_arn.as_ref().ok_or_else(|| missing("detail.destinationBackupVaultArn"))?;
    let point = event.resources.first().ok_or_else(|| missing("resources[0]"))?;
    let original_region = source_vault.region.as_str();
    let first = config.central_vault_arn(&point.partition, config.first_copy_region(original_region), vault);
    let second = config.central_vault_arn(&point.partition, original_region, vault);
    let destination = destination.to_string();
    let retention = || OrgCopyDecision::ShortenRetention {
        target: RetentionTarget { backup_vault_name: vault.to_string(), recovery_point_arn: point.to_string() },
    };
    Ok(match (destination == first, destination == second, config.second_copy) {
        (true, _, true) => {
            OrgCopyDecision::Copy { request: copy_request(vault, point, second, config), copy: CopyNumber::Second }
        }
        (true, _, false) | (_, true, true) => retention(),
        _ => nothing(format!("{destination} is not a copy this flow makes")),
    })
}

fn nothing(reason: String) -> OrgCopyDecision {
    OrgCopyDecision::Nothing { reason }
}

fn copy_request(vault: &str, point: &Arn, destination: String, config: &OrgCopyConfig) -> CopyRequest {
    let point = point.to_string();
    CopyRequest {
        source_backup_vault_name: vault.to_string(),
        idempotency_token: copy_idempotency_token(&point, &destination),
        recovery_point_arn: point,
        destination_backup_vault_arn: destination,
        iam_role_arn: config.copy_role_arn.clone(),
    }
}

/// SHA-256 of the recovery point and the destination: stable across redeliveries and
/// executions, distinct per copy, and of a fixed length whatever the ARNs' (AWS documents no
/// maximum for the token; a hash needs none).
pub fn copy_idempotency_token(recovery_point_arn: &str, destination_vault_arn: &str) -> String {
    let digest = Sha256::digest(format!("{recovery_point_arn}\n{destination_vault_arn}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What any trigger asks of the organisation flow: only AWS Backup's job events ask anything (the
/// EventBridge rules send no other; a rule edited by hand must not make a copy of something else).
pub fn decide(event: &TriggerEvent, config: &OrgCopyConfig) -> Result<OrgCopyDecision, OrgCopyError> {
    match event {
        TriggerEvent::BackupJob(event) => decide_backup_job(event, config),
        TriggerEvent::CopyJob(event) => decide_copy_job(event, config),
        other => Ok(nothing(format!("{} is not an AWS Backup job event", other.shape()))),
    }
}

/// What an operator reads when AWS Backup refused a copy: the call, AWS's answer, and every
/// principal and resource whose policy can refuse it, by name. Most failures of such set-ups are
/// permissions, and AWS's own message names only one of them (the PassRole, or the vault).
/// `caller_role` is the role that called StartCopyJob; `key` the recovery point's KMS key, when
/// DescribeRecoveryPoint could name it.
pub fn copy_failure(request: &CopyRequest, caller_role: Option<&str>, key: Option<&str>, error: &str) -> String {
    let CopyRequest { source_backup_vault_name: vault, recovery_point_arn: point, iam_role_arn: role, .. } = request;
    let destination = &request.destination_backup_vault_arn;
    let caller = caller_role.unwrap_or("the start-copy function's role");
    let key = key.map_or_else(
        || "the recovery point's KMS key (not named by DescribeRecoveryPoint)".into(),
        |k| format!("KMS key {k}"),
    );
    format!(
        "StartCopyJob of {point} from vault {vault} into vault {destination} as copy role {role} failed: {error}. \
         Check that {caller} may iam:PassRole {role} with iam:PassedToService backup.amazonaws.com, that the \
         access policy of vault {destination} allows backup:CopyIntoBackupVault to this account (and the one of \
         vault {vault} does not deny backup:CopyFromBackupVault to it), and that the key policy of {key} lets \
         {role} and AWS Backup use it"
    )
}

/// The same for the retention step: `operation` (DescribeRecoveryPoint,
/// UpdateRecoveryPointLifecycle) of the original in its vault, as `caller_role`.
pub fn retention_failure(
    operation: &str,
    target: &RetentionTarget,
    caller_role: Option<&str>,
    key: Option<&str>,
    error: &str,
) -> String {
    let RetentionTarget { backup_vault_name: vault, recovery_point_arn: point } = target;
    let caller = caller_role.unwrap_or("the shorten-retention function's role");
    let key = key.unwrap_or("unknown (the recovery point could not be described)");
    format!(
        "{operation} of {point} in vault {vault} as {caller} failed: {error}. Check that {caller} may \
         backup:{operation} on {point}, and that the access policy of vault {vault} does not deny it \
         (the recovery point's KMS key: {key})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const POINT: &str = "arn:aws:ec2:us-east-1::snapshot/snap-0a1b2c3d4e5f67890";

    fn config(second_copy: bool) -> OrgCopyConfig {
        OrgCopyConfig {
            central_account_id: "999988887777".into(),
            backup_region: "us-west-2".into(),
            alternate_region: "eu-west-1".into(),
            second_copy,
            copy_role_arn: "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole".into(),
            vaults: vec!["workload-vault".into()],
            jobs: JobSelection::OnDemand,
        }
    }

    fn backup_event(region: &str, state: &str, created_by: Value) -> EventBridgeEvent<BackupJobDetail> {
        let point = POINT.replace("us-east-1", region);
        let value = json!({
            "version": "0", "id": "e", "detail-type": "Backup Job State Change", "source": "aws.backup",
            "account": "111122223333", "time": "2026-12-05T04:00:00Z", "region": region, "resources": [point],
            "detail": {
                "backupJobId": "job-1", "state": state, "resourceType": "EBS",
                "backupVaultName": "workload-vault",
                "backupVaultArn": format!("arn:aws:backup:{region}:111122223333:backup-vault:workload-vault"),
                "resourceArn": format!("arn:aws:ec2:{region}:111122223333:volume/vol-0a1b2c3d4e5f67890"),
                "createdBy": created_by
            }
        });
        match crate::event::TriggerEvent::from_value(&value).expect("a valid event") {
            crate::event::TriggerEvent::BackupJob(event) => event,
            other => panic!("not a backup job event: {other:?}"),
        }
    }

    fn copy_event(state: &str, destination_region: &str, destination_account: &str) -> EventBridgeEvent<CopyJobDetail> {
        let value = json!({
            "version": "0", "id": "e", "detail-type": "Copy Job State Change", "source": "aws.backup",
            "account": "111122223333", "time": "2026-12-05T05:00:00Z", "region": "us-east-1", "resources": [POINT],
            "detail": {
                "copyJobId": "copy-1", "state": state, "resourceType": "EBS",
                "resourceArn": "arn:aws:ec2:us-east-1:111122223333:volume/vol-0a1b2c3d4e5f67890",
                "sourceBackupVaultArn": "arn:aws:backup:us-east-1:111122223333:backup-vault:workload-vault",
                "destinationBackupVaultArn":
                    format!("arn:aws:backup:{destination_region}:{destination_account}:backup-vault:workload-vault"),
                "destinationRecoveryPointArn": format!("arn:aws:ec2:{destination_region}::snapshot/snap-0ffffffffffffffff")
            }
        });
        match crate::event::TriggerEvent::from_value(&value).expect("a valid event") {
            crate::event::TriggerEvent::CopyJob(event) => event,
            other => panic!("not a copy job event: {other:?}"),
        }
    }

    fn copy_of(decision: OrgCopyDecision) -> (CopyRequest, CopyNumber) {
        match decision {
            OrgCopyDecision::Copy { request, copy } => (request, copy),
            other => panic!("expected a copy, got {other:?}"),
        }
    }

    #[test]
    fn completed_on_demand_backup_is_copied_to_the_backup_region() {
        let (request, copy) =
            copy_of(decide_backup_job(&backup_event("us-east-1", "COMPLETED", json!({})), &config(true)).unwrap());
        assert_eq!(copy, CopyNumber::First);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "SourceBackupVaultName": "workload-vault",
                "RecoveryPointArn": POINT,
                "DestinationBackupVaultArn": "arn:aws:backup:us-west-2:999988887777:backup-vault:workload-vault",
                "IamRoleArn": "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole",
                "IdempotencyToken": copy_idempotency_token(
                    POINT, "arn:aws:backup:us-west-2:999988887777:backup-vault:workload-vault"),
            })
        );
    }

    #[test]
    fn a_point_already_in_the_backup_region_goes_to_the_alternate_region() {
        let (request, _) =
            copy_of(decide_backup_job(&backup_event("us-west-2", "COMPLETED", json!({})), &config(false)).unwrap());
        assert_eq!(
            request.destination_backup_vault_arn,
            "arn:aws:backup:eu-west-1:999988887777:backup-vault:workload-vault"
        );
    }

    #[test]
    fn jobs_are_selected_as_configured() {
        let by_plan = json!({"backupPlanArn": "arn:aws:backup:us-east-1:111122223333:backup-plan:daily"});
        let planned = backup_event("us-east-1", "COMPLETED", by_plan);
        let mut config = config(false);
        assert!(matches!(decide_backup_job(&planned, &config).unwrap(), OrgCopyDecision::Nothing { .. }));
        config.jobs = JobSelection::Plans(vec!["arn:aws:backup:us-east-1:111122223333:backup-plan:daily".into()]);
        assert!(matches!(decide_backup_job(&planned, &config).unwrap(), OrgCopyDecision::Copy { .. }));
        config.jobs = JobSelection::Plans(vec!["arn:aws:backup:us-east-1:111122223333:backup-plan:weekly".into()]);
        assert!(matches!(decide_backup_job(&planned, &config).unwrap(), OrgCopyDecision::Nothing { .. }));
        config.jobs = JobSelection::All;
        assert!(matches!(decide_backup_job(&planned, &config).unwrap(), OrgCopyDecision::Copy { .. }));
    }

    #[test]
    fn failed_jobs_and_other_vaults_start_nothing() {
        let failed = decide_backup_job(&backup_event("us-east-1", "FAILED", json!({})), &config(true)).unwrap();
        assert_eq!(failed, nothing("the backup job is FAILED, not COMPLETED".into()));
        let mut other_vault = config(true);
        other_vault.vaults = vec!["another-vault".into()];
        let skipped = decide_backup_job(&backup_event("us-east-1", "COMPLETED", json!({})), &other_vault).unwrap();
        assert!(matches!(skipped, OrgCopyDecision::Nothing { reason } if reason.contains("workload-vault")));
    }

    #[test]
    fn first_copy_completed_starts_the_second_then_the_second_shortens_retention() {
        let (request, copy) =
            copy_of(decide_copy_job(&copy_event("COMPLETED", "us-west-2", "999988887777"), &config(true)).unwrap());
        assert_eq!(copy, CopyNumber::Second);
        assert_eq!(
            request.destination_backup_vault_arn,
            "arn:aws:backup:us-east-1:999988887777:backup-vault:workload-vault"
        );
        assert_eq!(request.recovery_point_arn, POINT, "the second copy is made from the original");
        let after_second =
            decide_copy_job(&copy_event("COMPLETED", "us-east-1", "999988887777"), &config(true)).unwrap();
        assert_eq!(
            after_second,
            OrgCopyDecision::ShortenRetention {
                target: RetentionTarget {
                    backup_vault_name: "workload-vault".into(),
                    recovery_point_arn: POINT.into()
                }
            }
        );
    }

    #[test]
    fn without_a_second_copy_the_first_shortens_retention() {
        let decision = decide_copy_job(&copy_event("COMPLETED", "us-west-2", "999988887777"), &config(false)).unwrap();
        assert!(matches!(decision, OrgCopyDecision::ShortenRetention { .. }));
        // The original-region copy is not one this configuration makes: no retention change.
        let stray = decide_copy_job(&copy_event("COMPLETED", "us-east-1", "999988887777"), &config(false)).unwrap();
        assert!(matches!(stray, OrgCopyDecision::Nothing { .. }));
    }

    #[test]
    fn a_failed_copy_or_a_copy_elsewhere_leaves_retention_alone() {
        let failed = decide_copy_job(&copy_event("FAILED", "us-west-2", "999988887777"), &config(true)).unwrap();
        assert_eq!(failed, nothing("the copy job is FAILED, not COMPLETED".into()));
        let elsewhere = decide_copy_job(&copy_event("COMPLETED", "us-west-2", "123456789012"), &config(true)).unwrap();
        assert!(matches!(elsewhere, OrgCopyDecision::Nothing { reason } if reason.contains("123456789012")));
    }

    #[test]
    fn idempotency_token_is_stable_and_distinct_per_destination() {
        let a = copy_idempotency_token(POINT, "arn:aws:backup:us-west-2:999988887777:backup-vault:v");
        assert_eq!(a, copy_idempotency_token(POINT, "arn:aws:backup:us-west-2:999988887777:backup-vault:v"));
        assert_ne!(a, copy_idempotency_token(POINT, "arn:aws:backup:us-east-1:999988887777:backup-vault:v"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn rejects_an_event_without_its_recovery_point() {
        let mut event = backup_event("us-east-1", "COMPLETED", json!({}));
        event.resources.clear();
        assert_eq!(decide_backup_job(&event, &config(true)), Err(missing("resources[0]")));
    }

    #[test]
    fn only_backup_and_copy_job_events_are_decided() {
        let manual = crate::event::TriggerEvent::from_value(&json!({"snapshot": "snap-0a1b2c3d4e5f67890"})).unwrap();
        assert!(matches!(decide(&manual, &config(true)).unwrap(), OrgCopyDecision::Nothing { .. }));
        let backup = crate::event::TriggerEvent::BackupJob(backup_event("us-east-1", "COMPLETED", json!({})));
        assert!(matches!(decide(&backup, &config(true)).unwrap(), OrgCopyDecision::Copy { .. }));
    }

    #[test]
    fn failure_messages_name_the_roles_the_vaults_and_the_key() {
        let (request, _) =
            copy_of(decide_backup_job(&backup_event("us-east-1", "COMPLETED", json!({})), &config(true)).unwrap());
        let caller = "arn:aws:iam::111122223333:role/workload-start-copy";
        let message =
            copy_failure(&request, Some(caller), Some("arn:aws:kms:us-east-1:111122223333:key/k1"), "AccessDenied");
        for named in [
            caller,
            request.iam_role_arn.as_str(),
            "workload-vault",
            "arn:aws:backup:us-west-2:999988887777:backup-vault:workload-vault",
            "arn:aws:kms:us-east-1:111122223333:key/k1",
            "iam:PassRole",
            "backup:CopyIntoBackupVault",
            "AccessDenied",
        ] {
            assert!(message.contains(named), "{named} missing from: {message}");
        }
        assert!(copy_failure(&request, None, None, "e").contains("the recovery point's KMS key"));
        let target = RetentionTarget { backup_vault_name: "workload-vault".into(), recovery_point_arn: POINT.into() };
        let message =
            retention_failure("UpdateRecoveryPointLifecycle", &target, Some(caller), Some("key/k1"), "Denied");
        for named in [caller, POINT, "workload-vault", "key/k1", "backup:UpdateRecoveryPointLifecycle", "Denied"] {
            assert!(message.contains(named), "{named} missing from: {message}");
        }
    }
}
