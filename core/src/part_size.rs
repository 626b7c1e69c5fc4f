//! Multipart part sizes: which size each part of an object gets, so that any source fits in S3's
//! 10,000 parts while memory (parts in flight x part size) stays small for ordinary archives.
//!
//! Parts of one upload may differ in size (all but the last must be at least 5 MiB), so the
//! schedule starts at the configured part size and doubles every `doubling_every` parts. For a
//! source whose worst-case output fits in 10,000 parts of the base size the schedule is flat; for a
//! larger one it doubles just often enough. Memory grows only if the output really gets that big,
//! which a compressed archive of a mostly empty volume never does.
//!
//! S3 limits: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>

use bytesize::ByteSize;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * GIB;
/// S3's largest part number.
pub const MAX_PARTS: u32 = 10_000;
/// The largest object this schedule can write: every part at the maximum size.
pub const MAX_OBJECT_SIZE: u64 = MAX_PARTS as u64 * MAX_PART_SIZE;
/// 16 MiB parts amortise the per-request cost while four in flight cost only 64 MiB.
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;

/// The worst-case compressed size of `source_bytes` of input. Deflate and zstd add a few bytes per
/// block on incompressible data and tar adds a 512-byte header per entry; 1/64 plus 64 MiB covers
/// both with a wide margin. The uploader still refuses to write past the schedule's capacity.
pub fn worst_case_output(source_bytes: u64) -> u64 {
    source_bytes.saturating_add(source_bytes / 64).saturating_add(64 * MIB)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartSizeError {
    #[error("part size {} is below S3's minimum of 5 MiB", ByteSize::b(*size))]
    TooSmall { size: u64 },
    #[error("part size {} is above S3's maximum of 5 GiB", ByteSize::b(*size))]
    TooLarge { size: u64 },
    #[error("a source of {} can produce more than S3's largest object ({})", ByteSize::b(*source_bytes), ByteSize::b(MAX_OBJECT_SIZE))]
    SourceTooLarge { source_bytes: u64 },
}

/// The size of every part of one multipart upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartSchedule {
    /// Size of the first parts.
    pub base: u64,
    /// The part size doubles after every this many parts (up to 5 GiB); 10,000 means never.
    pub doubling_every: u32,
}

impl PartSchedule {
    /// The flattest schedule starting at `base` whose 10,000 parts hold the worst-case output of
    /// `source_bytes`.
    pub fn for_source(source_bytes: u64, base: u64) -> Result<Self, PartSizeError> {
        if base < MIN_PART_SIZE {
            return Err(PartSizeError::TooSmall { size: base });
        }
        if base > MAX_PART_SIZE {
            return Err(PartSizeError::TooLarge { size: base });
        }
        let needed = worst_case_output(source_bytes);
        let mut doubling_every = MAX_PARTS;
        loop {
            let schedule = PartSchedule { base, doubling_every };
            if schedule.capacity() >= needed {
                return Ok(schedule);
            }
            if doubling_every == 1 {
                return Err(PartSizeError::SourceTooLarge { source_bytes });
            }
            doubling_every = (doubling_every / 2).max(1);
        }
    }

    /// The size of part `part_number` (1-based).
    pub fn part_size(&self, part_number: u32) -> u64 {
        let doublings = (part_number.saturating_sub(1) / self.doubling_every).min(32);
        self.base.saturating_mul(1u64 << doublings).min(MAX_PART_SIZE)
    }

    /// The most bytes 10,000 parts of this schedule hold.
    pub fn capacity(&self) -> u64 {
        (1..=MAX_PARTS).map(|n| self.part_size(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1024 * GIB;

    #[test]
    fn small_sources_get_a_flat_schedule_of_the_base_size() {
        let s = PartSchedule::for_source(100 * GIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!(s.doubling_every, MAX_PARTS);
        assert_eq!(s.part_size(1), DEFAULT_PART_SIZE);
        assert_eq!(s.part_size(MAX_PARTS), DEFAULT_PART_SIZE);
    }

    #[test]
    fn part_size_keeps_parts_under_10000_for_every_source_size() {
        let mut size = 0u64;
        while size < MAX_OBJECT_SIZE {
            for base in [MIN_PART_SIZE, DEFAULT_PART_SIZE, 64 * MIB] {
                match PartSchedule::for_source(size, base) {
                    Ok(s) => assert!(s.capacity() >= worst_case_output(size), "{size} {base}"),
                    Err(PartSizeError::SourceTooLarge { .. }) => {
                        assert!(worst_case_output(size) > MAX_OBJECT_SIZE - MAX_PART_SIZE * 10)
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            size = size * 3 / 2 + GIB;
        }
    }

    #[test]
    fn large_sources_start_small_and_double() {
        let s = PartSchedule::for_source(2 * TIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!(s.part_size(1), DEFAULT_PART_SIZE);
        assert!(s.doubling_every < MAX_PARTS);
        assert_eq!(s.part_size(s.doubling_every + 1), 2 * DEFAULT_PART_SIZE);
        // The flattest schedule that fits: doubling half as often would not.
        let flatter = PartSchedule { doubling_every: s.doubling_every * 2, ..s };
        assert!(flatter.capacity() < worst_case_output(2 * TIB));
    }

    #[test]
    fn parts_never_exceed_the_s3_maximum() {
        let s = PartSchedule { base: GIB, doubling_every: 1 };
        assert_eq!(s.part_size(MAX_PARTS), MAX_PART_SIZE);
        assert_eq!(s.capacity(), (1 + 2 + 4) * GIB + 9_997 * MAX_PART_SIZE);
    }

    #[test]
    fn rejects_part_sizes_outside_s3_limits() {
        assert_eq!(PartSchedule::for_source(GIB, MIB), Err(PartSizeError::TooSmall { size: MIB }));
        assert_eq!(
            PartSchedule::for_source(GIB, 6 * GIB),
            Err(PartSizeError::TooLarge { size: 6 * GIB })
        );
    }

    #[test]
    fn rejects_sources_larger_than_the_largest_object() {
        assert_eq!(
            PartSchedule::for_source(MAX_OBJECT_SIZE, DEFAULT_PART_SIZE),
            Err(PartSizeError::SourceTooLarge { source_bytes: MAX_OBJECT_SIZE })
        );
    }
}
