//! `plan`'s answer for the organisation flow: which copy a Backup or Copy Job event would start and where, or
//! which retention it would shorten, as the workload account's `start-copy` and `shorten-retention` decide it
//! ([`archiver_core::flows::org_copy`]). Offline, like the rest of `plan`.
//!
//! The configuration is what those Lambdas read: `--org-copy-config FILE`, else `$ORG_COPY_CONFIG` (the JSON of
//! [`OrgCopyConfig`]); without either, `plan` says nothing about copies. In `--json` output the decision is the
//! field `org_copy`: `{"action": "copy", "copy": "first" | "second", "request": {StartCopyJob's fields}}`,
//! `{"action": "shorten_retention", "target": {backup_vault_name, recovery_point_arn}}` or
//! `{"action": "nothing", "reason"}`; a configuration or event it cannot read gives `{"error"}`.

use std::path::PathBuf;

use archiver_core::event::TriggerEvent;
use archiver_core::flows::org_copy::{decide, OrgCopyConfig, OrgCopyDecision};
use serde_json::{json, Value};

use crate::Failure;

/// Where the Lambdas, and `plan` when `--org-copy-config` is absent, find the configuration.
pub const ORG_COPY_CONFIG_ENV: &str = "ORG_COPY_CONFIG";

/// The configuration from `path`, else `$ORG_COPY_CONFIG`; `None` when neither is given.
pub fn config(path: Option<&PathBuf>) -> Result<Option<OrgCopyConfig>, Failure> {
    let (text, origin) = match (path, std::env::var(ORG_COPY_CONFIG_ENV)) {
        (Some(path), _) => (
            std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
            path.display().to_string(),
        ),
        (None, Ok(text)) if !text.trim().is_empty() => (text, format!("${ORG_COPY_CONFIG_ENV}")),
        _ => return Ok(None),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Failure::usage(format!("{origin} is not an organisation copy configuration: {e}")))
}

/// The decision for `event` as a JSON value (the `org_copy` field).
pub fn decision(event: &TriggerEvent, config: &OrgCopyConfig) -> Value {
    match decide(event, config) {
        Ok(decision) => serde_json::to_value(decision).expect("decisions serialize"),
        Err(error) => json!({"error": error.to_string()}),
    }
}

/// One line for a person.
pub fn describe(event: &TriggerEvent, config: &OrgCopyConfig) -> String {
    match decide(event, config) {
        Ok(OrgCopyDecision::Copy { request, copy }) => format!(
            "org copy: {} copy of {} from vault {} into {} as {} (idempotency token {})",
            serde_json::to_value(copy).expect("serializes").as_str().unwrap_or_default(),
            request.recovery_point_arn,
            request.source_backup_vault_name,
            request.destination_backup_vault_arn,
            request.iam_role_arn,
            request.idempotency_token
        ),
        Ok(OrgCopyDecision::ShortenRetention { target }) => format!(
            "org copy: the last copy exists: shorten the retention of {} in vault {}",
            target.recovery_point_arn, target.backup_vault_name
        ),
        Ok(OrgCopyDecision::Nothing { reason }) => format!("org copy: nothing to do: {reason}"),
        Err(error) => format!("org copy: cannot decide: {error}"),
    }
}
