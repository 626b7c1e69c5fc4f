//! `batch-worker --snapshot` (issue 14): the EBS flow's direct path archives a snapshot's blocks
//! through the EBS direct APIs, no volume attached, holes as zeros; the snapshot is written by the
//! test with PutSnapshotBlock into the emulator (moto with its EBS patch).

mod common;

use std::collections::BTreeMap;

use common::ebs::{Aws, BLOCK, PATCHES};
use common::s3::{Moto, TestS3};
use common::{run_timeout, sealed, workdir, WORKER, WORKER_TIMEOUT};
use sha2::Digest;

#[test]
fn the_worker_archives_a_snapshot_with_holes_through_the_direct_apis() {
    let t = TestS3::start_with("worker-direct", Moto::start_with_patches(PATCHES));
    let home = workdir("home");
    let aws = Aws::new(&t.endpoint());
    // A different byte pattern in each written block (the block index in every 8-byte word).
    let written: BTreeMap<u64, Vec<u8>> = [3u64, 4, 1500]
        .into_iter()
        .map(|i| (i, (0..BLOCK / 8).flat_map(|w| (i << 32 | w as u64).to_le_bytes()).collect()))
        .collect();
    let snapshot_id = aws.write_snapshot(&written);

    let mut cmd = sealed(WORKER, &t.endpoint(), home.path());
    cmd.args(["--snapshot", &snapshot_id, "--to", &t.url("worker"), "--compression", "zstd"]);
    let out = run_timeout(&mut cmd, WORKER_TIMEOUT);
    assert!(out.status.success(), "the worker failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report on stdout");
    assert_eq!(report["bytes_read"].as_u64(), Some(1 << 30), "{report}");

    // The object, decompressed by the system's zstd, is the volume: blocks where written, zeros elsewhere.
    let work = workdir("worker-direct");
    let object = work.path().join("disk.raw.zst");
    t.s3.download(&t.bucket, "worker/disk.raw.zst", &object);
    let volume = common::run_ok(std::process::Command::new("zstd").arg("-dc").arg(&object));
    assert_eq!(volume.len(), 1 << 30);
    for (index, chunk) in volume.chunks(BLOCK).enumerate() {
        match written.get(&(index as u64)) {
            Some(data) => assert!(chunk == data.as_slice(), "block {index} differs"),
            None => assert!(chunk.iter().all(|&b| b == 0), "hole {index} is not zeros"),
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.s3.get(&t.bucket, "worker/manifest.json")).expect("manifest is JSON");
    let object = &manifest["objects"][0];
    assert_eq!(object["content_sha256"].as_str(), Some(format!("{:x}", sha2::Sha256::digest(&volume)).as_str()));
    assert_eq!(manifest["source"]["snapshot_id"].as_str(), Some(snapshot_id.as_str()));
}
