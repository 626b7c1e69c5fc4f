//! The manifest: one JSON document, uploaded last under an archive's prefix, that lists every
//! object with its size and checksum. A prefix without one is not an archive.
//!
//! Field names are an interface (`verify`, `restore`, the `verify` Lambda and people read them):
//! change them only by adding fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest's object name under the archive prefix.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Bumped only on an incompatible change of this document.
pub const MANIFEST_FORMAT: u32 = 1;

/// How a filesystem or device was archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveMode {
    /// A tar stream of the mounted filesystem's files with all their metadata.
    Files,
    /// The device's bytes, restorable bit for bit.
    Raw,
    /// A database dump written by the engine's own tool; [`ArchivedObject::dump`] says which.
    Dump,
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeRequest {
    /// Files where the filesystem mounts, raw bytes where it does not.
    #[default]
    Auto,
    /// Files only: a filesystem that does not mount fails the archive.
    Files,
    /// Raw bytes of every partition (or the whole disk).
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip members, readable by gzip, pigz and tar -z.
    #[default]
    Gzip,
    /// zstd frames, readable by zstd and tar --zstd.
    Zstd,
}

impl Compression {
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }

    /// The level used when none is given: gzip's own default, and zstd's.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        }
    }

    pub fn valid_levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=19,
        }
    }
}

/// The device that was archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The path given to the tool (an image file or a block device).
    pub device: String,
    /// Size of the whole device in bytes.
    pub size: u64,
    /// `gpt` or `dos` when the device has a partition table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_table: Option<String>,
    /// `sfdisk --dump` of the partition table, enough to recreate the layout with `sfdisk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_table_dump: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The database server of a dump archive. `device` is then its `host:port` and `size` the
    /// dumps' total uncompressed bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSource>,
}

/// The server a dump archive was taken from (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSource {
    /// The RDS engine name, as given (`postgres`, `aurora-mysql`, ...).
    pub engine: String,
    pub host: String,
    pub port: u16,
    pub user: String,
}

/// How a dump object is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// `pg_dump --format=custom`: decompress, then `pg_restore`.
    Custom,
    /// SQL text: decompress, then `psql` or `mysql`.
    Sql,
}

/// What one dump object holds and which tool wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpInfo {
    /// The RDS engine name, as given.
    pub engine: String,
    /// The dumped database; `None` for the server's roles and tablespaces (`pg_dumpall --globals-only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The program that wrote it (`pg_dump`, `pg_dumpall`, `mysqldump`).
    pub tool: String,
    /// Its `--version` line: a restore needs this version or a newer one.
    pub tool_version: String,
    pub format: DumpFormat,
}

/// A partition as the partition table describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The partition's number in its table (1-based, as in `/dev/sda1`).
    pub number: u32,
    /// Offset from the start of the device, in bytes.
    pub start: u64,
    pub size: u64,
    /// GPT type GUID or MBR type byte (`0x83`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// How many entries of each kind a tar object holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryCounts {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Entries stored as links to an earlier entry with the same inode.
    pub hard_links: u64,
    /// FIFOs and character and block devices.
    pub special: u64,
    /// Sockets, which tar cannot store and which mean nothing once their server is gone.
    pub skipped_sockets: u64,
    /// Bytes of file content read.
    pub file_bytes: u64,
    /// Bytes the archived entries occupy on the filesystem (their allocated blocks, each inode
    /// once): what [`check_files_shortfall`] compares with the filesystem's used bytes. 0 in
    /// manifests written before it was recorded.
    #[serde(default)]
    pub allocated_bytes: u64,
}

/// One object of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedObject {
    pub key: String,
    pub mode: ArchiveMode,
    pub compression: Compression,
    /// `None` for a whole-disk object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionInfo>,
    /// The filesystem type as blkid names it, when one was recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Why a device was archived raw in auto mode (unknown filesystem, failed mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_reason: Option<String>,
    /// Size of the stored object; equal to `bytes_out`.
    pub size: u64,
    /// Hex SHA-256 of the stored (compressed) object.
    pub sha256: String,
    /// Bytes read from the device (raw) or the tar stream length (files).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Hex SHA-256 of the uncompressed bytes; a raw restore must reproduce it.
    pub content_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<EntryCounts>,
    /// For a `dump` object: the database and the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpInfo>,
    /// Files mode: the filesystem's used bytes (statfs: blocks less free blocks) when it was
    /// archived, compared with `entries.allocated_bytes` so that a mount of the wrong device or
    /// an empty directory cannot pass for the filesystem ([`check_files_shortfall`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_used_bytes: Option<u64>,
    /// The stored objects that hold this object's stream, in order: one, or several when the
    /// stream was longer than the segment size. Each is a valid gzip or zstd stream alone and
    /// their concatenation is the whole stream; `size` and `sha256` above are those of the
    /// concatenation, and `key` is the first segment's. Absent in manifests written before
    /// segments existed: the object is then the one stored object `key`, with no checksum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// Files mode: the object's index ([`crate::index`]), uploaded before this manifest, which
    /// `ls`, `find`, `get` and `mount` read instead of the whole stream. Absent in manifests
    /// written before indexes existed: those tools then say so, and `restore` still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexObject>,
}

/// The index object of a tar object: always in a storage class readable at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexObject {
    pub key: String,
    pub size: u64,
    /// Hex SHA-256 of the index object, checked before it is trusted.
    pub sha256: String,
    /// The tar entries it lists.
    pub entries: u64,
    /// The gzip members or zstd frames it locates.
    pub members: u64,
}

/// The key of the index of the tar object `key`: its compression extension replaced by `index`
/// (`part1.tar.gz` -> `part1.tar.index`), so that `part1.tar.gz*` still lists only segments.
pub fn index_key(key: &str, compression: Compression) -> String {
    let stem = key.strip_suffix(&format!(".{}", compression.extension())).unwrap_or(key);
    format!("{stem}.index")
}

/// One stored object of an archive object's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub key: String,
    pub size: u64,
    /// The full-object CRC64NVME as S3 reports it (base64 of the 8 big-endian bytes): computed by
    /// the worker while streaming, sent with CompleteMultipartUpload (checksum type FULL_OBJECT),
    /// so S3 refused the object if its bytes differed. `None` only for a segment synthesised from a
    /// manifest written before checksums existed ([`ArchivedObject::stored_segments`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_crc64nvme: Option<String>,
}

impl ArchivedObject {
    /// The stored objects to check or read, in order: the manifest's segments, or for a manifest
    /// written before segments the one object `key` of `size` bytes, without a checksum.
    pub fn stored_segments(&self) -> Vec<Segment> {
        if self.segments.is_empty() {
            return vec![Segment { key: self.key.clone(), size: self.size, checksum_crc64nvme: None }];
        }
        self.segments.clone()
    }
}

/// What S3 reports about one stored object: HeadObject (or GetObjectAttributes) with checksum
/// mode ENABLED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    pub size: u64,
    /// `x-amz-checksum-crc64nvme`; `None` when S3 reported no such checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_crc64nvme: Option<String>,
}

/// Why a stored object does not match its manifest entry. Only a match counts as verified: an
/// object whose checksum cannot be compared is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentProblem {
    #[error("{key} does not exist")]
    Missing { key: String },
    #[error("{key} holds {found} bytes, the manifest says {expected}")]
    SizeDiffers { key: String, expected: u64, found: u64 },
    #[error("{key}: S3's CRC64NVME {found} differs from the manifest's {expected}")]
    ChecksumDiffers { key: String, expected: String, found: String },
    #[error(
        "{key}: the manifest records no checksum (it predates full-object checksums); only a full read can verify it"
    )]
    NoChecksumRecorded { key: String },
    #[error("{key}: S3 reports no CRC64NVME checksum for it")]
    NoChecksumStored { key: String },
}

/// The fast check of one stored object against its manifest entry: the size and the full-object
/// CRC64NVME that S3 reports (`None`: the object does not exist) must both equal the manifest's.
/// S3 validated that checksum against the bytes when the object was completed and keeps it with
/// the object, so a match means S3 holds exactly the bytes the worker wrote. `verify` on the CLI
/// and the flow's Verify step both decide with this function.
pub fn check_stored_segment(expected: &Segment, stored: Option<&StoredObject>) -> Result<(), SegmentProblem> {
    let key = expected.key.clone();
    let stored = stored.ok_or_else(|| SegmentProblem::Missing { key: key.clone() })?;
    if stored.size != expected.size {
        return Err(SegmentProblem::SizeDiffers { key, expected: expected.size, found: stored.size });
    }
    let expected =
        expected.checksum_crc64nvme.as_ref().ok_or_else(|| SegmentProblem::NoChecksumRecorded { key: key.clone() })?;
    let found =
        stored.checksum_crc64nvme.as_ref().ok_or_else(|| SegmentProblem::NoChecksumStored { key: key.clone() })?;
    if found != expected {
        return Err(SegmentProblem::ChecksumDiffers { key, expected: expected.clone(), found: found.clone() });
    }
    Ok(())
}

const MIB: u64 = 1024 * 1024;

/// A shortfall up to this much is always explained: a fresh filesystem's own structures that
/// statfs counts as used (XFS's per-AG metadata and reservations, btrfs's system and metadata
/// chunks, an ext3-style journal) run to tens or a few hundred MiB.
pub const SHORTFALL_FLOOR: u64 = 256 * MIB;
/// ... and up to this share of the filesystem's size: XFS reserves about 0.7 % of a large
/// filesystem for its metadata btrees (reflink) at mkfs, and reports it as used.
pub const SHORTFALL_SHARE_OF_SIZE: u64 = 50; // 1/50 = 2 %
/// ... and as long as the archived entries occupy at least this share of the used bytes: btrfs
/// keeps metadata (and small files inline) twice (DUP), so its used bytes can reach twice what
/// the files occupy; a mount of the wrong device or an empty directory archives almost nothing.
pub const MIN_ARCHIVED_SHARE_OF_USED: u64 = 4; // 1/4

/// A files-mode archive that misses most of its filesystem's used bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the archived files occupy {archived} bytes but the filesystem has {used} bytes in use: {} bytes that hard links, \
     sparse files and metadata cannot explain (the wrong device, an empty directory, or files the walk cannot see)",
    used - archived
)]
pub struct FilesShortfall {
    pub archived: u64,
    pub used: u64,
}

/// Checks that a files-mode archive holds its filesystem: `archived` (the allocated bytes of
/// the entries archived, each inode once, so hard links and sparse files count as on disk) may
/// fall short of `used` (statfs) only by what metadata explains: the shortfall fails the archive
/// when it is above [`SHORTFALL_FLOOR`] and above 1/[`SHORTFALL_SHARE_OF_SIZE`] of `fs_size`,
/// and the archived bytes are below 1/[`MIN_ARCHIVED_SHARE_OF_USED`] of the used bytes.
pub fn check_files_shortfall(archived: u64, used: u64, fs_size: u64) -> Result<(), FilesShortfall> {
    let shortfall = used.saturating_sub(archived);
    let allowed = SHORTFALL_FLOOR.max(fs_size / SHORTFALL_SHARE_OF_SIZE);
    if shortfall > allowed && archived < used / MIN_ARCHIVED_SHARE_OF_USED {
        return Err(FilesShortfall { archived, used });
    }
    Ok(())
}

/// The key of segment `index` (0-based) of the object `key`: the first segment is `key` itself
/// (an archive that needs one segment looks as it always did), the next ones `key.0001`,
/// `key.0002`, ..., so that a shell glob (`cat disk.raw.gz*`) lists them in order up to 9,999
/// continuations (64 TiB of default 64 GiB segments, more than EBS's largest volume); the
/// manifest's list is the authority beyond that.
pub fn segment_key(key: &str, index: usize) -> String {
    match index {
        0 => key.to_string(),
        n => format!("{key}.{n:04}"),
    }
}

/// The archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool_version: String,
    pub source: SourceInfo,
    pub objects: Vec<ArchivedObject>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error("manifest format {found} is newer than this tool understands ({MANIFEST_FORMAT})")]
    UnsupportedFormat { found: u32 },
    #[error("manifest lists no objects")]
    NoObjects,
    #[error("object {key}: size {size} differs from bytes_out {bytes_out}")]
    SizeMismatch { key: String, size: u64, bytes_out: u64 },
    #[error(
        "object {key}: its segments hold {segments_size} bytes, its size is {size}, or the first segment is not {key}"
    )]
    SegmentsMismatch { key: String, size: u64, segments_size: u64 },
}

impl Manifest {
    /// Parses and checks a manifest's internal consistency.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(ManifestError::UnsupportedFormat { found: manifest.format });
        }
        if manifest.objects.is_empty() {
            return Err(ManifestError::NoObjects);
        }
        if let Some(o) = manifest.objects.iter().find(|o| o.size != o.bytes_out) {
            return Err(ManifestError::SizeMismatch { key: o.key.clone(), size: o.size, bytes_out: o.bytes_out });
        }
        let inconsistent = |o: &&ArchivedObject| {
            !o.segments.is_empty()
                && (o.segments.iter().map(|s| s.size).sum::<u64>() != o.size || o.segments[0].key != o.key)
        };
        if let Some(o) = manifest.objects.iter().find(inconsistent) {
            let segments_size = o.segments.iter().map(|s| s.size).sum();
            return Err(ManifestError::SegmentsMismatch { key: o.key.clone(), size: o.size, segments_size });
        }
        Ok(manifest)
    }

    pub fn total_size(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}

/// The object name of one archived device or partition: `disk.tar.gz`, `part2.raw.zst`, ...
pub fn object_name(partition: Option<u32>, mode: ArchiveMode, compression: Compression) -> String {
    let what = match partition {
        Some(n) => format!("part{n}"),
        None => "disk".to_string(),
    };
    let kind = match mode {
        ArchiveMode::Files => "tar",
        ArchiveMode::Raw => "raw",
        // A device object is never a dump (`dump::DumpTool::object_name` names those); the
        // name stays well formed all the same.
        ArchiveMode::Dump => "dump",
    };
    format!("{what}.{kind}.{}", compression.extension())
}

/// The archive prefix of a manifest's key (`a/b/manifest.json` -> `a/b`, `manifest.json` -> ``),
/// or `None` for any other key: how a listing of the bucket becomes a list of archives.
pub fn archive_prefix_of(key: &str) -> Option<&str> {
    match key.rsplit_once('/') {
        Some((prefix, MANIFEST_NAME)) => Some(prefix),
        None if key == MANIFEST_NAME => Some(""),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn manifest_keys_name_their_archive() {
        assert_eq!(archive_prefix_of("backups/ebs/vol-1/snap-1/manifest.json"), Some("backups/ebs/vol-1/snap-1"));
        assert_eq!(archive_prefix_of("manifest.json"), Some(""));
        assert_eq!(archive_prefix_of("backups/ebs/vol-1/snap-1/disk.raw.gz"), None);
        assert_eq!(archive_prefix_of("backups/.drills/x.json"), None);
    }

    /// A one-object, one-segment manifest; also the starting point of `archive_job`'s tests.
    pub(crate) fn sample() -> Manifest {
        let t: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        Manifest {
            format: MANIFEST_FORMAT,
            tool_version: "0.1.0".into(),
            source: SourceInfo {
                device: "/dev/nvme1n1".into(),
                size: 8 << 30,
                partition_table: Some("gpt".into()),
                partition_table_dump: None,
                volume_id: Some("vol-0123456789abcdef0".into()),
                snapshot_id: None,
                database: None,
            },
            objects: vec![ArchivedObject {
                key: "a/part1.tar.gz".into(),
                mode: ArchiveMode::Files,
                compression: Compression::Gzip,
                partition: Some(PartitionInfo {
                    number: 1,
                    start: 1 << 20,
                    size: 1 << 30,
                    type_id: None,
                    uuid: None,
                    label: None,
                }),
                fs_type: Some("ext4".into()),
                raw_reason: None,
                size: 1234,
                sha256: "ab".repeat(32),
                bytes_in: 10_240,
                bytes_out: 1234,
                content_sha256: "cd".repeat(32),
                entries: Some(EntryCounts { files: 3, ..Default::default() }),
                dump: None,
                fs_used_bytes: Some(40_960),
                segments: vec![Segment {
                    key: "a/part1.tar.gz".into(),
                    size: 1234,
                    checksum_crc64nvme: Some("AAAAAAAAAAE=".into()),
                }],
                index: None,
            }],
            started_at: t,
            finished_at: t,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(r#""mode":"files""#), "{text}");
        assert!(!text.contains("snapshot_id"), "absent ids are omitted: {text}");
    }

    #[test]
    fn dump_archives_add_fields_and_keep_the_existing_ones() {
        let mut m = sample();
        m.source.device = "db.example:5432".into();
        m.source.database = Some(DatabaseSource {
            engine: "postgres".into(),
            host: "db.example".into(),
            port: 5432,
            user: "master".into(),
        });
        m.objects[0].mode = ArchiveMode::Dump;
        m.objects[0].partition = None;
        m.objects[0].entries = None;
        m.objects[0].dump = Some(DumpInfo {
            engine: "postgres".into(),
            database: Some("app".into()),
            tool: "pg_dump".into(),
            tool_version: "pg_dump (PostgreSQL) 15.18".into(),
            format: DumpFormat::Custom,
        });
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        let text = String::from_utf8(json).unwrap();
        for field in
            [r#""mode":"dump""#, r#""format":"custom""#, r#""device":"db.example:5432""#, r#""sha256":"#, r#""size":"#]
        {
            assert!(text.contains(field), "{field} in {text}");
        }
        assert!(!sample_json().contains("\"dump\""), "device archives carry no dump field");
    }

    fn sample_json() -> String {
        serde_json::to_string(&sample()).unwrap()
    }

    #[test]
    fn rejects_manifest_without_objects() {
        let mut m = sample();
        m.objects.clear();
        assert_eq!(Manifest::from_json(&serde_json::to_vec(&m).unwrap()), Err(ManifestError::NoObjects));
    }

    #[test]
    fn rejects_newer_format() {
        let mut m = sample();
        m.format = MANIFEST_FORMAT + 1;
        assert!(matches!(
            Manifest::from_json(&serde_json::to_vec(&m).unwrap()),
            Err(ManifestError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn rejects_inconsistent_sizes() {
        let mut m = sample();
        m.objects[0].bytes_out += 1;
        assert!(matches!(
            Manifest::from_json(&serde_json::to_vec(&m).unwrap()),
            Err(ManifestError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn manifests_without_segments_still_parse_as_one_unchecksummed_segment() {
        let mut m = sample();
        m.objects[0].segments.clear();
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("segments"), "{json}");
        let parsed = Manifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            parsed.objects[0].stored_segments(),
            vec![Segment { key: "a/part1.tar.gz".into(), size: 1234, checksum_crc64nvme: None }]
        );
    }

    #[test]
    fn rejects_segments_that_do_not_add_up_to_the_object() {
        let mut m = sample();
        m.objects[0].segments.push(Segment {
            key: segment_key("a/part1.tar.gz", 1),
            size: 1,
            checksum_crc64nvme: None,
        });
        assert!(matches!(
            Manifest::from_json(&serde_json::to_vec(&m).unwrap()),
            Err(ManifestError::SegmentsMismatch { segments_size: 1235, .. })
        ));
        let mut m = sample();
        m.objects[0].segments[0].key = "a/other".into();
        assert!(matches!(
            Manifest::from_json(&serde_json::to_vec(&m).unwrap()),
            Err(ManifestError::SegmentsMismatch { .. })
        ));
    }

    #[test]
    fn names_segments_so_that_a_glob_lists_them_in_order() {
        let keys: Vec<String> = (0..12).map(|i| segment_key("p/disk.raw.gz", i)).collect();
        assert_eq!(keys[0], "p/disk.raw.gz");
        assert_eq!(keys[1], "p/disk.raw.gz.0001");
        assert_eq!(keys[11], "p/disk.raw.gz.0011");
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn a_stored_object_matches_only_with_the_same_size_and_checksum() {
        let expected = Segment { key: "k".into(), size: 10, checksum_crc64nvme: Some("c1".into()) };
        let stored = |size, checksum: Option<&str>| StoredObject { size, checksum_crc64nvme: checksum.map(Into::into) };
        assert_eq!(check_stored_segment(&expected, Some(&stored(10, Some("c1")))), Ok(()));
        assert_eq!(check_stored_segment(&expected, None), Err(SegmentProblem::Missing { key: "k".into() }));
        assert_eq!(
            check_stored_segment(&expected, Some(&stored(11, Some("c1")))),
            Err(SegmentProblem::SizeDiffers { key: "k".into(), expected: 10, found: 11 })
        );
        // The same size with other bytes: the case a size-only check lets through.
        assert_eq!(
            check_stored_segment(&expected, Some(&stored(10, Some("c2")))),
            Err(SegmentProblem::ChecksumDiffers { key: "k".into(), expected: "c1".into(), found: "c2".into() })
        );
        assert_eq!(
            check_stored_segment(&expected, Some(&stored(10, None))),
            Err(SegmentProblem::NoChecksumStored { key: "k".into() })
        );
        let old = Segment { checksum_crc64nvme: None, ..expected };
        let problem = check_stored_segment(&old, Some(&stored(10, Some("c1")))).unwrap_err();
        assert_eq!(problem, SegmentProblem::NoChecksumRecorded { key: "k".into() });
        assert!(problem.to_string().contains("full read"), "{problem}");
    }

    const GIB: u64 = 1024 * MIB;

    #[test]
    fn an_archive_that_misses_most_of_the_used_bytes_fails_naming_both_numbers() {
        // The wrong device mounted, or an empty directory: nothing archived of 500 GiB in use.
        let e = check_files_shortfall(8192, 500 * GIB, 1024 * GIB).unwrap_err();
        assert_eq!(e, FilesShortfall { archived: 8192, used: 500 * GIB });
        let text = e.to_string();
        assert!(text.contains("8192") && text.contains(&(500 * GIB).to_string()), "{text}");
        // Files hidden from the walk: 400 MiB of 420 MiB used on a 600 MiB filesystem.
        assert!(check_files_shortfall(20 * MIB, 420 * MIB, 600 * MIB).is_err());
    }

    #[test]
    fn metadata_and_fresh_filesystems_are_explained() {
        // An empty filesystem whose own structures are in use: ext4's or a small XFS's.
        assert_eq!(check_files_shortfall(0, 200 * MIB, 100 * GIB), Ok(()));
        // An empty 16 TiB XFS reserves about 0.7 % for its metadata btrees.
        assert_eq!(check_files_shortfall(0, 115 * GIB, 16 * 1024 * GIB), Ok(()));
        // btrfs keeps metadata and inline files twice: used is twice what the files occupy.
        assert_eq!(check_files_shortfall(10 * GIB, 24 * GIB, 100 * GIB), Ok(()));
        // Archived more than used (the walk saw what statfs had not yet counted): fine.
        assert_eq!(check_files_shortfall(2 * GIB, GIB, 10 * GIB), Ok(()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(Manifest::from_json(b"{\"format\":1}"), Err(ManifestError::Parse(_))));
    }

    #[test]
    fn an_index_is_listed_and_named_outside_the_segments_glob() {
        let mut m = sample();
        assert!(!sample_json().contains("index"), "manifests without an index keep their shape");
        m.objects[0].index = Some(IndexObject {
            key: index_key("a/part1.tar.gz", Compression::Gzip),
            size: 99,
            sha256: "ef".repeat(32),
            entries: 12,
            members: 3,
        });
        assert_eq!(Manifest::from_json(&serde_json::to_vec(&m).unwrap()).unwrap(), m);
        assert_eq!(index_key("a/part1.tar.gz", Compression::Gzip), "a/part1.tar.index");
        assert_eq!(index_key("a/disk.tar.zst", Compression::Zstd), "a/disk.tar.index");
    }

    #[test]
    fn names_objects_by_partition_mode_and_compression() {
        assert_eq!(object_name(None, ArchiveMode::Files, Compression::Gzip), "disk.tar.gz");
        assert_eq!(object_name(Some(3), ArchiveMode::Raw, Compression::Zstd), "part3.raw.zst");
    }
}
