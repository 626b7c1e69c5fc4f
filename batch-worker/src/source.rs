//! The first pipeline stage: turns the path the operator gave into a block device, attaching a
//! disk image to a loop device (read-only, with partition scanning) and detaching it afterwards.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::command::{self, CommandError};

/// Disk images are whole sectors; a file of another size is not one.
const SECTOR_SIZE: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("device {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a block device or a disk image file")]
    NotADevice { path: PathBuf },
    #[error("{path} is not a disk image: it is empty")]
    EmptyImage { path: PathBuf },
    #[error("{path} is not a disk image: its size {size} is not a multiple of {SECTOR_SIZE} bytes")]
    NotSectorAligned { path: PathBuf, size: u64 },
    #[error("failed to attach {path} to a loop device: {source}")]
    Attach {
        path: PathBuf,
        #[source]
        source: CommandError,
    },
}

/// A block device ready to be read, and the loop device to detach when it is dropped.
#[derive(Debug)]
pub struct Source {
    /// The path the operator gave, for the manifest.
    pub given: PathBuf,
    /// The block device to read.
    pub device: PathBuf,
    /// Where raw bytes are read from: the image file itself rather than its loop device, whose
    /// requests all pass through one kernel worker thread and a second page cache.
    pub bytes: PathBuf,
    /// Whether partitions must be attached read-only too: an image is the operator's data, a
    /// device given as is (a restored volume) may have its journal replayed.
    pub read_only: bool,
    /// Held for its `Drop`, which detaches the loop device.
    _loop_device: Option<LoopDevice>,
}

impl Source {
    /// Opens `path`: a block device is used as it is; a regular file is attached read-only to a
    /// loop device, so that archiving an image can never change it (a dirty journal is then
    /// skipped by mounting with `noload`/`norecovery` rather than replayed).
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        if validate(path)? == SourceKind::BlockDevice {
            return Ok(Source {
                given: path.into(),
                device: path.into(),
                bytes: path.into(),
                read_only: false,
                _loop_device: None,
            });
        }
        let loop_device = LoopDevice::attach(path, None, true)?;
        Ok(Source {
            given: path.into(),
            device: loop_device.path.clone(),
            bytes: path.into(),
            read_only: true,
            _loop_device: Some(loop_device),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    BlockDevice,
    DiskImage,
}

/// Checks that `path` is a block device or a plausible disk image, without touching it.
pub fn validate(path: &Path) -> Result<SourceKind, SourceError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SourceError::Missing { path: path.to_path_buf() },
        _ => SourceError::Stat { path: path.to_path_buf(), source },
    })?;
    if meta.file_type().is_block_device() {
        return Ok(SourceKind::BlockDevice);
    }
    if !meta.is_file() {
        return Err(SourceError::NotADevice { path: path.to_path_buf() });
    }
    if meta.len() == 0 {
        return Err(SourceError::EmptyImage { path: path.to_path_buf() });
    }
    if meta.len() % SECTOR_SIZE != 0 {
        return Err(SourceError::NotSectorAligned { path: path.to_path_buf(), size: meta.len() });
    }
    Ok(SourceKind::DiskImage)
}

/// A loop device attached by us; detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    /// Attaches `file` (an image or a block device), or the `(offset, size)` byte range of it.
    pub fn attach(file: &Path, range: Option<(u64, u64)>, read_only: bool) -> Result<LoopDevice, SourceError> {
        let mut args: Vec<std::ffi::OsString> = vec!["--find".into(), "--show".into()];
        if read_only {
            args.push("--read-only".into());
        }
        if let Some((offset, size)) = range {
            args.extend(["--offset".into(), offset.to_string().into(), "--sizelimit".into(), size.to_string().into()]);
        }
        args.push(file.into());
        let out = command::run("losetup", &args).map_err(|source| SourceError::Attach { path: file.into(), source })?;
        let path = PathBuf::from(out.trim());
        tracing::debug!(file = %file.display(), ?range, device = %path.display(), "attached loop device");
        Ok(LoopDevice { path })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = command::run("losetup", ["--detach".as_ref(), self.path.as_os_str()]) {
            tracing::error!(device = %self.path.display(), error = %e, "failed to detach loop device");
        }
    }
}
