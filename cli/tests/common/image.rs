//! Disk images built with the real tools: image files, loop devices and mounts behind guards that
//! always detach and unmount, mkfs for each filesystem, and GPT/MBR disks.
//!
//! Partitions are attached as loop devices with `--offset/--sizelimit` rather than with
//! `--partscan`: the kernels this project's CI runs on are built without GPT and MBR partition
//! parsers (`CONFIG_EFI_PARTITION`, `CONFIG_MSDOS_PARTITION`), so partition scanning finds nothing.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{run_ok, run_timeout, sh, SYSTEM_PATH};

pub const MIB: u64 = 1 << 20;
pub const SECTOR: u64 = 512;

/// Creates (or truncates) a sparse file of `size` bytes.
pub fn sparse_file(path: &Path, size: u64) {
    let f = OpenOptions::new().create(true).write(true).truncate(true).open(path).expect("create image");
    f.set_len(size).expect("size image");
}

/// Writes `bytes` at `offset` of an existing file.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all_at(bytes, offset).expect("write image");
    f.sync_all().expect("sync image");
}

/// A loop device, detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
    /// What it was attached to, so that a retried detach never hits a device that another test
    /// has attached since (loop device names are reused at once).
    backing: (PathBuf, u64),
}

impl LoopDevice {
    /// Attaches `image` (or `size` bytes of it from `offset`) to a free loop device.
    pub fn attach(image: &Path, offset: Option<u64>, size: Option<u64>, read_only: bool) -> LoopDevice {
        let mut cmd = Command::new("losetup");
        cmd.arg("--find").arg("--show");
        if let Some(o) = offset {
            cmd.arg("--offset").arg(o.to_string());
        }
        if let Some(s) = size {
            cmd.arg("--sizelimit").arg(s.to_string());
        }
        if read_only {
            cmd.arg("--read-only");
        }
        cmd.arg(image);
        let out = run_ok(&mut cmd);
        let printed = String::from_utf8_lossy(&out).trim().to_string();
        let backing = (std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf()), offset.unwrap_or(0));
        let dev = LoopDevice { path: PathBuf::from(&printed), backing };
        assert!(printed.starts_with("/dev/loop"), "losetup printed {printed:?}");
        dev
    }

    pub fn whole(image: &Path) -> LoopDevice {
        Self::attach(image, None, None, false)
    }
}

impl LoopDevice {
    /// True while this device is still attached to what we attached it to.
    fn still_ours(&self) -> bool {
        let Some(name) = self.path.file_name() else {
            return false;
        };
        let sys = Path::new("/sys/block").join(name).join("loop");
        let backing = std::fs::read_to_string(sys.join("backing_file")).unwrap_or_default();
        let offset = std::fs::read_to_string(sys.join("offset")).unwrap_or_default();
        Path::new(backing.trim()) == self.backing.0 && offset.trim() == self.backing.1.to_string()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // A busy device is detached by the kernel once closed (autoclear), so `losetup -d`
        // normally succeeds at once; retry only while the device is still ours.
        for attempt in 0..50 {
            if attempt > 0 && !self.still_ours() {
                return;
            }
            let out = run_timeout(
                Command::new("losetup").arg("-d").arg(&self.path).env("PATH", SYSTEM_PATH),
                super::TOOL_TIMEOUT,
            );
            if out.status.success() {
                return;
            }
            eprintln!("losetup -d {} failed: {}", self.path.display(), String::from_utf8_lossy(&out.stderr).trim());
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {}", self.path.display());
    }
}

/// Loop devices attached to `image` right now (`losetup -j`).
pub fn loops_of(image: &Path) -> Vec<String> {
    String::from_utf8_lossy(&sh("losetup", ["-j".as_ref(), image.as_os_str()])).lines().map(str::to_string).collect()
}

/// A mounted filesystem, unmounted on drop. Declare it after the loop device it uses so that
/// it is dropped first.
#[derive(Debug)]
pub struct Mount {
    pub dir: PathBuf,
}

impl Mount {
    pub fn new(device: &Path, dir: &Path, fs: Fs, read_only: bool) -> Mount {
        std::fs::create_dir_all(dir).expect("create mount point");
        let mut opts = vec![if read_only { "ro" } else { "rw" }];
        if fs == Fs::Xfs {
            // Two images made from one another share a UUID; XFS refuses the second without this.
            opts.push("nouuid");
        }
        sh(
            "mount",
            [
                "-t".as_ref(),
                fs.mount_type().as_ref(),
                "-o".as_ref(),
                opts.join(",").as_ref(),
                device.as_os_str(),
                dir.as_os_str(),
            ],
        );
        Mount { dir: dir.to_path_buf() }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..50 {
            let out = run_timeout(Command::new("umount").arg(&self.dir).env("PATH", SYSTEM_PATH), super::TOOL_TIMEOUT);
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Last resort, so that the loop device under it can go.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).env("PATH", SYSTEM_PATH).status();
        eprintln!("warning: lazily unmounted {}", self.dir.display());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
}

impl Fs {
    /// The name blkid and the manifest use.
    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
            Fs::Vfat => "vfat",
        }
    }

    pub fn mount_type(self) -> &'static str {
        self.name()
    }

    /// The smallest image each mkfs accepts, rounded up: xfsprogs >= 5.19 refuses under 300 MB,
    /// btrfs-progs under 114 MiB. Images are sparse, so unused size costs nothing.
    pub fn min_size(self) -> u64 {
        match self {
            Fs::Ext4 => 16 * MIB,
            Fs::Xfs => 320 * MIB,
            Fs::Btrfs => 128 * MIB,
            Fs::Vfat => 16 * MIB,
        }
    }
}

/// Makes a filesystem on `device` (a loop device or, for vfat, also an image file).
pub fn mkfs(fs: Fs, device: &Path) {
    match fs {
        // 256-byte inodes hold nanosecond timestamps and in-inode xattrs whatever mke2fs.conf says.
        Fs::Ext4 => sh("mkfs.ext4", ["-q".as_ref(), "-F".as_ref(), "-I".as_ref(), "256".as_ref(), device.as_os_str()]),
        Fs::Xfs => sh("mkfs.xfs", ["-q".as_ref(), "-f".as_ref(), device.as_os_str()]),
        Fs::Btrfs => sh("mkfs.btrfs", ["-q".as_ref(), "-f".as_ref(), device.as_os_str()]),
        Fs::Vfat => sh("mkfs.vfat", [device.as_os_str()]),
    };
}

/// Builds a whole-disk filesystem image of `size` bytes at `path` and fills it with `populate`
/// (not for vfat: see [`vfat_image`]).
pub fn fs_image(path: &Path, fs: Fs, size: u64, populate: impl FnOnce(&Path)) {
    assert_ne!(fs, Fs::Vfat, "vfat images are filled with mtools: use vfat_image");
    sparse_file(path, size.max(fs.min_size()));
    let dev = LoopDevice::whole(path);
    mkfs(fs, &dev.path);
    let mnt_dir = path.with_extension("mnt");
    {
        let mnt = Mount::new(&dev.path, &mnt_dir, fs, false);
        populate(&mnt.dir);
        sh("sync", ["-f".as_ref(), mnt.dir.as_os_str()]);
    }
    drop(dev);
    let _ = std::fs::remove_dir(&mnt_dir);
}

/// Builds a vfat image holding a copy of `reference` (files and directories only), made with
/// mtools so that it works on kernels without the vfat driver. Times are written as UTC.
pub fn vfat_image(path: &Path, size: u64, reference: &Path) {
    sparse_file(path, size.max(Fs::Vfat.min_size()));
    mkfs(Fs::Vfat, path);
    let mut entries: Vec<_> =
        std::fs::read_dir(reference).expect("read reference").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    if entries.is_empty() {
        return;
    }
    let mut cmd = Command::new("mcopy");
    // -s recursive, -p keep attributes, -m keep modification times, -Q stop at the first error.
    cmd.args(["-s", "-p", "-m", "-Q", "-i"])
        .arg(path)
        .args(&entries)
        .arg("::/")
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1");
    run_ok(&mut cmd);
}

/// A partition as the tests lay it out: number, start and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub size: u64,
}

impl Partition {
    /// Attaches just this partition of `image` to a loop device.
    pub fn attach(&self, image: &Path, read_only: bool) -> LoopDevice {
        LoopDevice::attach(image, Some(self.start), Some(self.size), read_only)
    }

    /// The partition's bytes in `image`.
    pub fn bytes(&self, image: &Path) -> Vec<u8> {
        super::read_range(image, self.start, self.size)
    }
}

/// The partitions of `image` as `sfdisk --json` reads them (start and size in bytes).
pub fn read_partitions(image: &Path) -> (String, Vec<Partition>) {
    let out = sh("sfdisk", ["--json".as_ref(), image.as_os_str()]);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("sfdisk --json output");
    let table = &v["partitiontable"];
    let label = table["label"].as_str().unwrap_or_default().to_string();
    let unit = table["sectorsize"].as_u64().unwrap_or(SECTOR);
    let image_str = image.to_string_lossy().into_owned();
    let parts = table["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let node = p["node"].as_str().expect("node");
            let number =
                node.strip_prefix(&image_str).unwrap_or(node).trim_start_matches(|c: char| !c.is_ascii_digit());
            Partition {
                number: number.parse().unwrap_or_else(|_| panic!("partition number in {node:?}")),
                start: p["start"].as_u64().expect("start") * unit,
                size: p["size"].as_u64().expect("size") * unit,
            }
        })
        .collect();
    (label, parts)
}

/// The GPT disk of the tests: 1 = ext4, 2 = xfs, 3 = unknown (pseudo-random bytes).
pub struct GptDisk {
    pub image: PathBuf,
    pub ext4: Partition,
    pub xfs: Partition,
    pub unknown: Partition,
}

/// Sizes of the GPT disk's partitions. xfs needs 300 MB; the image is sparse.
const GPT_EXT4_SIZE: u64 = 32 * MIB;
const GPT_XFS_SIZE: u64 = 320 * MIB;
const GPT_UNKNOWN_SIZE: u64 = 8 * MIB;

/// Builds the GPT disk, filling both filesystems with `populate`.
pub fn gpt_disk(path: &Path, populate: impl Fn(&Path)) -> GptDisk {
    let size = MIB + GPT_EXT4_SIZE + GPT_XFS_SIZE + GPT_UNKNOWN_SIZE + MIB;
    sparse_file(path, size);
    let part = |n: u32, size: u64, code: &str| format!("-n{n}:0:+{}M", size / MIB) + &format!(" -t{n}:{code}");
    let mut args: Vec<String> = Vec::new();
    for spec in [part(1, GPT_EXT4_SIZE, "8300"), part(2, GPT_XFS_SIZE, "8300"), part(3, GPT_UNKNOWN_SIZE, "8301")] {
        args.extend(spec.split(' ').map(str::to_string));
    }
    args.push(path.to_string_lossy().into_owned());
    sh("sgdisk", &args);
    let (label, parts) = read_partitions(path);
    assert_eq!(label, "gpt");
    assert_eq!(parts.len(), 3, "{parts:?}");
    let disk = GptDisk { image: path.to_path_buf(), ext4: parts[0], xfs: parts[1], unknown: parts[2] };
    for (p, fs) in [(disk.ext4, Fs::Ext4), (disk.xfs, Fs::Xfs)] {
        let dev = p.attach(path, false);
        mkfs(fs, &dev.path);
        let mnt_dir = path.with_extension(format!("p{}.mnt", p.number));
        {
            let mnt = Mount::new(&dev.path, &mnt_dir, fs, false);
            populate(&mnt.dir);
            sh("sync", ["-f".as_ref(), mnt.dir.as_os_str()]);
        }
        drop(dev);
        let _ = std::fs::remove_dir(&mnt_dir);
    }
    write_at(path, disk.unknown.start, &super::pseudo_random(3, disk.unknown.size as usize));
    disk
}

/// The MBR disk of the tests: one ext4 partition, filled with `populate`.
pub fn mbr_disk(path: &Path, populate: impl FnOnce(&Path)) -> Partition {
    sparse_file(path, 48 * MIB);
    let script = "label: dos\nstart=2048, size=65536, type=83\n";
    let mut cmd = Command::new("sfdisk");
    cmd.arg("--quiet").arg(path).env("PATH", SYSTEM_PATH);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sfdisk");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write sfdisk script");
    let out = child.wait_with_output().expect("sfdisk");
    assert!(out.status.success(), "sfdisk failed: {}", String::from_utf8_lossy(&out.stderr));
    let (label, parts) = read_partitions(path);
    assert_eq!(label, "dos");
    assert_eq!(parts.len(), 1, "{parts:?}");
    let p = parts[0];
    let dev = p.attach(path, false);
    mkfs(Fs::Ext4, &dev.path);
    let mnt_dir = path.with_extension("p1.mnt");
    {
        let mnt = Mount::new(&dev.path, &mnt_dir, Fs::Ext4, false);
        populate(&mnt.dir);
        sh("sync", ["-f".as_ref(), mnt.dir.as_os_str()]);
    }
    drop(dev);
    let _ = std::fs::remove_dir(&mnt_dir);
    p
}

/// A read-only view of a filesystem in an image (or a partition of one), for comparisons.
pub struct MountedImage {
    // Field order matters: the mount goes before the loop device under it.
    pub mount: Mount,
    pub device: LoopDevice,
}

impl MountedImage {
    pub fn open(image: &Path, partition: Option<Partition>, fs: Fs, dir: &Path) -> MountedImage {
        let device = match partition {
            Some(p) => p.attach(image, true),
            None => LoopDevice::attach(image, None, None, true),
        };
        let mount = Mount::new(&device.path, dir, fs, true);
        MountedImage { mount, device }
    }

    pub fn dir(&self) -> &Path {
        &self.mount.dir
    }
}

/// What blkid sees at a path (a file or a device), as `TYPE` (empty when nothing is recognised).
pub fn blkid_type(path: &Path) -> String {
    let out = run_timeout(
        Command::new("blkid").args(["-p", "-o", "value", "-s", "TYPE"]).arg(path).env("PATH", SYSTEM_PATH),
        super::TOOL_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Offset of the ext2/3/4 superblock, and of `s_log_block_size` in it.
const EXT4_SUPERBLOCK: u64 = 1024;
const EXT4_LOG_BLOCK_SIZE: u64 = 24;

/// An ext4 image (16 MiB, 4 KiB blocks: one block group, so no backup superblock) with a few
/// files, whose superblock is then zeroed: nothing recognises it any more.
pub fn ext4_with_zeroed_superblock(path: &Path) {
    sparse_file(path, 16 * MIB);
    sh("mkfs.ext4", ["-q".as_ref(), "-F".as_ref(), "-b".as_ref(), "4096".as_ref(), path.as_os_str()]);
    fill_small(path, Fs::Ext4);
    write_at(path, EXT4_SUPERBLOCK, &[0u8; 1024]);
}

/// An ext4 image whose superblock still carries the ext4 magic (blkid says ext4) but claims an
/// impossible block size, so the kernel refuses to mount it. Built without `metadata_csum`, so
/// that blkid does not reject the superblock on its checksum.
pub fn ext4_with_bad_block_size(path: &Path) {
    sparse_file(path, 16 * MIB);
    sh("mkfs.ext4", ["-q".as_ref(), "-F".as_ref(), "-O".as_ref(), "^metadata_csum".as_ref(), path.as_os_str()]);
    fill_small(path, Fs::Ext4);
    write_at(path, EXT4_SUPERBLOCK + EXT4_LOG_BLOCK_SIZE, &20u32.to_le_bytes());
}

/// An xfs image whose primary superblock sector is overwritten with pseudo-random bytes.
pub fn xfs_with_garbage_superblock(path: &Path) {
    sparse_file(path, Fs::Xfs.min_size());
    sh("mkfs.xfs", ["-q".as_ref(), "-f".as_ref(), path.as_os_str()]);
    fill_small(path, Fs::Xfs);
    write_at(path, 0, &super::pseudo_random(10, 512));
}

/// A few files, so that a corrupt image is not all zeroes.
fn fill_small(path: &Path, fs: Fs) {
    let dev = LoopDevice::whole(path);
    let mnt_dir = path.with_extension("mnt");
    {
        let mnt = Mount::new(&dev.path, &mnt_dir, fs, false);
        std::fs::write(mnt.dir.join("a.txt"), b"some text\n").expect("write");
        std::fs::write(mnt.dir.join("b.bin"), super::pseudo_random(11, 300_000)).expect("write");
    }
    drop(dev);
    let _ = std::fs::remove_dir(&mnt_dir);
}

/// True when `mount -o ro` of `image` fails.
pub fn mount_fails(image: &Path, fs: Fs, dir: &Path) -> bool {
    let dev = LoopDevice::attach(image, None, None, true);
    std::fs::create_dir_all(dir).expect("mkdir");
    let out = run_timeout(
        Command::new("mount")
            .args(["-t", fs.mount_type(), "-o", "ro"])
            .arg(&dev.path)
            .arg(dir)
            .env("PATH", SYSTEM_PATH),
        super::TOOL_TIMEOUT,
    );
    if out.status.success() {
        let _ = Command::new("umount").arg(dir).env("PATH", SYSTEM_PATH).status();
    }
    drop(dev);
    !out.status.success()
}
