//! Finding a restored EBS volume's device on a Nitro instance. The NVMe controller's serial is
//! the volume id without its hyphen (`vol0123…`), so the device is found by reading serials in
//! sysfs, polled rather than waited for as a hot-plug event that may already have happened. In
//! a privileged container the host's sysfs is visible but a device attached after the container
//! started may have no node in its /dev; the node is then made from sysfs's major:minor.
//!
//! <https://docs.aws.amazon.com/ebs/latest/userguide/identify-nvme-ebs-device.html>

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tokio_util::sync::CancellationToken;

/// How often sysfs is read while the device has not appeared.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no NVMe device with serial {serial} appeared in {sysfs} within {waited:?}")]
    NotFound { serial: String, sysfs: PathBuf, waited: Duration },
    #[error("cannot read {path}: {source}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the device node {path}: {source}")]
    Node {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

/// The NVMe serial of an EBS volume.
pub fn nvme_serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
}

/// A block device found in sysfs: its name (`nvme1n1`) and device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDevice {
    pub name: String,
    pub major: u64,
    pub minor: u64,
}

/// Looks through `<sysfs>/block/*/device/serial` for `serial` (sysfs pads serials with spaces).
pub fn find_by_serial(sysfs: &Path, serial: &str) -> Result<Option<FoundDevice>, DiscoveryError> {
    let block = sysfs.join("block");
    fn err(path: &Path) -> impl FnOnce(std::io::Error) -> DiscoveryError + '_ {
        move |source| DiscoveryError::Sysfs { path: path.to_path_buf(), source }
    }
    for entry in std::fs::read_dir(&block).map_err(err(&block))? {
        let dir = entry.map_err(err(&block))?.path();
        let Ok(found) = std::fs::read_to_string(dir.join("device/serial")) else { continue };
        if found.trim() != serial {
            continue;
        }
        let dev_path = dir.join("dev");
        let dev = std::fs::read_to_string(&dev_path).map_err(err(&dev_path))?;
        let (major, minor) = dev.trim().split_once(':').unwrap_or(("", ""));
        let parse = |n: &str| n.parse::<u64>().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        return Ok(Some(FoundDevice {
            name: dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            major: parse(major).map_err(err(&dev_path))?,
            minor: parse(minor).map_err(err(&dev_path))?,
        }));
    }
    Ok(None)
}

/// The node of `device`: `<dev_dir>/<name>` when it exists as that block device, otherwise one
/// made in `fallback_dir`.
pub fn device_node(device: &FoundDevice, dev_dir: &Path, fallback_dir: &Path) -> Result<PathBuf, DiscoveryError> {
    use std::os::unix::fs::MetadataExt;
    let wanted = makedev(device.major, device.minor);
    let path = dev_dir.join(&device.name);
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.file_type().is_block_device() && meta.rdev() == wanted {
            return Ok(path);
        }
    }
    let path = fallback_dir.join(&device.name);
    let _ = std::fs::remove_file(&path);
    mknod(&path, SFlag::S_IFBLK, Mode::from_bits_truncate(0o600), wanted)
        .map_err(|source| DiscoveryError::Node { path: path.clone(), source })?;
    Ok(path)
}

/// Polls sysfs until the volume's device appears, for at most `timeout`.
pub async fn wait_for_volume_device(
    volume_id: &str,
    sysfs: &Path,
    dev_dir: &Path,
    fallback_dir: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<PathBuf, DiscoveryError> {
    let serial = nvme_serial(volume_id);
    let started = tokio::time::Instant::now();
    loop {
        if let Some(found) = find_by_serial(sysfs, &serial)? {
            let node = device_node(&found, dev_dir, fallback_dir)?;
            tracing::info!(volume_id, device = %node.display(), "found the volume's device");
            return Ok(node);
        }
        if started.elapsed() >= timeout {
            return Err(DiscoveryError::NotFound { serial, sysfs: sysfs.into(), waited: timeout });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(DiscoveryError::Interrupted),
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_device(sysfs: &Path, name: &str, serial: &str, dev: &str) {
        let dir = sysfs.join("block").join(name);
        std::fs::create_dir_all(dir.join("device")).unwrap();
        std::fs::write(dir.join("device/serial"), format!("{serial:<20}\n")).unwrap();
        std::fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
    }

    #[test]
    fn serial_is_the_volume_id_without_its_hyphen() {
        assert_eq!(nvme_serial("vol-0123456789abcdef0"), "vol0123456789abcdef0");
    }

    #[test]
    fn finds_the_device_whose_padded_serial_matches() {
        let sysfs = tempfile::tempdir().unwrap();
        fake_device(sysfs.path(), "nvme0n1", "vol0aaaaaaaaaaaaaaaaa", "259:0");
        fake_device(sysfs.path(), "nvme1n1", "vol0123456789abcdef0", "259:3");
        std::fs::create_dir_all(sysfs.path().join("block/loop0")).unwrap();
        let found = find_by_serial(sysfs.path(), "vol0123456789abcdef0").unwrap().unwrap();
        assert_eq!(found, FoundDevice { name: "nvme1n1".into(), major: 259, minor: 3 });
        assert_eq!(find_by_serial(sysfs.path(), "vol0ffffffffffffffff").unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn finds_a_device_that_appears_while_polling() {
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("block")).unwrap();
        let dev_dir = tempfile::tempdir().unwrap();
        let path = sysfs.path().to_path_buf();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            fake_device(&path, "nvme1n1", "vol0123", "7:200");
        });
        let node = wait_for_volume_device(
            "vol-0123",
            sysfs.path(),
            dev_dir.path(),
            dev_dir.path(),
            Duration::from_secs(60),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(node, dev_dir.path().join("nvme1n1"));
        let meta = std::fs::metadata(&node).unwrap();
        assert!(meta.file_type().is_block_device(), "a node is made when /dev lacks one");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_timeout() {
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sysfs.path().join("block")).unwrap();
        let err = wait_for_volume_device(
            "vol-0123",
            sysfs.path(),
            sysfs.path(),
            sysfs.path(),
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DiscoveryError::NotFound { .. }), "{err}");
    }
}
