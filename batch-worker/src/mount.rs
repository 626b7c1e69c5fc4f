//! Third stage for filesystems: a read-only mount in a private temporary directory, unmounted
//! and removed when the guard drops.
//!
//! A read-only mount of a writable device still replays an ext4/xfs journal, which gives the
//! consistent state of a crash-consistent snapshot. Where that fails (a read-only loop device, a
//! damaged log) the mount is retried without log recovery. XFS always gets `nouuid`: a restored
//! volume carries the same UUID as the live filesystem it was taken from, which may be mounted
//! on this very host.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot create a mount point: {0}")]
    MountPoint(#[source] std::io::Error),
    #[error("cannot mount {device} ({fs_type}) read-only: {attempts}")]
    Mount { device: PathBuf, fs_type: String, attempts: String },
    #[error("this kernel cannot mount {fs_type} (ENODEV)")]
    UnsupportedType { fs_type: String },
}

/// Option sets to try in order, per filesystem type.
fn mount_attempts(fs_type: &str) -> &'static [&'static str] {
    match fs_type {
        "ext2" | "ext3" | "ext4" => &["", "noload"],
        "xfs" => &["nouuid", "nouuid,norecovery"],
        "btrfs" => &["", "rescue=nologreplay"],
        _ => &[""],
    }
}

/// A filesystem mounted read-only at a private directory.
#[derive(Debug)]
pub struct ReadOnlyMount {
    dir: Option<tempfile::TempDir>,
    /// The options the successful attempt used, for the log.
    pub options: &'static str,
}

impl ReadOnlyMount {
    pub fn mount(device: &Path, fs_type: &str) -> Result<ReadOnlyMount, MountError> {
        let dir = tempfile::Builder::new().prefix("backup-archiver-mnt-").tempdir().map_err(MountError::MountPoint)?;
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let mut failures = Vec::new();
        for options in mount_attempts(fs_type) {
            let data = (!options.is_empty()).then_some(*options);
            match nix::mount::mount(Some(device), dir.path(), Some(fs_type), flags, data) {
                Ok(()) => {
                    tracing::info!(device = %device.display(), fs_type, options, "mounted read-only");
                    return Ok(ReadOnlyMount { dir: Some(dir), options });
                }
                Err(nix::errno::Errno::ENODEV) => {
                    return Err(MountError::UnsupportedType { fs_type: fs_type.into() });
                }
                Err(errno) => {
                    failures.push(format!("ro{}{options}: {errno}", if options.is_empty() { "" } else { "," }))
                }
            }
        }
        Err(MountError::Mount { device: device.into(), fs_type: fs_type.into(), attempts: failures.join("; ") })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("the directory lives until drop").path()
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let path = self.path().to_path_buf();
        // A reader that just closed its last file can leave the mount briefly busy.
        let mut result = nix::mount::umount2(&path, MntFlags::empty());
        for _ in 0..10 {
            if result != Err(nix::errno::Errno::EBUSY) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            result = nix::mount::umount2(&path, MntFlags::empty());
        }
        if let Err(errno) = result {
            tracing::error!(path = %path.display(), %errno, "unmount failed; detaching lazily");
            let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Mount points strictly below `root`, from /proc/self/mountinfo: the tree walk must not enter
/// them, since they are other filesystems.
pub fn mounts_below(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mount_points(&text).into_iter().filter(|p| p != root && p.starts_with(root)).collect())
}

/// The mount point (fifth field) of each mountinfo line, with its octal escapes (`\040`) undone.
fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            let bytes = field.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\\'
                    && i + 3 < bytes.len()
                    && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
                {
                    let code = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
                    out.push(code);
                    i += 4;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mount_points_with_escaped_spaces() {
        let info = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 98:0 / /tmp/x rw - ext4 /dev/loop0 ro\n";
        assert_eq!(parse_mount_points(info), vec![PathBuf::from("/mnt/with space"), PathBuf::from("/tmp/x")]);
    }

    #[test]
    fn xfs_is_always_mounted_with_nouuid() {
        assert!(mount_attempts("xfs").iter().all(|o| o.contains("nouuid")));
    }
}
