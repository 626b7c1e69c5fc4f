//! What an AWS error code means for a flow: retry it, treat it as "already done", or give up.
//! The Lambdas pass in the code and HTTP status their SDK reported; this module decides, so the
//! one list of throttling and transient codes is shared by every step.
//!
//! The SDK already retries these codes a few times (standard retry mode, 3 attempts) before a
//! Lambda sees them; what reaches this function is what the SDK could not absorb, and the ASL's
//! `Retry` on [`crate::errors::RETRYABLE`] backs off much longer than the SDK would.

/// How a step treats an AWS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorClass {
    /// Throttling, a 5xx, a timeout or a dropped connection: worth retrying later.
    Transient,
    /// The resource does not exist (any more).
    NotFound,
    /// Anything else: a permission, a quota, a parameter, a state. Retrying will not help.
    Permanent,
}

/// Throttling codes across the services the flows call. EC2 says `RequestLimitExceeded`, most
/// JSON services `ThrottlingException`, S3 `SlowDown`.
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html>
/// <https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html>
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
    "PriorRequestNotComplete",
    "LimitExceededException",
];

/// Codes of transient server-side failures (some are sent with a 4xx status).
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceFailureException",
];

/// Codes that say the resource is gone, per service: EC2 volumes and snapshots, AWS Backup, S3,
/// DynamoDB tables, backups and exports, RDS instances, clusters, snapshots and export tasks,
/// SSM parameters.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/CommonErrors.html>
const NOT_FOUND_CODES: &[&str] = &[
    "InvalidVolume.NotFound",
    "InvalidSnapshot.NotFound",
    "ResourceNotFoundException",
    "TableNotFoundException",
    "BackupNotFoundException",
    "ExportNotFoundException",
    "NoSuchKey",
    "NoSuchBucket",
    "NotFound",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
    "ExportTaskNotFound",
    "ExportTaskNotFoundFault",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "ParameterNotFound",
];

/// Classifies an AWS error by its code (when the service sent one) and its HTTP status (absent
/// when no response arrived at all: a timeout or a dropped connection, which is transient).
pub fn classify(code: Option<&str>, http_status: Option<u16>) -> AwsErrorClass {
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) || TRANSIENT_CODES.contains(&code) => {
            return AwsErrorClass::Transient
        }
        Some(code) if NOT_FOUND_CODES.contains(&code) => return AwsErrorClass::NotFound,
        _ => {}
    }
    match http_status {
        None => AwsErrorClass::Transient,
        Some(429) => AwsErrorClass::Transient,
        Some(status) if status >= 500 => AwsErrorClass::Transient,
        Some(404) if code.is_none() => AwsErrorClass::NotFound,
        Some(_) => AwsErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_transient_whatever_the_status() {
        assert_eq!(classify(Some("RequestLimitExceeded"), Some(400)), AwsErrorClass::Transient);
        assert_eq!(classify(Some("ThrottlingException"), Some(400)), AwsErrorClass::Transient);
        assert_eq!(classify(Some("SlowDown"), Some(503)), AwsErrorClass::Transient);
    }

    #[test]
    fn server_errors_and_lost_responses_are_transient() {
        assert_eq!(classify(Some("Whatever"), Some(503)), AwsErrorClass::Transient);
        assert_eq!(classify(None, Some(500)), AwsErrorClass::Transient);
        assert_eq!(classify(None, None), AwsErrorClass::Transient, "timeout or dropped connection");
        assert_eq!(classify(None, Some(429)), AwsErrorClass::Transient);
    }

    #[test]
    fn missing_resources_are_not_found() {
        assert_eq!(classify(Some("InvalidVolume.NotFound"), Some(400)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("InvalidSnapshot.NotFound"), Some(400)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("ResourceNotFoundException"), Some(400)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("DBSnapshotNotFound"), Some(404)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("DBClusterSnapshotNotFoundFault"), Some(404)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("DBInstanceNotFound"), Some(404)), AwsErrorClass::NotFound);
        assert_eq!(classify(Some("ParameterNotFound"), Some(400)), AwsErrorClass::NotFound);
        assert_eq!(classify(None, Some(404)), AwsErrorClass::NotFound, "a HEAD has no body, hence no code");
    }

    #[test]
    fn client_errors_are_permanent() {
        assert_eq!(classify(Some("UnauthorizedOperation"), Some(403)), AwsErrorClass::Permanent);
        assert_eq!(classify(Some("InvalidParameterValue"), Some(400)), AwsErrorClass::Permanent);
        assert_eq!(classify(Some("VolumeInUse"), Some(400)), AwsErrorClass::Permanent);
    }
}
