//! The temporary databases as the dump flow sees them: DescribeDBInstances and
//! DescribeDBClusters of one identifier, reduced to core's types, for `restore-database`,
//! `check-database` and `delete-database`.

use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::rds_dump::ExistingDatabase;
use archiver_core::naming::{TAG_EXECUTION, TAG_MANAGED_BY};
use aws_sdk_rds::types::{DbCluster, DbInstance, Tag};
use aws_sdk_rds::Client;

use crate::common::{AwsFailure, StepError};

/// The DB instance `identifier`; `None` when RDS says it does not exist.
pub async fn instance(client: &Client, identifier: &str) -> Result<Option<DbInstance>, StepError> {
    match client.describe_db_instances().db_instance_identifier(identifier).send().await {
        Ok(output) => Ok(output.db_instances().first().cloned()),
        Err(e) => not_found_is_none(AwsFailure::of(&format!("DescribeDBInstances {identifier}"), &e)),
    }
}

/// The DB cluster `identifier`; `None` when RDS says it does not exist.
pub async fn cluster(client: &Client, identifier: &str) -> Result<Option<DbCluster>, StepError> {
    match client.describe_db_clusters().db_cluster_identifier(identifier).send().await {
        Ok(output) => Ok(output.db_clusters().first().cloned()),
        Err(e) => not_found_is_none(AwsFailure::of(&format!("DescribeDBClusters {identifier}"), &e)),
    }
}

fn not_found_is_none<T>(failure: AwsFailure) -> Result<Option<T>, StepError> {
    if failure.class == AwsErrorClass::NotFound {
        Ok(None)
    } else {
        Err(failure.into_step_error(errors::DB_OPERATION_FAILED))
    }
}

/// A DB instance as the flow decides on it.
pub fn existing_instance(instance: &DbInstance) -> ExistingDatabase {
    existing(
        instance.db_instance_identifier().unwrap_or_default(),
        instance.db_instance_status().unwrap_or_default(),
        instance.tag_list(),
    )
}

/// A DB cluster as the flow decides on it.
pub fn existing_cluster(cluster: &DbCluster) -> ExistingDatabase {
    existing(
        cluster.db_cluster_identifier().unwrap_or_default(),
        cluster.status().unwrap_or_default(),
        cluster.tag_list(),
    )
}

fn existing(identifier: &str, status: &str, tags: &[Tag]) -> ExistingDatabase {
    let tag = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string);
    ExistingDatabase {
        identifier: identifier.to_string(),
        status: status.to_string(),
        execution: tag(TAG_EXECUTION),
        managed_by: tag(TAG_MANAGED_BY),
    }
}

/// RDS's tags from core's pairs.
pub fn tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}
