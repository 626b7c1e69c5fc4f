//! `s3://bucket/prefix` destinations, parsed once at the edge so nothing downstream sees a raw URL.

use std::fmt;
use std::str::FromStr;

/// A bucket and a key prefix (without leading or trailing `/`, possibly empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum S3LocationError {
    #[error("malformed S3 URL {url:?}: it must start with s3://")]
    Scheme { url: String },
    #[error("malformed S3 URL {url:?}: the bucket name is missing")]
    MissingBucket { url: String },
    #[error("malformed S3 URL {url:?}: bucket {bucket:?} is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit)")]
    InvalidBucket { url: String, bucket: String },
    #[error("malformed S3 URL {url:?}: the prefix contains an empty path segment")]
    EmptySegment { url: String },
}

impl S3Location {
    /// The key of `name` under this prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }

    /// The URL of `key` in this bucket, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// Bucket naming rules: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn is_valid_bucket(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

impl FromStr for S3Location {
    type Err = S3LocationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| S3LocationError::Scheme { url: url.to_string() })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(S3LocationError::MissingBucket { url: url.to_string() });
        }
        if !is_valid_bucket(bucket) {
            return Err(S3LocationError::InvalidBucket { url: url.to_string(), bucket: bucket.to_string() });
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && prefix.split('/').any(str::is_empty) {
            return Err(S3LocationError::EmptySegment { url: url.to_string() });
        }
        Ok(S3Location { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_nested_prefix() {
        let loc: S3Location = "s3://my-bucket/archives/vol-1/".parse().unwrap();
        assert_eq!(loc.bucket, "my-bucket");
        assert_eq!(loc.prefix, "archives/vol-1");
        assert_eq!(loc.key("manifest.json"), "archives/vol-1/manifest.json");
        assert_eq!(loc.to_string(), "s3://my-bucket/archives/vol-1");
    }

    #[test]
    fn parses_bucket_without_prefix() {
        let loc: S3Location = "s3://my-bucket".parse().unwrap();
        assert_eq!(loc.prefix, "");
        assert_eq!(loc.key("manifest.json"), "manifest.json");
        assert_eq!(loc.to_string(), "s3://my-bucket");
    }

    #[test]
    fn rejects_other_schemes() {
        assert!(matches!("https://b/p".parse::<S3Location>(), Err(S3LocationError::Scheme { .. })));
        assert!(matches!("bucket/p".parse::<S3Location>(), Err(S3LocationError::Scheme { .. })));
    }

    #[test]
    fn rejects_missing_bucket() {
        assert!(matches!("s3:///p".parse::<S3Location>(), Err(S3LocationError::MissingBucket { .. })));
        assert!(matches!("s3://".parse::<S3Location>(), Err(S3LocationError::MissingBucket { .. })));
    }

    #[test]
    fn rejects_invalid_bucket_names() {
        for bad in ["ab", "Upper", "under_score", "-dash", "dash-", "a..b", &"x".repeat(64)] {
            let url = format!("s3://{bad}/p");
            assert!(matches!(url.parse::<S3Location>(), Err(S3LocationError::InvalidBucket { .. })), "{url} accepted");
        }
    }

    #[test]
    fn rejects_empty_prefix_segments() {
        assert!(matches!("s3://bucket/a//b".parse::<S3Location>(), Err(S3LocationError::EmptySegment { .. })));
    }

    #[test]
    fn error_message_names_the_url() {
        let err = "s3://B/p".parse::<S3Location>().unwrap_err();
        assert!(err.to_string().contains("s3://B/p"), "{err}");
    }
}
