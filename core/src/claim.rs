//! The claim on an archive's idempotency key: one small object that exactly one execution can
//! create, taken before the temporary volume exists and released by the cleanup, so that two
//! executions of one snapshot (a duplicate event, a replay while the first still runs) never
//! both archive it.
//!
//! Why an S3 conditional write (PutObject with `If-None-Match: *`, answered 412 when the key
//! exists) rather than a DynamoDB conditional put: it needs no new table (nothing to deploy,
//! encrypt, back up or pay for), it lives in the archive bucket next to the archive it guards
//! (the same key, the same IAM prefix, and deleting an archive to make a new one deletes its
//! claim with it), and it is as strong: S3 has been strongly consistent for every read and list
//! since December 2020 and has refused a conditional PutObject on an existing key since August
//! 2024, atomically, whatever the concurrency. The DescribeVolumes tag listing it replaces is
//! eventually consistent (EC2 documents it), so two executions that started together could
//! both find no volume and both archive.
//!
//! Lifetime: the execution that created the claim owns it. Its cleanup (any failure) deletes it,
//! so a replay can archive; on success it stays, with the manifest, as the mark of the one
//! execution that archived the snapshot. A duplicate that passed `plan` before the manifest
//! existed is therefore still refused here, and `plan` refuses every later one by the manifest.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::naming::claim_key;
use crate::s3_location::S3Location;

/// The claim object's body: who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveClaim {
    pub execution_id: String,
    pub snapshot_id: String,
    pub idempotency_key: String,
}

impl ArchiveClaim {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a claim serializes")
    }
}

/// What `create-volume` does after its conditional PutObject of the claim was refused (412).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefused {
    /// An earlier attempt of this execution took it (a retried Lambda): go on.
    Ours,
    /// Another execution holds it: this one is a duplicate.
    HeldBy { execution: String },
    /// The claim was released between the refused PutObject and the read: try again.
    Released,
}

/// Decides a refused claim from the body read back (`None`: it no longer exists). A body that
/// is not a claim is never this execution's.
pub fn refused_claim(holder: Option<&[u8]>, execution_id: &str) -> ClaimRefused {
    let Some(body) = holder else {
        return ClaimRefused::Released;
    };
    match serde_json::from_slice::<ArchiveClaim>(body) {
        Ok(claim) if claim.execution_id == execution_id => ClaimRefused::Ours,
        Ok(claim) => ClaimRefused::HeldBy { execution: claim.execution_id },
        Err(_) => ClaimRefused::HeldBy { execution: "an unknown execution (the claim is unreadable)".into() },
    }
}

/// Whether the cleanup of `execution_id` deletes the claim whose body it read: only its own,
/// never the claim of the execution this one was a duplicate of. Only the holder ever deletes a
/// claim and nobody can replace one that exists, so reading then deleting is safe.
pub fn releases(holder: Option<&[u8]>, execution_id: &str) -> bool {
    refused_claim(holder, execution_id) == ClaimRefused::Ours
}

/// The claim an execution's document (`$`, as the cleanup receives it) may hold: its bucket and
/// key, from the request's `destination` and `idempotency_key`; `None` for a document that never
/// became a request (an invalid event fails before any claim is taken).
pub fn claim_in(state: &Value) -> Option<(String, String)> {
    let destination: S3Location = serde_json::from_value(state.get("destination")?.clone()).ok()?;
    let key = state.get("idempotency_key")?.as_str()?;
    Some((destination.bucket.clone(), claim_key(&destination, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(execution_id: &str) -> Vec<u8> {
        ArchiveClaim { execution_id: execution_id.into(), snapshot_id: "snap-1".into(), idempotency_key: "k".into() }
            .to_json()
    }

    #[test]
    fn a_refused_claim_is_ours_anothers_or_gone() {
        assert_eq!(refused_claim(Some(&claim("e1")), "e1"), ClaimRefused::Ours);
        assert_eq!(refused_claim(Some(&claim("e0")), "e1"), ClaimRefused::HeldBy { execution: "e0".into() });
        assert_eq!(refused_claim(None, "e1"), ClaimRefused::Released);
        assert!(matches!(refused_claim(Some(b"garbage"), "e1"), ClaimRefused::HeldBy { .. }));
    }

    #[test]
    fn the_cleanup_releases_its_own_claim_only() {
        assert!(releases(Some(&claim("e1")), "e1"));
        assert!(!releases(Some(&claim("e0")), "e1"), "a duplicate's cleanup keeps the first execution's claim");
        assert!(!releases(None, "e1"));
        assert!(!releases(Some(b"garbage"), "e1"));
    }

    #[test]
    fn the_claim_is_found_in_the_document() {
        let state = serde_json::json!({
            "destination": {"bucket": "archive", "prefix": "backups/ebs/vol-1/2025/03/04/snap-1"},
            "idempotency_key": "backup-job-8f3a",
            "error": {"Error": "JobFailed"},
        });
        assert_eq!(
            claim_in(&state),
            Some(("archive".to_string(), "backups/ebs/vol-1/2025/03/04/snap-1/.claims/backup-job-8f3a".to_string()))
        );
        assert_eq!(claim_in(&serde_json::json!({"detail": {}})), None, "an event that never became a request");
    }
}
