//! Part and segment sizes of the multipart uploads: every part has the configured size (the last
//! part of an object may be shorter), and a stream longer than the segment size continues in the
//! next segment object. Parts no longer grow with the source, so the uploader's memory is the same
//! for a 1 GiB and a 16 TiB volume, and 10,000 parts always suffice because a segment never holds
//! more than `segment size / part size` of them.
//!
//! S3 limits: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>

use bytesize::ByteSize;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * GIB;
/// S3's largest part number.
pub const MAX_PARTS: u32 = 10_000;
/// S3's largest object.
pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;
/// 16 MiB parts amortise the per-request cost while the uploader's buffers (four parts in flight and
/// the one being filled) cost only 80 MiB.
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
/// 64 GiB segments: 4,096 parts of the default size, well within 10,000 (parts down to 6.6 MiB
/// still fit); a 16 TiB gp3 volume, EBS's largest, makes at most 256 segments; and one segment is
/// still a plain GET away from a reader without this tool. When the part size is too small for
/// 10,000 parts to hold 64 GiB, the default shrinks to what 10,000 parts hold.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * GIB;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartSizeError {
    #[error("part size {} is below S3's minimum of 5 MiB", ByteSize::b(*size))]
    TooSmall { size: u64 },
    #[error("part size {} is above S3's maximum of 5 GiB", ByteSize::b(*size))]
    TooLarge { size: u64 },
    #[error("segment size {} is smaller than the part size {}", ByteSize::b(*segment_size), ByteSize::b(*part_size))]
    SegmentBelowPart { segment_size: u64, part_size: u64 },
    #[error("segment size {} is above S3's largest object (5 TiB)", ByteSize::b(*segment_size))]
    SegmentTooLarge { segment_size: u64 },
    #[error(
        "segment size {} needs {parts} parts of {}, more than S3's {MAX_PARTS}: raise --part-size or lower --segment-size",
        ByteSize::b(*segment_size),
        ByteSize::b(*part_size)
    )]
    TooManyParts { segment_size: u64, part_size: u64, parts: u64 },
}

/// The part size and segment size of every object of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSizes {
    /// Every part but an object's last has exactly this size.
    pub part_size: u64,
    /// No segment object is larger; a longer stream continues in the next segment.
    pub segment_size: u64,
}

impl UploadSizes {
    /// Checks `part_size` against S3's limits and chooses the segment size: `segment_size` when
    /// given (refused when 10,000 parts cannot hold it), else [`DEFAULT_SEGMENT_SIZE`] or what
    /// 10,000 parts hold, whichever is smaller.
    pub fn choose(part_size: u64, segment_size: Option<u64>) -> Result<Self, PartSizeError> {
        if part_size < MIN_PART_SIZE {
            return Err(PartSizeError::TooSmall { size: part_size });
        }
        if part_size > MAX_PART_SIZE {
            return Err(PartSizeError::TooLarge { size: part_size });
        }
        let segment_size = match segment_size {
            Some(size) => size,
            None => DEFAULT_SEGMENT_SIZE.min(part_size * MAX_PARTS as u64),
        };
        if segment_size < part_size {
            return Err(PartSizeError::SegmentBelowPart { segment_size, part_size });
        }
        if segment_size > MAX_OBJECT_SIZE {
            return Err(PartSizeError::SegmentTooLarge { segment_size });
        }
        let sizes = UploadSizes { part_size, segment_size };
        let parts = sizes.parts_per_segment();
        if parts > MAX_PARTS as u64 {
            return Err(PartSizeError::TooManyParts { segment_size, part_size, parts });
        }
        Ok(sizes)
    }

    /// The most parts one segment can need.
    pub fn parts_per_segment(&self) -> u64 {
        self.segment_size.div_ceil(self.part_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_in_10000_parts() {
        let sizes = UploadSizes::choose(DEFAULT_PART_SIZE, None).unwrap();
        assert_eq!(sizes, UploadSizes { part_size: DEFAULT_PART_SIZE, segment_size: DEFAULT_SEGMENT_SIZE });
        assert_eq!(sizes.parts_per_segment(), 4096);
    }

    #[test]
    fn part_size_keeps_parts_under_10000_for_every_part_size() {
        let mut part_size = MIN_PART_SIZE;
        while part_size <= MAX_PART_SIZE {
            let sizes = UploadSizes::choose(part_size, None).unwrap();
            assert_eq!(sizes.part_size, part_size, "parts keep the configured size");
            assert!(sizes.parts_per_segment() <= MAX_PARTS as u64, "{sizes:?}");
            assert!(sizes.segment_size <= DEFAULT_SEGMENT_SIZE);
            part_size = part_size * 5 / 4 + 1;
        }
    }

    #[test]
    fn small_parts_shrink_the_default_segment() {
        let sizes = UploadSizes::choose(MIN_PART_SIZE, None).unwrap();
        assert_eq!(sizes.segment_size, MIN_PART_SIZE * 10_000);
        assert_eq!(sizes.parts_per_segment(), 10_000);
    }

    #[test]
    fn rejects_an_explicit_segment_that_needs_more_than_10000_parts() {
        assert_eq!(
            UploadSizes::choose(MIN_PART_SIZE, Some(DEFAULT_SEGMENT_SIZE)),
            Err(PartSizeError::TooManyParts {
                segment_size: DEFAULT_SEGMENT_SIZE,
                part_size: MIN_PART_SIZE,
                parts: 13_108
            })
        );
        let e = UploadSizes::choose(MIN_PART_SIZE, Some(DEFAULT_SEGMENT_SIZE)).unwrap_err().to_string();
        assert!(e.contains("--part-size") && e.contains("13108"), "{e}");
    }

    #[test]
    fn rejects_segments_below_the_part_size_or_above_the_largest_object() {
        assert_eq!(
            UploadSizes::choose(8 * MIB, Some(6 * MIB)),
            Err(PartSizeError::SegmentBelowPart { segment_size: 6 * MIB, part_size: 8 * MIB })
        );
        assert_eq!(
            UploadSizes::choose(MAX_PART_SIZE, Some(6 * TIB)),
            Err(PartSizeError::SegmentTooLarge { segment_size: 6 * TIB })
        );
        assert_eq!(UploadSizes::choose(8 * MIB, Some(64 * MIB)).unwrap().parts_per_segment(), 8);
    }

    #[test]
    fn rejects_part_sizes_outside_s3_limits() {
        assert_eq!(UploadSizes::choose(MIB, None), Err(PartSizeError::TooSmall { size: MIB }));
        assert_eq!(UploadSizes::choose(6 * GIB, None), Err(PartSizeError::TooLarge { size: 6 * GIB }));
    }
}
