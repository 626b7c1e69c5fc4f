//! Second stage: what is on the device. A partition table (GPT or MBR, read in user space by
//! `sfdisk`, so kernels without partition support and containers without partition nodes work
//! alike) yields one target per partition; otherwise the whole disk is one target. Each target
//! is probed with `blkid` for a filesystem signature.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use archiver_core::manifest::PartitionInfo;
use serde::Deserialize;

use crate::command::{self, CommandError};

/// MBR type bytes of extended partitions: containers whose logical partitions sfdisk lists on
/// their own, so archiving the container too would store them twice.
const MBR_EXTENDED_TYPES: [&str; 3] = ["5", "f", "85"];

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read the size of {device}: {source}")]
    Size {
        device: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot read the partition table of {device}: {source}")]
    Table {
        device: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot parse the partition table of {device}: {message}")]
    TableFormat { device: PathBuf, message: String },
    #[error("cannot probe {device}: {source}")]
    Probe {
        device: PathBuf,
        #[source]
        source: CommandError,
    },
}

/// One thing to archive: a partition or the whole disk, as a byte range of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub device: PathBuf,
    pub offset: u64,
    pub size: u64,
    /// `None` for the whole disk.
    pub partition: Option<PartitionInfo>,
    /// The filesystem type blkid recognised (`ext4`, `xfs`, `vfat`, `swap`, ...).
    pub fs_type: Option<String>,
}

/// The device and what is on it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub size: u64,
    /// `gpt` or `dos`.
    pub partition_table: Option<String>,
    /// `sfdisk --dump` of the table.
    pub partition_table_dump: Option<String>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct SfdiskOutput {
    partitiontable: SfdiskTable,
}

#[derive(Debug, Deserialize)]
struct SfdiskTable {
    label: String,
    #[serde(default = "default_sector_size")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<SfdiskPartition>,
}

fn default_sector_size() -> u64 {
    512
}

#[derive(Debug, Deserialize)]
struct SfdiskPartition {
    node: String,
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    type_id: Option<String>,
    uuid: Option<String>,
    name: Option<String>,
}

/// Reads the layout of `device`.
pub fn read_layout(device: &Path) -> Result<Layout, LayoutError> {
    let size = command::run("blockdev", ["--getsize64".as_ref(), device.as_os_str()])
        .map_err(|source| LayoutError::Size { device: device.into(), source })?
        .trim()
        .parse::<u64>()
        .map_err(|e| LayoutError::TableFormat { device: device.into(), message: e.to_string() })?;

    let table = match command::run("sfdisk", ["--json".as_ref(), device.as_os_str()]) {
        Ok(json) => Some(parse_sfdisk(device, &json)?),
        // sfdisk exits 1 with "does not contain a recognized partition table".
        Err(CommandError::Failed { stderr, .. }) if stderr.contains("partition table") => None,
        Err(source) => return Err(LayoutError::Table { device: device.into(), source }),
    };
    let Some(table) = table.filter(|t| !t.partitions.is_empty()) else {
        let fs_type = probe(device, None)?;
        return Ok(Layout {
            size,
            partition_table: None,
            partition_table_dump: None,
            targets: vec![Target { device: device.into(), offset: 0, size, partition: None, fs_type }],
        });
    };

    let mut targets = Vec::new();
    for p in &table.partitions {
        let type_id = p.type_id.clone();
        if table.label == "dos"
            && type_id.as_deref().is_some_and(|t| MBR_EXTENDED_TYPES.contains(&t.to_lowercase().as_str()))
        {
            continue;
        }
        let (offset, part_size) = (p.start * table.sectorsize, p.size * table.sectorsize);
        targets.push(Target {
            device: device.into(),
            offset,
            size: part_size,
            partition: Some(PartitionInfo {
                number: partition_number(&p.node).ok_or_else(|| LayoutError::TableFormat {
                    device: device.into(),
                    message: format!("partition node {:?} has no number", p.node),
                })?,
                start: offset,
                size: part_size,
                type_id: type_id.map(|t| if table.label == "dos" { format!("0x{t}") } else { t }),
                uuid: p.uuid.clone(),
                label: p.name.clone(),
            }),
            fs_type: probe(device, Some((offset, part_size)))?,
        });
    }
    let dump = command::run("sfdisk", ["--dump".as_ref(), device.as_os_str()]).ok();
    Ok(Layout { size, partition_table: Some(table.label), partition_table_dump: dump, targets })
}

fn parse_sfdisk(device: &Path, json: &str) -> Result<SfdiskTable, LayoutError> {
    serde_json::from_str::<SfdiskOutput>(json)
        .map(|o| o.partitiontable)
        .map_err(|e| LayoutError::TableFormat { device: device.into(), message: e.to_string() })
}

/// The number at the end of a partition node name (`/dev/loop0p12` -> 12).
fn partition_number(node: &str) -> Option<u32> {
    let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    node[node.len() - digits..].parse().ok()
}

/// The filesystem type at `range` (offset, size) of `device`, or of the whole device. blkid
/// exits 2 when it finds nothing and 8 when the result is ambiguous; both mean "no filesystem
/// we can trust".
fn probe(device: &Path, range: Option<(u64, u64)>) -> Result<Option<String>, LayoutError> {
    let mut args: Vec<std::ffi::OsString> = vec!["-p".into(), "-o".into(), "export".into()];
    if let Some((offset, size)) = range {
        args.extend(["-O".into(), offset.to_string().into(), "-S".into(), size.to_string().into()]);
    }
    args.push(device.into());
    match command::run("blkid", &args) {
        Ok(out) => Ok(parse_blkid_export(&out).remove("TYPE")),
        Err(CommandError::Failed { status, .. }) if matches!(status.code(), Some(2) | Some(8)) => Ok(None),
        Err(source) => Err(LayoutError::Probe { device: device.into(), source }),
    }
}

/// Parses `blkid -o export` output: `KEY=value` lines, values with shell escapes (`\ `).
fn parse_blkid_export(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let mut value = String::with_capacity(v.len());
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            (k.to_string(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blkid_export_with_escapes() {
        let out = "DEVNAME=/dev/loop0p1\nLABEL=my\\ disk\nTYPE=ext4\n";
        let map = parse_blkid_export(out);
        assert_eq!(map["TYPE"], "ext4");
        assert_eq!(map["LABEL"], "my disk");
    }

    #[test]
    fn numbers_partitions_from_their_node_names() {
        assert_eq!(partition_number("/dev/loop0p12"), Some(12));
        assert_eq!(partition_number("disk.img5"), Some(5));
        assert_eq!(partition_number("/dev/nvme1n1p3"), Some(3));
        assert_eq!(partition_number("/dev/sda"), None);
    }

    #[test]
    fn parses_sfdisk_json_of_an_mbr_table() {
        let json = r#"{"partitiontable": {"label": "dos", "id": "0x65f97a8e", "device": "mbr.img",
            "unit": "sectors", "sectorsize": 512, "partitions": [
            {"node": "mbr.img1", "start": 2048, "size": 61440, "type": "83"},
            {"node": "mbr.img2", "start": 63488, "size": 141312, "type": "5"}]}}"#;
        let table = parse_sfdisk(Path::new("mbr.img"), json).unwrap();
        assert_eq!(table.label, "dos");
        assert_eq!(table.partitions[1].type_id.as_deref(), Some("5"));
        assert_eq!(table.partitions[0].start * table.sectorsize, 1 << 20);
    }
}
