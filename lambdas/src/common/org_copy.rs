//! What the organisation flow's two steps (`start-copy`, `shorten-retention`) share: their configuration and the
//! decision for an event, [`archiver_core::flows::org_copy`]'s.

use crate::common::{required_env, StepError};
use archiver_core::errors;
use archiver_core::event::TriggerEvent;
use archiver_core::flows::org_copy::{decide, OrgCopyConfig, OrgCopyDecision};
use serde_json::Value;

/// The environment variable holding [`OrgCopyConfig`] as JSON.
pub const ORG_COPY_CONFIG_ENV: &str = "ORG_COPY_CONFIG";
/// The environment variable naming the function's own role, for failure messages.
pub const FUNCTION_ROLE_ARN_ENV: &str = "FUNCTION_ROLE_ARN";

/// [`OrgCopyConfig`] from `ORG_COPY_CONFIG`, for both steps of the organisation flow.
pub fn org_copy_config() -> Result<OrgCopyConfig, StepError> {
    let text = required_env(ORG_COPY_CONFIG_ENV)?;
    serde_json::from_str(&text)
        .map_err(|e| StepError::config(format!("{ORG_COPY_CONFIG_ENV} is not an organisation copy configuration: {e}")))
}

/// What the organisation flow decides for `payload`, or `InvalidEvent` naming the field.
pub fn decision(payload: &Value, config: &OrgCopyConfig) -> Result<OrgCopyDecision, StepError> {
    let event = TriggerEvent::from_value(payload).map_err(|e| StepError::new(errors::INVALID_EVENT, e.to_string()))?;
    decide(&event, config).map_err(|e| StepError::new(errors::INVALID_EVENT, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> OrgCopyConfig {
        serde_json::from_value(json!({
            "central_account_id": "999988887777", "backup_region": "us-west-2", "alternate_region": "eu-west-1",
            "copy_role_arn": "arn:aws:iam::111122223333:role/copy", "vaults": ["workload-vault"]
        }))
        .unwrap()
    }

    #[test]
    fn events_that_are_not_backup_job_events_are_invalid_or_nothing() {
        let error = decision(&json!({"detail-type": "Copy Job State Change"}), &config()).unwrap_err();
        assert_eq!(error.name, errors::INVALID_EVENT);
        let manual = decision(&json!({"snapshot": "snap-0a1b2c3d4e5f67890"}), &config()).unwrap();
        assert!(matches!(manual, OrgCopyDecision::Nothing { .. }));
    }
}
