//! Shared harness of the end-to-end tests: a moto S3 server per test, disk images built with the
//! real tools on loop devices, a tree comparator, a fault-injecting HTTP proxy, and a runner for
//! the `backup-archiver` binary with an environment that can only reach the loopback server.
//!
//! Layout:
//! - [`s3`]: a moto server (the emulator's S3 patch) on a free loopback port, killed on drop; an S3 client.
//! - [`ebs`]: snapshots written and read through the emulator's EBS direct APIs.
//! - [`image`]: image files, loop devices and mounts (each behind a guard), mkfs, partition tables.
//! - [`populate`]: fills a tree with every kind of metadata issue 2 item 5 lists.
//! - [`tree`]: compares two trees entry by entry and lists every difference.
//! - [`proxy`]: an HTTP/1.1 proxy that fails or drops chosen UploadPart requests.
//! - [`cli`]: runs `backup-archiver` with a bounded time and a sealed environment.
//! - [`host`]: root, tools, work directories, and child processes with a time limit.
//! - [`world`]: one test's work directory, S3 server and CLI environment.
//!
//! Everything here runs as root and fails (never skips) when a tool is missing: `scripts/setup`
//! installs them all.
#![allow(dead_code)]

pub mod cli;
pub mod ebs;
pub mod host;
pub mod image;
pub mod populate;
pub mod proxy;
pub mod s3;
pub mod tree;
pub mod world;

use std::path::Path;
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use host::*;

/// The tools every image-building test uses.
pub const IMAGE_TOOLS: &[&str] = &[
    "losetup",
    "mount",
    "umount",
    "blkid",
    "truncate",
    "mkfs.ext4",
    "mkfs.xfs",
    "mkfs.btrfs",
    "mkfs.vfat",
    "sgdisk",
    "sfdisk",
    "setfattr",
    "setfacl",
    "getfacl",
    "tar",
    "gzip",
    "zstd",
    "mcopy",
    "mmd",
];

/// Root, the image tools, and the loop driver: what every loop-device test needs.
pub fn require_image_prerequisites() {
    require_root();
    require_tools(IMAGE_TOOLS);
    assert!(Path::new("/dev/loop-control").exists(), "/dev/loop-control is missing: the kernel has no loop driver");
}

// Tests that check that nothing is left behind (`losetup -a`, /proc/mounts before and after) take
// the write side; every other test that attaches loop devices or mounts takes the read side, so
// the global state they compare is theirs alone. Test binaries run one after another, so a
// process-wide lock covers the whole suite.
static SYSTEM_STATE: RwLock<()> = RwLock::new(());

/// Held by a test that attaches loop devices or mounts filesystems.
pub fn shared_system() -> RwLockReadGuard<'static, ()> {
    SYSTEM_STATE.read().unwrap_or_else(|e| e.into_inner())
}

/// Held by a test that compares the system's loop devices and mounts before and after.
pub fn exclusive_system() -> RwLockWriteGuard<'static, ()> {
    SYSTEM_STATE.write().unwrap_or_else(|e| e.into_inner())
}

/// What a leak check compares: attached loop devices and mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemState {
    pub loops: Vec<String>,
    pub mounts: Vec<String>,
}

pub fn system_state() -> SystemState {
    let loops = String::from_utf8_lossy(&run_ok(Command::new("losetup").arg("-a")))
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mounts = std::fs::read_to_string("/proc/mounts")
        .expect("read /proc/mounts")
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mut state = SystemState { loops, mounts };
    state.loops.sort();
    state.mounts.sort();
    state
}

/// Deterministic pseudo-random bytes (xorshift64*): incompressible data that is the same on
/// every run, so a failure reproduces.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Hex SHA-256 of a file, via coreutils (the CLI's own hashing is what is under test).
pub fn sha256_file(path: &Path) -> String {
    let out = sh("sha256sum", [path]);
    // A name with a newline or a backslash makes sha256sum escape it and mark the line with `\`.
    let line = String::from_utf8_lossy(&out);
    line.trim_start_matches('\\').split_whitespace().next().expect("sha256sum output").to_string()
}

/// Reads `len` bytes at `offset` of a file.
pub fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset).unwrap_or_else(|e| panic!("read {}@{offset}: {e}", path.display()));
    buf
}

/// Panics with a short description when two large byte strings differ (never prints them).
pub fn assert_bytes_equal(what: &str, actual: &[u8], expected: &[u8]) {
    if actual == expected {
        return;
    }
    let first = actual.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(actual.len().min(expected.len()));
    panic!("{what}: {} bytes, expected {} bytes; first difference at byte {first}", actual.len(), expected.len());
}

/// Checks `archive --json` against the bucket: every object is under `prefix/`, its size and
/// SHA-256 are those of the stored bytes, and the prefix holds exactly these objects and the
/// manifest.
#[track_caller]
pub fn check_archive_output(out: &cli::ArchiveOutput, t: &s3::TestS3, prefix: &str) {
    let mut expected: Vec<String> = out.objects.iter().map(|o| o.key.clone()).collect();
    expected.push(format!("{prefix}/manifest.json"));
    // Every files-mode object has an index (issue 13), stored beside it under the size and
    // SHA-256 the manifest gives.
    for o in &out.objects {
        let index = &o.json["index"];
        assert_eq!(index.is_object(), o.mode == "files", "index of a {} object: {}", o.mode, o.json);
        if let Some(key) = index["key"].as_str() {
            let bytes = t.s3.get(&t.bucket, key);
            assert_eq!(Some(bytes.len() as u64), index["size"].as_u64(), "size of the index {key}");
            let tmp = workdir("sha");
            let f = tmp.path().join("index");
            std::fs::write(&f, &bytes).expect("write index");
            assert_eq!(Some(sha256_file(&f).as_str()), index["sha256"].as_str(), "sha256 of the index {key}");
            expected.push(key.to_string());
        }
    }
    expected.sort();
    assert_eq!(t.keys(&format!("{prefix}/")), expected, "objects under the prefix; --json said {}", out.json);
    for o in &out.objects {
        assert!(o.key.starts_with(&format!("{prefix}/")), "{} is not under {prefix}/", o.key);
        let bytes = t.s3.get(&t.bucket, &o.key);
        assert_eq!(bytes.len() as u64, o.size, "size of {} in --json", o.key);
        assert!(o.sha256.len() == 64 && o.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "sha256 {:?}", o.sha256);
        let tmp = workdir("sha");
        let f = tmp.path().join("object");
        std::fs::write(&f, &bytes).expect("write object");
        assert_eq!(sha256_file(&f), o.sha256.to_lowercase(), "sha256 of {} in --json", o.key);
    }
    assert!(out.bytes_read > 0, "bytes_read is 0: {}", out.json);
    assert!(out.seconds >= 0.0 && out.seconds < cli::CLI_TIMEOUT.as_secs_f64(), "seconds: {}", out.json);
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.s3.get(&t.bucket, &format!("{prefix}/manifest.json"))).expect("manifest is JSON");
    assert_eq!(
        manifest["objects"].as_array().map(Vec::len),
        Some(out.objects.len()),
        "the manifest lists the objects --json printed: {manifest}"
    );
}
