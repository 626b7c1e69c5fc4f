//! Names the pipeline derives from a snapshot: the S3 key prefix of its archive, the idempotency
//! key that makes a duplicate event harmless, and the RDS export task identifier. Each is built
//! here once, so the Lambdas, the CLI and the ASL never rebuild one by string formatting (the ASL
//! only passes these values along).
//!
//! All three are pure functions of their inputs, and all three must be *stable* (the same
//! snapshot gives the same name on every retry, replay and duplicate delivery) and *unique* (two
//! snapshots never share a name). Where a name has to be rewritten to fit a character set or a
//! length limit, uniqueness would be lost (`rds:db-1` and `rds-db-1` are both legal RDS snapshot
//! names), so the rewritten name carries a short hash of the original.

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};

use crate::resource::ResourceKind;
use crate::s3_location::S3Location;

/// Tags on every temporary volume. The managed-by tag holds the deployment's name (the stack's):
/// IAM lets a deployment's roles attach, detach and delete only volumes that carry their own
/// name, so two deployments in one account never touch each other's volumes. The execution tag
/// is what the cleanup finds volumes by (so a volume whose id never reached the state machine is
/// still deleted), the key tag is what a duplicate execution finds the first one's volume by.
pub const TAG_MANAGED_BY: &str = "backup-archiver:managed-by";
pub const TAG_EXECUTION: &str = "backup-archiver:execution";
pub const TAG_IDEMPOTENCY_KEY: &str = "backup-archiver:idempotency-key";
pub const TAG_SNAPSHOT_ID: &str = "backup-archiver:snapshot-id";

/// `ClientToken` of CreateVolume: at most 64 ASCII characters.
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html>
const MAX_CLIENT_TOKEN_LEN: usize = 64;

/// Hex digits of SHA-256 appended where a name was rewritten. 8 hex digits (32 bits) make a
/// collision between two snapshots that also share the same readable part negligible, and keep
/// most of the 60 characters of an export task identifier readable.
pub const HASH_LEN: usize = 8;

/// The longest idempotency key. EC2's `ClientToken` allows 64 ASCII characters, the tightest of
/// its users (Step Functions execution names allow 80, Batch job names 128).
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html>
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// RDS: "Must contain from 1 to 63 alphanumeric characters or hyphens" for most identifiers; the
/// issue that specified export identifiers asks for at most 60, which also leaves room for a
/// suffix should a flow ever need one.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_StartExportTask.html>
pub const MAX_EXPORT_TASK_IDENTIFIER_LEN: usize = 60;

/// The first `HASH_LEN` hex digits of SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(HASH_LEN)
        .map(|n| char::from_digit(n.into(), 16).unwrap())
        .collect()
}

/// Lowercase letters, digits and single hyphens, without hyphens at either end: every character
/// outside `[a-z0-9]` becomes a hyphen, and runs of hyphens collapse.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Cuts `text` (ASCII) to at most `max` characters, without leaving a hyphen at the end.
fn truncate_slug(text: &str, max: usize) -> &str {
    text[..text.len().min(max)].trim_end_matches('-')
}

/// One path segment of an S3 key. Ids made of `[A-Za-z0-9._-]` are used as they are; anything
/// else (the colon of `rds:orders-…`, a slash, spaces) is replaced and the segment gets a hash of
/// the original, so that `rds:x` and `rds-x` still land in different places. Colons are legal in
/// S3 keys but need URL-encoding in many tools, which is why they are not kept.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>
pub fn key_segment(text: &str) -> String {
    let safe = !text.is_empty()
        && text != "."
        && text != ".."
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if safe {
        return text.to_string();
    }
    let mut readable: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    readable = readable.trim_matches(|c| c == '-' || c == '.').to_string();
    if readable.is_empty() {
        short_hash(text)
    } else {
        format!("{readable}-{}", short_hash(text))
    }
}

/// The key prefix of one archive: `<base>/<resource type>/<resource id>/<yyyy>/<mm>/<dd>/<snapshot id>`.
///
/// Read left to right it answers an operator's questions in order: which kind of resource,
/// which one, when, which snapshot. Listing `ebs/vol-…/` shows a volume's history; the date is
/// the snapshot's (not the time the archive ran), so a replay a week later writes to the same
/// place. `base` may be empty; it must not start or end with `/` (an [`crate::s3_location::S3Location`]
/// prefix never does).
pub fn archive_prefix(base: &str, kind: ResourceKind, resource_id: &str, date: NaiveDate, snapshot_id: &str) -> String {
    let tail = format!(
        "{}/{}/{:04}/{:02}/{:02}/{}",
        kind.as_str(),
        key_segment(resource_id),
        date.year(),
        date.month(),
        date.day(),
        key_segment(snapshot_id)
    );
    if base.is_empty() {
        tail
    } else {
        format!("{base}/{tail}")
    }
}

/// The key of the claim on `idempotency_key` ([`crate::claim`]): `<archive prefix>/.claims/<key>`.
/// Inside the archive's own prefix, because that prefix is a function of the snapshot as the key
/// is: every execution of one key claims the same object, deleting an archive deletes its claim,
/// and the roles that may write archives under the deployment's prefix reach it. The leading dot
/// keeps it apart from the archive's objects, which the manifest lists by name.
pub fn claim_key(destination: &S3Location, idempotency_key: &str) -> String {
    destination.key(&format!(".claims/{idempotency_key}"))
}

/// What an idempotency key is derived from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyBasis<'a> {
    /// An AWS Backup job: every event about it (EventBridge, SNS, a duplicate, a replay) names
    /// the same job id, so they all map to one key.
    BackupJob(&'a str),
    /// An AWS Backup copy job: the copy is a recovery point of its own.
    CopyJob(&'a str),
    /// A snapshot that no backup job names (RDS events, manual input). Its kind is part of the
    /// key because a DB snapshot and a cluster snapshot may share a name.
    Snapshot { kind: ResourceKind, snapshot_id: &'a str },
}

/// The key that makes one snapshot's archive idempotent: the Step Functions execution name, the
/// `ClientToken` of CreateVolume and the like. At most 64 characters of `[a-z0-9-]`.
///
/// Job ids are UUIDs that AWS prints in either case, and RDS identifiers are case-insensitive,
/// so the key is case-insensitive too: `8F3A…` and `8f3a…` give the same key.
pub fn idempotency_key(basis: IdempotencyBasis<'_>) -> String {
    let (label, id) = match basis {
        IdempotencyBasis::BackupJob(id) => ("backup-job".to_string(), id),
        IdempotencyBasis::CopyJob(id) => ("copy-job".to_string(), id),
        IdempotencyBasis::Snapshot { kind, snapshot_id } => (format!("{}-snapshot", kind.as_str()), snapshot_id),
    };
    let folded = id.to_ascii_lowercase();
    let readable = slug(&folded);
    let room = MAX_IDEMPOTENCY_KEY_LEN - label.len() - 1;
    if !readable.is_empty() && readable == folded && readable.len() <= room {
        return format!("{label}-{readable}");
    }
    let cut = truncate_slug(&readable, room - HASH_LEN - 1);
    if cut.is_empty() {
        format!("{label}-{}", short_hash(&folded))
    } else {
        format!("{label}-{cut}-{}", short_hash(&folded))
    }
}

/// The `ExportTaskIdentifier` of StartExportTask for one snapshot exported to one destination,
/// given the snapshot's ARN (or, failing that, its identifier) and the archive's `s3://` URL.
///
/// RDS requires a letter first, only letters, digits and hyphens, no `--` and no trailing `-`;
/// we also keep it to 60 characters. Snapshot names break every one of these rules
/// (`rds:orders-2025-03-04-02-17`, `awsbackup:job-…`, names starting with digits, up to 255
/// characters), so the name is rewritten and always ends in a hash of the full ARN. The hash is
/// what makes it unique: the rewriting maps `rds:x` and `rds-x` alike, and a DB snapshot and a
/// cluster snapshot may share a name but never an ARN. The identifier is lowercase, as RDS
/// stores identifiers, and the ARN is hashed lowercased, so an ARN typed in another case by an
/// operator still finds the export that an event started (and `ExportTaskAlreadyExists` on a
/// retry then means "already started").
///
/// The destination is hashed too: export identifiers are per account and region, and two
/// deployments that archive the same snapshot into different buckets must each get an export of
/// their own, never poll (or, on failure, cancel) the other's.
pub fn export_task_identifier(snapshot_arn: &str, destination: &str) -> String {
    let name = ["cluster-snapshot:", ":snapshot:"]
        .iter()
        .find_map(|marker| snapshot_arn.find(marker).map(|at| &snapshot_arn[at + marker.len()..]))
        .unwrap_or(snapshot_arn);
    let hash = short_hash(&format!("{}\n{destination}", snapshot_arn.to_ascii_lowercase()));
    let mut readable = slug(name);
    if !readable.starts_with(|c: char| c.is_ascii_lowercase()) {
        readable = if readable.is_empty() { "export".to_string() } else { format!("export-{readable}") };
    }
    let cut = truncate_slug(&readable, MAX_EXPORT_TASK_IDENTIFIER_LEN - HASH_LEN - 1);
    format!("{cut}-{hash}")
}

/// The longest identifier of a temporary DB instance or cluster of ours, leaving room for the
/// `-1` of an Aurora cluster's instance under RDS's 63 characters.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBInstanceFromDBSnapshot.html>
pub const MAX_DATABASE_IDENTIFIER_LEN: usize = 60;

/// The identifier of the temporary DB instance (or Aurora cluster) that one snapshot's dump is
/// taken from: `ba-<idempotency key, cut>-<hash of the key>`.
///
/// Stable for the snapshot, so a retried RestoreDatabase finds the instance its first attempt
/// made, and RDS's own uniqueness of identifiers makes a duplicate execution fail
/// `DBInstanceAlreadyExists` instead of restoring a second copy. The key is already
/// `[a-z0-9-]` and starts with a letter; the prefix keeps our instances together in the
/// console, and the hash keeps a cut key unique.
pub fn database_identifier(idempotency_key: &str) -> String {
    let readable = slug(idempotency_key);
    let cut = truncate_slug(&readable, MAX_DATABASE_IDENTIFIER_LEN - "ba-".len() - HASH_LEN - 1);
    if cut.is_empty() {
        format!("ba-{}", short_hash(idempotency_key))
    } else {
        format!("ba-{cut}-{}", short_hash(idempotency_key))
    }
}

/// The SSM parameter holding one execution's master password of its temporary database:
/// `/backup-archiver/<idempotency key>/<hash of the execution>/master-password`.
///
/// Per execution (not per snapshot): a duplicate or a replay never overwrites the password of an
/// instance another execution is dumping, and a retried RestoreDatabase of one execution finds
/// its own parameter. The execution is hashed because its ARN holds colons, which parameter
/// names do not allow (`[a-zA-Z0-9_.-/]`).
/// <https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html>
pub fn password_parameter_name(idempotency_key: &str, execution_id: &str) -> String {
    format!("/backup-archiver/{}/{}/master-password", slug(idempotency_key), short_hash(execution_id))
}

/// `<idempotency key cut short>-<hash of key and execution>`: readable, at most 64 characters of
/// `[a-z0-9-]`. Also the DynamoDB export's client token and the temporary table's name.
pub(crate) fn client_token(idempotency_key: &str, execution_id: &str) -> String {
    let hash = short_hash(&format!("{idempotency_key}\n{execution_id}"));
    let room = MAX_CLIENT_TOKEN_LEN - hash.len() - 1;
    let readable = &idempotency_key[..idempotency_key.len().min(room)];
    format!("{}-{hash}", readable.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESTINATION: &str = "s3://example-archive/backups/rds/orders/2025/03/04/snap";
    use std::collections::HashMap;

    /// A small deterministic generator (xorshift64*): the tests need many awkward strings, not
    /// cryptographic randomness, and a fixed seed makes any failure reproducible.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A string of 0 to `max` characters drawn mostly from the characters that break names.
        fn awkward(&mut self, max: usize) -> String {
            const PIECES: &[&str] = &[
                "a",
                "Z",
                "0",
                "9",
                "-",
                "--",
                ":",
                "rds:",
                "awsbackup:job-",
                "_",
                ".",
                "/",
                " ",
                "é",
                "ß",
                "🦀",
                "snap-",
                "x",
                "db",
                "2025-03-04-02-17",
                "\u{0}",
                "\t",
                "cluster-snapshot:",
                ":snapshot:",
            ];
            let len = self.below(max + 1);
            let mut out = String::new();
            while out.chars().count() < len {
                out.push_str(PIECES[self.below(PIECES.len())]);
            }
            out
        }
    }

    fn is_valid_export_identifier(id: &str) -> bool {
        id.len() <= MAX_EXPORT_TASK_IDENTIFIER_LEN
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !id.contains("--")
            && !id.ends_with('-')
    }

    const ARN: &str = "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:orders-postgres-2025-03-04-02-17";

    #[test]
    fn short_hash_is_stable_hex() {
        assert_eq!(short_hash(""), "e3b0c442", "the first digits of SHA-256 of nothing");
        assert_eq!(short_hash("x"), short_hash("x"));
        assert_ne!(short_hash("x"), short_hash("y"));
    }

    #[test]
    fn archive_prefix_follows_the_documented_layout() {
        let date = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap();
        assert_eq!(
            archive_prefix("backups", ResourceKind::Ebs, "vol-0fedcba9876543210", date, "snap-0a1b2c3d4e5f67890"),
            "backups/ebs/vol-0fedcba9876543210/2025/03/04/snap-0a1b2c3d4e5f67890"
        );
        assert_eq!(
            archive_prefix("", ResourceKind::DynamoDb, "Orders.v2", date, "01568804569000-d3306d76"),
            "dynamodb/Orders.v2/2025/03/04/01568804569000-d3306d76"
        );
        assert_eq!(
            archive_prefix("a/b", ResourceKind::Aurora, "billing-aurora", date, "billing-pre-migration"),
            "a/b/aurora/billing-aurora/2025/03/04/billing-pre-migration"
        );
    }

    #[test]
    fn archive_prefix_rewrites_colons_in_rds_snapshot_names() {
        let date = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let prefix =
            archive_prefix("p", ResourceKind::Rds, "orders-postgres", date, "rds:orders-postgres-2025-12-31-04-00");
        assert!(
            prefix.starts_with("p/rds/orders-postgres/2025/12/31/rds-orders-postgres-2025-12-31-04-00-"),
            "{prefix}"
        );
        assert!(!prefix.contains(':'));
        let other =
            archive_prefix("p", ResourceKind::Rds, "orders-postgres", date, "rds-orders-postgres-2025-12-31-04-00");
        assert_ne!(prefix, other, "rds:x and rds-x are different snapshots");
    }

    #[test]
    fn key_segment_keeps_safe_ids_and_never_yields_path_tricks() {
        assert_eq!(key_segment("vol-0fedcba9876543210"), "vol-0fedcba9876543210");
        assert_eq!(key_segment("My_Table.v2"), "My_Table.v2");
        for tricky in ["", ".", "..", "/", "a/b", "../etc", ":::", " "] {
            let segment = key_segment(tricky);
            assert!(!segment.is_empty() && segment != "." && segment != "..", "{tricky:?} -> {segment:?}");
            assert!(!segment.contains('/'), "{tricky:?} -> {segment:?}");
        }
    }

    #[test]
    fn key_segments_stay_distinct_over_many_awkward_ids() {
        let mut g = Gen(0x5eed_0001);
        let mut seen: HashMap<String, String> = HashMap::new();
        for _ in 0..5_000 {
            let id = g.awkward(40);
            let segment = key_segment(&id);
            assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')), "{segment}");
            if let Some(previous) = seen.insert(segment.clone(), id.clone()) {
                assert_eq!(previous, id, "two ids share the key segment {segment}");
            }
        }
    }

    #[test]
    fn idempotency_key_is_readable_for_backup_jobs() {
        assert_eq!(
            idempotency_key(IdempotencyBasis::BackupJob("8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C")),
            "backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c"
        );
        assert_eq!(
            idempotency_key(IdempotencyBasis::CopyJob("0175DE71-5784-589F-D8AC-541ACCB4CAC8")),
            "copy-job-0175de71-5784-589f-d8ac-541accb4cac8"
        );
        assert_eq!(
            idempotency_key(IdempotencyBasis::Snapshot {
                kind: ResourceKind::Ebs,
                snapshot_id: "snap-0a1b2c3d4e5f67890"
            }),
            "ebs-snapshot-snap-0a1b2c3d4e5f67890"
        );
    }

    #[test]
    fn idempotency_key_ignores_the_case_of_job_ids() {
        let upper = idempotency_key(IdempotencyBasis::BackupJob("8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C"));
        let lower = idempotency_key(IdempotencyBasis::BackupJob("8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c"));
        assert_eq!(upper, lower);
    }

    #[test]
    fn idempotency_key_separates_db_and_cluster_snapshots_of_one_name() {
        let db = idempotency_key(IdempotencyBasis::Snapshot { kind: ResourceKind::Rds, snapshot_id: "nightly" });
        let cluster =
            idempotency_key(IdempotencyBasis::Snapshot { kind: ResourceKind::Aurora, snapshot_id: "nightly" });
        assert_ne!(db, cluster);
    }

    #[test]
    fn idempotency_keys_fit_every_user_over_many_awkward_ids() {
        let mut g = Gen(0x5eed_0002);
        let mut seen: HashMap<String, String> = HashMap::new();
        for i in 0..5_000 {
            let id = g.awkward(120);
            let basis = match i % 3 {
                0 => IdempotencyBasis::BackupJob(&id),
                1 => IdempotencyBasis::CopyJob(&id),
                _ => IdempotencyBasis::Snapshot { kind: ResourceKind::Rds, snapshot_id: &id },
            };
            let key = idempotency_key(basis);
            assert!(key.len() <= MAX_IDEMPOTENCY_KEY_LEN, "{key}");
            assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{key}");
            assert!(!key.contains("--") && !key.ends_with('-'), "{key}");
            assert_eq!(key, idempotency_key(basis), "stable");
            let identity = format!("{}:{}", i % 3, id.to_ascii_lowercase());
            if let Some(previous) = seen.insert(key.clone(), identity.clone()) {
                assert_eq!(previous, identity, "two inputs share the key {key}");
            }
        }
    }

    #[test]
    fn export_identifier_of_an_automated_snapshot() {
        let id = export_task_identifier(ARN, DESTINATION);
        assert!(id.starts_with("rds-orders-postgres-2025-03-04-02-17-"), "{id}");
        assert!(is_valid_export_identifier(&id), "{id}");
        assert_eq!(id.len(), "rds-orders-postgres-2025-03-04-02-17-".len() + HASH_LEN);
    }

    #[test]
    fn export_identifier_of_an_aws_backup_cluster_snapshot() {
        let arn =
            "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:awsbackup:job-9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d";
        let id = export_task_identifier(arn, DESTINATION);
        assert!(id.starts_with("awsbackup-job-9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d-"), "{id}");
        assert!(is_valid_export_identifier(&id), "{id}");
    }

    #[test]
    fn export_identifier_gets_a_letter_before_leading_digits() {
        let id = export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:2025-03-04-final", DESTINATION);
        assert!(id.starts_with("export-2025-03-04-final-"), "{id}");
        assert!(is_valid_export_identifier(&id));
        let only_symbols = export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:::--::", DESTINATION);
        assert!(only_symbols.starts_with("export-"), "{only_symbols}");
        assert!(is_valid_export_identifier(&only_symbols), "{only_symbols}");
    }

    #[test]
    fn export_identifier_truncates_long_names_and_keeps_them_apart() {
        let long_a = format!("arn:aws:rds:eu-west-1:1:snapshot:{}-a", "very-long-name".repeat(20));
        let long_b = format!("arn:aws:rds:eu-west-1:1:snapshot:{}-b", "very-long-name".repeat(20));
        let (a, b) = (export_task_identifier(&long_a, DESTINATION), export_task_identifier(&long_b, DESTINATION));
        assert!(is_valid_export_identifier(&a) && is_valid_export_identifier(&b), "{a} {b}");
        assert_eq!(a.len(), MAX_EXPORT_TASK_IDENTIFIER_LEN.min(a.len()));
        assert_ne!(a, b, "the same first 51 characters, different snapshots");
    }

    #[test]
    fn export_identifier_is_per_destination() {
        let ours = export_task_identifier(ARN, DESTINATION);
        assert_eq!(ours, export_task_identifier(ARN, DESTINATION), "stable: a retry finds its export");
        assert_ne!(ours, export_task_identifier(ARN, "s3://other-archive/backups/rds/orders"), "another deployment's");
    }

    #[test]
    fn export_identifier_separates_db_and_cluster_snapshots_of_one_name() {
        let db = export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:nightly", DESTINATION);
        let cluster = export_task_identifier("arn:aws:rds:eu-west-1:1:cluster-snapshot:nightly", DESTINATION);
        assert_ne!(db, cluster);
    }

    #[test]
    fn export_identifier_separates_colon_and_hyphen_names() {
        let colon = export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:rds:db-2025-03-04-02-17", DESTINATION);
        let hyphen = export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:rds-db-2025-03-04-02-17", DESTINATION);
        assert_ne!(colon, hyphen);
    }

    #[test]
    fn export_identifier_ignores_the_case_an_operator_typed() {
        assert_eq!(
            export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:Nightly-DB", DESTINATION),
            export_task_identifier("arn:aws:rds:eu-west-1:1:snapshot:nightly-db", DESTINATION)
        );
    }

    #[test]
    fn export_identifiers_are_valid_stable_and_unique_over_many_awkward_names() {
        let mut g = Gen(0x5eed_0003);
        let mut seen: HashMap<String, String> = HashMap::new();
        for i in 0..10_000 {
            let name = g.awkward(300);
            let arn = match i % 3 {
                0 => format!("arn:aws:rds:eu-west-1:111122223333:snapshot:{name}"),
                1 => format!("arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:{name}"),
                _ => name.clone(),
            };
            let id = export_task_identifier(&arn, DESTINATION);
            assert!(is_valid_export_identifier(&id), "{arn:?} -> {id:?}");
            assert_eq!(id, export_task_identifier(&arn, DESTINATION), "stable");
            if let Some(previous) = seen.insert(id.clone(), arn.to_ascii_lowercase()) {
                assert_eq!(previous, arn.to_ascii_lowercase(), "two snapshots share {id}");
            }
        }
    }

    #[test]
    fn database_identifiers_follow_rds_rules_for_every_key() {
        let mut gen = Gen(0x05ee_d0db);
        for i in 0..2_000 {
            let snapshot = gen.awkward(80);
            let key = idempotency_key(IdempotencyBasis::Snapshot { kind: ResourceKind::Rds, snapshot_id: &snapshot });
            let id = database_identifier(&key);
            assert!(id.len() <= MAX_DATABASE_IDENTIFIER_LEN, "{i}: {id}");
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{id}");
            assert!(!id.contains("--") && !id.ends_with('-'), "{id}");
            assert_eq!(id, database_identifier(&key), "stable");
        }
    }

    #[test]
    fn database_identifiers_of_different_keys_differ() {
        let long = "backup-job-".to_string() + &"a".repeat(53);
        let other = "backup-job-".to_string() + &"a".repeat(52) + "b";
        assert_ne!(database_identifier(&long), database_identifier(&other), "a cut key keeps its hash");
        assert_eq!(
            database_identifier("backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c"),
            format!(
                "ba-backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c-{}",
                short_hash("backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c")
            )
        );
    }

    #[test]
    fn password_parameter_is_per_execution_and_a_valid_ssm_name() {
        let key = "rds-snapshot-orders-2025";
        let a = password_parameter_name(key, "arn:aws:states:eu-west-1:1:execution:m:e1");
        assert_ne!(a, password_parameter_name(key, "arn:aws:states:eu-west-1:1:execution:m:e2"));
        assert!(a.starts_with("/backup-archiver/rds-snapshot-orders-2025/") && a.ends_with("/master-password"), "{a}");
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)), "{a}");
    }

    #[test]
    fn client_token_is_short_stable_and_per_execution() {
        let key = "backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c";
        let a = client_token(key, "arn:exec:1");
        assert_eq!(a, client_token(key, "arn:exec:1"));
        assert_ne!(a, client_token(key, "arn:exec:2"), "a replay gets a volume of its own");
        assert!(a.len() <= MAX_CLIENT_TOKEN_LEN && a.is_ascii(), "{a}");
        let long = "x".repeat(64);
        assert!(client_token(&long, "e").len() <= MAX_CLIENT_TOKEN_LEN);
    }
}
