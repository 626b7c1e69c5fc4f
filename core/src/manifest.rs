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
}

impl Manifest {
    /// Parses and checks a manifest's internal consistency.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(ManifestError::UnsupportedFormat { found: manifest.format });
        }
        if manifest.objects.is_empty() {
            return Err(ManifestError::NoObjects);
        }
        if let Some(o) = manifest.objects.iter().find(|o| o.size != o.bytes_out) {
            return Err(ManifestError::SizeMismatch { key: o.key.clone(), size: o.size, bytes_out: o.bytes_out });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
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
                partition: Some(PartitionInfo { number: 1, start: 1 << 20, size: 1 << 30, type_id: None, uuid: None, label: None }),
                fs_type: Some("ext4".into()),
                raw_reason: None,
                size: 1234,
                sha256: "ab".repeat(32),
                bytes_in: 10_240,
                bytes_out: 1234,
                content_sha256: "cd".repeat(32),
                entries: Some(EntryCounts { files: 3, ..Default::default() }),
                dump: None,
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
        m.source.database =
            Some(DatabaseSource { engine: "postgres".into(), host: "db.example".into(), port: 5432, user: "master".into() });
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
        for field in [r#""mode":"dump""#, r#""format":"custom""#, r#""device":"db.example:5432""#, r#""sha256":"#, r#""size":"#] {
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
    fn rejects_garbage() {
        assert!(matches!(Manifest::from_json(b"{\"format\":1}"), Err(ManifestError::Parse(_))));
    }

    #[test]
    fn names_objects_by_partition_mode_and_compression() {
        assert_eq!(object_name(None, ArchiveMode::Files, Compression::Gzip), "disk.tar.gz");
        assert_eq!(object_name(Some(3), ArchiveMode::Raw, Compression::Zstd), "part3.raw.zst");
    }
}
