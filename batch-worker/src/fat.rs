//! Files mode for FAT (vfat) without a kernel driver: kernels built without vfat, like the
//! Firecracker guests CI runs on, and containers that may not load modules. The `fatfs` crate
//! reads the filesystem from the device's byte range, and the tar stream gets what a kernel
//! mount with default options would show: owner 0:0, mode 0755 (0555 for read-only files),
//! the FAT modification time read as UTC, and long file names.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use archiver_core::manifest::EntryCounts;
use tar::{EntryType, Header};

use crate::tree::TreeError;

/// Modes a default vfat mount shows (`fmask` and `dmask` from a 022 umask).
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o755;
const READ_ONLY_FILE_MODE: u32 = 0o555;

/// A read-only window onto `size` bytes of a device from `offset`, the disk fatfs reads.
struct DeviceWindow {
    file: File,
    offset: u64,
    size: u64,
    pos: u64,
}

impl Read for DeviceWindow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = (buf.len() as u64).min(self.size.saturating_sub(self.pos)) as usize;
        let n = self.file.read_at(&mut buf[..len], self.offset + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for DeviceWindow {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => self.size as i128 + d as i128,
        };
        if pos < 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the filesystem"));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

impl Write for DeviceWindow {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "the FAT reader never writes"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type FatDir<'a> = fatfs::Dir<'a, DeviceWindow>;

/// Checks that `(offset, size)` of `device` holds a FAT filesystem fatfs can read.
pub fn check(device: &Path, offset: u64, size: u64) -> io::Result<()> {
    open(device, offset, size).map(drop)
}

fn open(device: &Path, offset: u64, size: u64) -> io::Result<fatfs::FileSystem<DeviceWindow>> {
    let file = File::open(device)?;
    fatfs::FileSystem::new(DeviceWindow { file, offset, size, pos: 0 }, fatfs::FsOptions::new())
}

/// Writes the FAT filesystem at `(offset, size)` of `device` to `out` as a tar stream.
pub fn write_fat_tree<W: Write>(device: &Path, offset: u64, size: u64, out: W) -> Result<(EntryCounts, W), TreeError> {
    let fs = open(device, offset, size).map_err(|source| TreeError::Append { path: device.into(), source })?;
    let mut builder = tar::Builder::new(out);
    let mut counts = EntryCounts::default();
    let root = fs.root_dir();
    append(&mut builder, &PathBuf::from("."), EntryType::Directory, DIR_MODE, 0, 0, io::empty())
        .map_err(|source| TreeError::Append { path: ".".into(), source })?;
    counts.directories += 1;
    append_dir(&mut builder, &root, Path::new(""), &mut counts)?;
    let out = builder.into_inner().map_err(TreeError::Finish)?;
    Ok((counts, out))
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &FatDir<'_>,
    at: &Path,
    counts: &mut EntryCounts,
) -> Result<(), TreeError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Append { path, source }
    };
    let mut entries = dir.iter().collect::<io::Result<Vec<_>>>().map_err(err(at))?;
    entries.retain(|e| !matches!(e.file_name().as_str(), "." | ".."));
    // Byte order of names, as the kernel-mount path (walkdir) sorts.
    entries.sort_by_key(|e| e.file_name().into_bytes());
    for entry in entries {
        let path = at.join(entry.file_name());
        let mtime = unix_time(entry.modified());
        if entry.is_dir() {
            append(builder, &path, EntryType::Directory, DIR_MODE, mtime, 0, io::empty()).map_err(err(&path))?;
            counts.directories += 1;
            append_dir(builder, &entry.to_dir(), &path, counts)?;
        } else {
            let mode = if entry.attributes().contains(fatfs::FileAttributes::READ_ONLY) {
                READ_ONLY_FILE_MODE
            } else {
                FILE_MODE
            };
            append(builder, &path, EntryType::Regular, mode, mtime, entry.len(), entry.to_file())
                .map_err(err(&path))?;
            counts.files += 1;
            counts.file_bytes += entry.len();
        }
    }
    Ok(())
}

fn append<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    kind: EntryType,
    mode: u32,
    mtime: u64,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(size);
    // A file shorter than its directory entry says would corrupt the stream: take exactly `size`.
    let mut data = data.take(size);
    builder.append_data(&mut header, path, &mut data)
}

/// FAT stores local time without a zone; a kernel mount reads it as UTC unless told otherwise.
fn unix_time(t: fatfs::DateTime) -> u64 {
    chrono::NaiveDate::from_ymd_opt(t.date.year.into(), t.date.month.into(), t.date.day.into())
        .and_then(|d| {
            d.and_hms_milli_opt(t.time.hour.into(), t.time.min.into(), t.time.sec.into(), t.time.millis.into())
        })
        .map(|dt| dt.and_utc().timestamp().max(0) as u64)
        .unwrap_or(0)
}
