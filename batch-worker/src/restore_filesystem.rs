//! A files archive made into a filesystem image, for a restore to a snapshot: a sparse image file
//! of the chosen size, `mkfs.ext4` or `mkfs.xfs` on it, a loop device and a read-write mount in
//! private directories, and the tar extracted with all its metadata as `restore --to` does. The
//! image is then uploaded like a raw object ([`crate::restore_snapshot`]); its holes cost nothing.

use std::path::{Path, PathBuf};

use archiver_core::manifest::ArchivedObject;
use nix::mount::{MntFlags, MsFlags};

use crate::command::{self, CommandError};
use crate::restore::{restore_object, RestoreError};
use crate::source::{LoopDevice, SourceError};

const GIB: u64 = 1 << 30;
/// Room for the filesystem's own metadata and for growth after the restore: a quarter more than
/// the files, and a quarter GiB; arbitrary, and `--size` overrides it.
const HEADROOM_NUM: u64 = 5;
const HEADROOM_DEN: u64 = 4;
const HEADROOM_FIXED: u64 = GIB / 4;
/// mkfs.xfs refuses filesystems under 300 MB.
const XFS_MIN_SIZE: u64 = 300 * 1000 * 1000;

/// The filesystems a files archive can be restored into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    Ext4,
    Xfs,
}

impl Filesystem {
    pub fn name(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Xfs => "xfs",
        }
    }

    /// `mkfs` quietly, over whatever the file holds.
    fn mkfs(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Filesystem::Ext4 => ("mkfs.ext4", &["-F", "-q"]),
            Filesystem::Xfs => ("mkfs.xfs", &["-f", "-q"]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesystemError {
    #[error("cannot create the image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{size} bytes is too small for {fs}: {fs} needs at least {min}")]
    TooSmall { fs: &'static str, size: u64, min: u64 },
    #[error(transparent)]
    Mkfs(#[from] CommandError),
    #[error(transparent)]
    Attach(#[from] SourceError),
    #[error("cannot mount the new {fs} filesystem on {device}: {errno}")]
    Mount { fs: &'static str, device: PathBuf, errno: nix::errno::Errno },
    #[error("cannot unmount {path}: {errno}")]
    Unmount { path: PathBuf, errno: nix::errno::Errno },
    #[error(transparent)]
    Extract(#[from] RestoreError),
}

/// The default size of the filesystem for `object`: its files with headroom, whole GiB.
pub fn default_size(object: &ArchivedObject) -> u64 {
    let content = object.fs_used_bytes.unwrap_or(object.bytes_in);
    (content * HEADROOM_NUM / HEADROOM_DEN + HEADROOM_FIXED).div_ceil(GIB) * GIB
}

/// Builds `dir/<fs>.img` of `size` bytes holding `object`'s files, and returns its path. Every
/// mount and loop device is gone when this returns, whichever way.
pub async fn build_image(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    object: &ArchivedObject,
    fs: Filesystem,
    size: u64,
    dir: &Path,
) -> Result<PathBuf, FilesystemError> {
    if fs == Filesystem::Xfs && size < XFS_MIN_SIZE {
        return Err(FilesystemError::TooSmall { fs: fs.name(), size, min: XFS_MIN_SIZE });
    }
    let image = dir.join(format!("{}.img", fs.name()));
    let (prepared, mount_dir) = {
        let path = image.clone();
        let mount_dir = dir.join("mnt");
        tokio::task::spawn_blocking(move || -> Result<_, FilesystemError> {
            let image_err = |source| FilesystemError::Image { path: path.clone(), source };
            std::fs::File::create(&path).and_then(|f| f.set_len(size)).map_err(image_err)?;
            std::fs::create_dir(&mount_dir).map_err(image_err)?;
            let (program, args) = fs.mkfs();
            command::run(program, args.iter().map(std::ffi::OsStr::new).chain([path.as_os_str()]))?;
            let device = LoopDevice::attach(&path, None, false)?;
            let mount = Mount::new(&device.path, &mount_dir, fs)?;
            Ok(((mount, device), mount_dir))
        })
        .await
        .map_err(|e| FilesystemError::Image { path: image.clone(), source: std::io::Error::other(e) })??
    };
    let extracted = restore_object(client, bucket, object, mount_dir).await;
    // Unmount, then detach, before the image is read.
    let (mount, device) = prepared;
    let unmounted = tokio::task::spawn_blocking(move || {
        let result = mount.unmount();
        drop(device);
        result
    })
    .await
    .map_err(|e| FilesystemError::Image { path: image.clone(), source: std::io::Error::other(e) })?;
    extracted?;
    unmounted?;
    tracing::info!(image = %image.display(), fs = fs.name(), size, "built the filesystem image");
    Ok(image)
}

/// A read-write mount of the new filesystem; unmounted on drop if [`Mount::unmount`] was not
/// called (an error path).
struct Mount {
    path: Option<PathBuf>,
}

impl Mount {
    fn new(device: &Path, dir: &Path, fs: Filesystem) -> Result<Mount, FilesystemError> {
        nix::mount::mount(Some(device), dir, Some(fs.name()), MsFlags::empty(), None::<&str>)
            .map_err(|errno| FilesystemError::Mount { fs: fs.name(), device: device.into(), errno })?;
        Ok(Mount { path: Some(dir.into()) })
    }

    fn unmount(mut self) -> Result<(), FilesystemError> {
        let path = self.path.take().expect("mounted until unmounted");
        nix::mount::umount2(&path, MntFlags::empty()).map_err(|errno| FilesystemError::Unmount { path, errno })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(errno) = nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
                tracing::error!(path = %path.display(), %errno, "failed to unmount the restored filesystem");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_size_leaves_headroom_in_whole_gib() {
        let mut object: ArchivedObject = serde_json::from_value(serde_json::json!({
            "key": "a/disk.tar.gz", "mode": "files", "compression": "gzip", "size": 1, "sha256": "",
            "bytes_in": 10u64 << 20, "bytes_out": 1, "content_sha256": ""
        }))
        .expect("an object");
        assert_eq!(default_size(&object), GIB);
        object.fs_used_bytes = Some(3 * GIB);
        assert_eq!(default_size(&object), 4 * GIB);
    }
}
