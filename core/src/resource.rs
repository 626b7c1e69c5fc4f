//! The kinds of resource this project archives and the methods a database snapshot is archived
//! by: the words every event, plan and flow shares, so they sit below all of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::arn::Arn;

/// The kinds of resource this project archives. Everything else AWS Backup protects (EFS, EC2
/// instances, FSx, S3, …) is skipped with [`SkipReason::UnsupportedResourceType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    /// An EBS volume, archived from its snapshot through a temporary volume.
    #[serde(rename = "ebs")]
    Ebs,
    /// An RDS DB instance (DB snapshot).
    #[serde(rename = "rds")]
    Rds,
    /// A DB cluster (cluster snapshot): Aurora, and also RDS Multi-AZ DB clusters, whose
    /// snapshots take the same paths.
    #[serde(rename = "aurora")]
    Aurora,
    /// A DynamoDB table.
    #[serde(rename = "dynamodb")]
    DynamoDb,
}

impl ResourceKind {
    /// The name in keys and JSON: `ebs`, `rds`, `aurora`, `dynamodb`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Ebs => "ebs",
            ResourceKind::Rds => "rds",
            ResourceKind::Aurora => "aurora",
            ResourceKind::DynamoDb => "dynamodb",
        }
    }

    /// From AWS Backup's `resourceType` (`EBS`, `RDS`, `Aurora`, `DynamoDB`).
    /// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_BackupJob.html>
    pub fn from_backup_resource_type(resource_type: &str) -> Option<Self> {
        match resource_type {
            "EBS" => Some(ResourceKind::Ebs),
            "RDS" => Some(ResourceKind::Rds),
            "Aurora" => Some(ResourceKind::Aurora),
            "DynamoDB" => Some(ResourceKind::DynamoDb),
            _ => None,
        }
    }

    /// From the ARN of the backed-up resource, for AWS Backup's SNS prose, which names no type.
    pub fn from_resource_arn(arn: &Arn) -> Option<Self> {
        if arn.is("ec2", "volume") {
            Some(ResourceKind::Ebs)
        } else if arn.is("rds", "db") {
            Some(ResourceKind::Rds)
        } else if arn.is("rds", "cluster") {
            Some(ResourceKind::Aurora)
        } else if arn.is("dynamodb", "table") {
            Some(ResourceKind::DynamoDb)
        } else {
            None
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a database snapshot becomes an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbMethod {
    /// RDS's snapshot export to S3 (Parquet), or DynamoDB's export to S3: no compute of ours.
    Export,
    /// Restore to a temporary instance and run `pg_dump` / `mysqldump` in the worker: restorable
    /// with the database's own tools.
    Dump,
}

impl DbMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DbMethod::Export => "export",
            DbMethod::Dump => "dump",
        }
    }
}

impl fmt::Display for DbMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DbMethod {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "export" => Ok(DbMethod::Export),
            "dump" => Ok(DbMethod::Dump),
            other => Err(format!("{other:?} is not a method (expected \"export\" or \"dump\")")),
        }
    }
}

/// Engines whose snapshots RDS exports to S3. `aurora` (Aurora MySQL 1, end of life in 2023) is
/// left out on purpose: its clusters are dumped, which works for every MySQL 5.6 compatible.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ExportSnapshot.html>
const EXPORT_ENGINES: &[&str] = &["postgres", "mysql", "mariadb", "aurora-postgresql", "aurora-mysql"];
/// Engines the worker dumps: `pg_dump` for the PostgreSQL family, `mysqldump` for the MySQL
/// family (`aurora` is Aurora MySQL 1, compatible with MySQL 5.6).
const DUMP_ENGINES: &[&str] = &["postgres", "mysql", "mariadb", "aurora-postgresql", "aurora-mysql", "aurora"];

/// The methods possible for an RDS engine, export first because it is the default where it
/// works (no instance of ours to start, pay for and clean up).
pub fn supported_methods(engine: &str) -> Vec<DbMethod> {
    let mut methods = Vec::new();
    if EXPORT_ENGINES.contains(&engine) {
        methods.push(DbMethod::Export);
    }
    if DUMP_ENGINES.contains(&engine) {
        methods.push(DbMethod::Dump);
    }
    methods
}
