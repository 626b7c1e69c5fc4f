//! Amazon Resource Names, parsed once where an event enters so the planner matches on typed parts
//! instead of slicing strings in three places.
//!
//! Format: `arn:partition:service:region:account-id:resource`, where `resource` may itself hold
//! colons (`snapshot:rds:orders-2025-03-04-04-00`) and slashes (`table/T/backup/0156…`), and where
//! region and account may be empty (an EBS snapshot ARN has no account:
//! `arn:aws:ec2:eu-west-1::snapshot/snap-…`).
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html>

use std::fmt;
use std::str::FromStr;

/// A parsed ARN. It prints back exactly as it was read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`: needed to build sibling ARNs in the same partition.
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    /// Everything after the fifth colon, kept whole.
    pub resource: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ArnError {
    #[error("{value:?} is not an ARN: it must start with `arn:`")]
    NotAnArn { value: String },
    #[error(
        "{value:?} is not an ARN: it needs six colon-separated parts (arn:partition:service:region:account:resource)"
    )]
    TooFewParts { value: String },
    #[error("{value:?} is not an ARN: the {part} is empty")]
    EmptyPart { value: String, part: &'static str },
    #[error("{value:?} is not an ARN: it contains whitespace")]
    Whitespace { value: String },
}

impl Arn {
    /// The resource type and id: `volume/vol-1` gives (`volume`, `vol-1`), `snapshot:rds:x` gives
    /// (`snapshot`, `rds:x`). The separator is whichever of `/` and `:` comes first, because AWS
    /// uses both and ids may contain the other one.
    pub fn resource_type_and_id(&self) -> (&str, &str) {
        match self.resource.find(['/', ':']) {
            Some(at) => (&self.resource[..at], &self.resource[at + 1..]),
            None => ("", &self.resource),
        }
    }

    /// True when this ARN names a resource of `service` whose type is `resource_type`.
    pub fn is(&self, service: &str, resource_type: &str) -> bool {
        self.service == service && self.resource_type_and_id().0 == resource_type
    }

    /// The id of a resource of `service`/`resource_type`, or `None` for any other ARN.
    pub fn id_of(&self, service: &str, resource_type: &str) -> Option<&str> {
        let (kind, id) = self.resource_type_and_id();
        (self.service == service && kind == resource_type && !id.is_empty()).then_some(id)
    }
}

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if !value.starts_with("arn:") {
            return Err(ArnError::NotAnArn { value: value.to_string() });
        }
        if value.chars().any(char::is_whitespace) {
            return Err(ArnError::Whitespace { value: value.to_string() });
        }
        let mut parts = value.splitn(6, ':');
        let _arn = parts.next();
        let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ArnError::TooFewParts { value: value.to_string() });
        };
        for (part, text) in [("partition", partition), ("service", service), ("resource", resource)] {
            if text.is_empty() {
                return Err(ArnError::EmptyPart { value: value.to_string(), part });
            }
        }
        Ok(Arn {
            partition: partition.to_string(),
            service: service.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource: resource.to_string(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:{}:{}:{}:{}", self.partition, self.service, self.region, self.account, self.resource)
    }
}

impl serde::Serialize for Arn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Arn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The partition a region belongs to, for building ARNs when an input named only an id.
/// <https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html>
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ebs_snapshot_arn_without_account() {
        let arn: Arn = "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890".parse().unwrap();
        assert_eq!(arn.service, "ec2");
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.account, "");
        assert_eq!(arn.resource_type_and_id(), ("snapshot", "snap-0a1b2c3d4e5f67890"));
        assert_eq!(arn.id_of("ec2", "snapshot"), Some("snap-0a1b2c3d4e5f67890"));
    }

    #[test]
    fn keeps_colons_inside_rds_snapshot_ids() {
        let arn: Arn =
            "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:orders-postgres-2025-03-04-04-00".parse().unwrap();
        assert_eq!(arn.resource_type_and_id(), ("snapshot", "rds:orders-postgres-2025-03-04-04-00"));
        assert!(arn.is("rds", "snapshot"));
        assert!(!arn.is("rds", "cluster-snapshot"));
    }

    #[test]
    fn splits_dynamodb_backup_at_the_first_slash() {
        let arn: Arn =
            "arn:aws:dynamodb:us-east-1:111122223333:table/Orders/backup/01568804569000-d3306d76".parse().unwrap();
        assert_eq!(arn.resource_type_and_id(), ("table", "Orders/backup/01568804569000-d3306d76"));
    }

    #[test]
    fn prints_back_exactly() {
        for text in [
            "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890",
            "arn:aws-cn:rds:cn-north-1:111122223333:cluster-snapshot:awsbackup:job-1",
            "arn:aws:backup:eu-west-1:111122223333:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45",
        ] {
            assert_eq!(text.parse::<Arn>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_strings_that_are_not_arns() {
        assert!(matches!("snap-0123".parse::<Arn>(), Err(ArnError::NotAnArn { .. })));
        assert!(matches!("arn:aws:ec2".parse::<Arn>(), Err(ArnError::TooFewParts { .. })));
        assert!(matches!("arn:aws:ec2:r:a:".parse::<Arn>(), Err(ArnError::EmptyPart { part: "resource", .. })));
        assert!(matches!("arn::ec2:r:a:x".parse::<Arn>(), Err(ArnError::EmptyPart { part: "partition", .. })));
        assert!(matches!("arn:aws:ec2:r:a:vol ume".parse::<Arn>(), Err(ArnError::Whitespace { .. })));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let arn: Arn = "arn:aws:rds:eu-west-1:1:db:x".parse().unwrap();
        let json = serde_json::to_string(&arn).unwrap();
        assert_eq!(json, "\"arn:aws:rds:eu-west-1:1:db:x\"");
        assert_eq!(serde_json::from_str::<Arn>(&json).unwrap(), arn);
        assert!(serde_json::from_str::<Arn>("\"nope\"").is_err());
    }

    #[test]
    fn partition_follows_the_region() {
        assert_eq!(partition_of_region("eu-west-1"), "aws");
        assert_eq!(partition_of_region("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of_region("us-gov-west-1"), "aws-us-gov");
    }
}
