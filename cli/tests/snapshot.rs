//! EBS snapshots without a volume (issue 14), through the EBS direct APIs of the emulator (moto
//! with the emulator's EBS patch, which checks block checksums, counts and the LINEAR checksum as
//! EBS does): `restore --to-snapshot` writes a raw archive into a new snapshot, read back block by
//! block with GetSnapshotBlock; `archive --snapshot` reads a snapshot with holes that the test
//! wrote with PutSnapshotBlock; `restore --to-snapshot --filesystem` makes a files archive into a
//! new filesystem, mounted back from the snapshot and compared with the source tree.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::{finish, CliEnv};
use common::ebs::{Aws, BLOCK, PATCHES};
use common::image::{self, Fs, MountedImage, MIB};
use common::populate::{populate_basic, populate_full};
use common::proxy::{Fault, FaultProxy};
use common::s3::{Moto, TestS3};
use common::tree::{compare_trees, Compare};
use common::{assert_bytes_equal, pseudo_random, require_image_prerequisites, shared_system, workdir};

/// Asserts that the snapshot's blocks are `image`, zero-padded to whole blocks: every block with
/// data is there and equal, every block left out is all zeros, and nothing lies beyond.
fn assert_snapshot_holds(blocks: &BTreeMap<u64, Vec<u8>>, image: &[u8]) {
    let count = image.len().div_ceil(BLOCK) as u64;
    assert!(blocks.keys().all(|&i| i < count), "blocks beyond the image: {:?}", blocks.keys().collect::<Vec<_>>());
    for index in 0..count {
        let start = index as usize * BLOCK;
        let mut expected = image[start..image.len().min(start + BLOCK)].to_vec();
        expected.resize(BLOCK, 0);
        match blocks.get(&index) {
            Some(data) => assert_bytes_equal(&format!("block {index}"), data, &expected),
            None => assert!(expected.iter().all(|&b| b == 0), "block {index} holds data but was not written"),
        }
    }
}

/// A raw archive of an ext4 image whose length is not a whole number of blocks: a filesystem
/// with data and zeros, then 100 KiB of incompressible bytes.
fn archived_image(t: &TestS3, env: &CliEnv, work: &Path, prefix: &str) -> Vec<u8> {
    let img = work.join("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    image::write_at(&img, 16 * MIB, &pseudo_random(14, 100 * 1024));
    env.archive(&img, &t.url(prefix), &["--mode", "raw"]);
    std::fs::read(&img).expect("read the image")
}

#[test]
fn restore_to_snapshot_writes_the_image_block_by_block() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-restore");
    let t = TestS3::start_with("snap-restore", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let image = archived_image(&t, &env, work.path(), "raw");

    let out = env.run([
        "restore",
        &t.url("raw"),
        "--to-snapshot",
        "--description",
        "drill restore",
        "--tags",
        "team=storage,purpose=drill",
        "--kms-key-id",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ]);
    out.assert_success();
    let snapshot_id = out.stdout_text().trim().to_string();
    assert!(snapshot_id.starts_with("snap-") && !snapshot_id.contains('\n'), "stdout is the id:\n{}", out.report());

    let aws = Aws::new(&t.endpoint());
    let (state, description, mut tags, encrypted) = aws.describe(&snapshot_id);
    tags.sort();
    assert_eq!((state.as_str(), description.as_str(), encrypted), ("completed", "drill restore", true));
    assert_eq!(tags, [("purpose".into(), "drill".into()), ("team".into(), "storage".into())]);
    let blocks = aws.blocks(&snapshot_id);
    assert_snapshot_holds(&blocks, &image);
    let total = image.len().div_ceil(BLOCK);
    assert!(blocks.len() < total, "all-zero blocks are left out: {} of {total} written", blocks.len());
    assert!(stderr_names_the_count(&out.stderr_text(), blocks.len()), "{}", out.report());
}

fn stderr_names_the_count(stderr: &str, count: usize) -> bool {
    stderr.contains(&format!("({count} blocks written)"))
}

#[test]
fn restore_to_snapshot_json_describes_the_snapshot() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-json");
    let t = TestS3::start_with("snap-json", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let image = archived_image(&t, &env, work.path(), "raw");
    let out = env.run(["restore", &t.url("raw"), "--to-snapshot", "--json"]);
    out.assert_success();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["bytes"].as_u64(), Some(image.len() as u64), "{json}");
    assert_eq!(json["volume_size_gib"].as_u64(), Some(1), "{json}");
    let snapshot_id = json["snapshot_id"].as_str().expect("snapshot_id");
    let aws = Aws::new(&t.endpoint());
    assert_eq!(json["blocks_written"].as_u64(), Some(aws.blocks(snapshot_id).len() as u64), "{json}");
    let (_, description, _, _) = aws.describe(snapshot_id);
    assert!(description.contains(&t.url("raw")), "the default description names the archive: {description}");
}

#[test]
fn a_block_whose_checksum_is_refused_is_tried_three_times_then_the_snapshot_is_deleted() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-bad-block");
    let t = TestS3::start_with("snap-bad-block", Moto::start_with_patches(PATCHES));
    archived_image(&t, &CliEnv::new(&t.endpoint()), work.path(), "raw");
    let aws = Aws::new(&t.endpoint());
    let before = aws.snapshot_ids();

    // Block 0 holds the ext4 superblock: never all zeros, so always written.
    let proxy = FaultProxy::start(t.moto.port, Fault::CorruptBlock(0));
    let out = CliEnv::new(&proxy.endpoint()).run(["restore", &t.url("raw"), "--to-snapshot"]);
    out.assert_code(1);
    out.assert_one_line_error(&["PutSnapshotBlock 0", "failed 3 times", "checksum"]);
    assert!(out.stdout.is_empty(), "no snapshot id is printed:\n{}", out.report());
    assert_eq!(proxy.stats.injected(), 3, "three attempts of block 0:\n{}", proxy.stats.log_text());
    assert_eq!(aws.snapshot_ids(), before, "the incomplete snapshot is deleted:\n{}", out.report());
}

#[test]
fn restore_to_snapshot_of_a_files_archive_without_a_raw_object_is_a_usage_error() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-files");
    let t = TestS3::start_with("snap-files", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let img = work.path().join("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    env.archive(&img, &t.url("files"), &[]);
    let aws = Aws::new(&t.endpoint());
    let before = aws.snapshot_ids();
    let out = env.run(["restore", &t.url("files"), "--to-snapshot"]);
    out.assert_code(2);
    out.assert_one_line_error(&["no raw object", "--filesystem ext4|xfs"]);
    assert_eq!(aws.snapshot_ids(), before, "no snapshot was started");
}

#[test]
fn archive_snapshot_reads_written_blocks_and_holes_as_zeros() {
    let t = TestS3::start_with("snap-archive", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let aws = Aws::new(&t.endpoint());
    // Blocks at both ends of the 1 GiB volume, two neighbours, and one alone between holes.
    let written: BTreeMap<u64, Vec<u8>> =
        [0u64, 1, 700, 2047].into_iter().map(|i| (i, pseudo_random(i + 1, BLOCK))).collect();
    let snapshot_id = aws.write_snapshot(&written);

    let out = env.run(["archive", "--snapshot", &snapshot_id, "--to", &t.url("direct"), "--json"]);
    out.assert_success();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["bytes_read"].as_u64(), Some(1 << 30), "{json}");
    let object = &json["objects"][0];
    assert_eq!((object["mode"].as_str(), object["key"].as_str()), (Some("raw"), Some("direct/disk.raw.gz")), "{json}");
    // The whole volume, holes as zeros, is the stream the manifest describes.
    use sha2::Digest;
    let mut expected = sha2::Sha256::new();
    let zeros = vec![0u8; BLOCK];
    for index in 0..(1u64 << 30) / BLOCK as u64 {
        expected.update(written.get(&index).unwrap_or(&zeros));
    }
    let expected = format!("{:x}", expected.finalize());
    assert_eq!(object["content_sha256"].as_str(), Some(expected.as_str()), "{json}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.s3.get(&t.bucket, "direct/manifest.json")).expect("manifest is JSON");
    assert_eq!(manifest["source"]["snapshot_id"].as_str(), Some(snapshot_id.as_str()), "{manifest}");
    assert!((object["size"].as_u64().unwrap()) < 8 << 20, "holes cost next to nothing: {json}");

    // And back: the archive restored into a new snapshot holds the same blocks, no more.
    let out = env.run(["restore", &t.url("direct"), "--to-snapshot"]);
    out.assert_success();
    assert_eq!(aws.blocks(out.stdout_text().trim()), written);
}

/// `archive --snapshot --mode files`: the snapshot copied into a local sparse image and archived
/// as a device, so the archive is the filesystem's tree, which `restore --to` gives back exactly.
#[test]
fn archive_snapshot_in_files_mode_archives_the_filesystems_tree() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-files");
    let t = TestS3::start_with("snap-files", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let source = work.path().join("source.img");
    image::fs_image(&source, Fs::Ext4, Fs::Ext4.min_size(), populate_full);
    env.archive(&source, &t.url("raw"), &["--mode", "raw"]);
    let out = env.run(["restore", &t.url("raw"), "--to-snapshot"]);
    out.assert_success();
    let snapshot_id = out.stdout_text().trim().to_string();

    let out = env.run(["archive", "--snapshot", &snapshot_id, "--mode", "files", "--to", &t.url("files"), "--json"]);
    out.assert_success();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let object = &json["objects"][0];
    assert_eq!((object["mode"].as_str(), object["fs_type"].as_str()), (Some("files"), Some("ext4")), "{json}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.s3.get(&t.bucket, "files/manifest.json")).expect("manifest is JSON");
    assert_eq!(manifest["source"]["snapshot_id"].as_str(), Some(snapshot_id.as_str()), "{manifest}");

    let restored = work.path().join("restored");
    let out = env.run(["restore".as_ref(), t.url("files").as_ref(), "--to".as_ref(), restored.as_os_str()]);
    out.assert_success();
    let expected = MountedImage::open(&source, None, Fs::Ext4, &work.path().join("expected"));
    let diffs = compare_trees(expected.dir(), &restored.join("disk"), Compare::exact());
    assert!(diffs.is_empty(), "the tree differs:\n  {}", diffs.join("\n  "));
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("the temporary directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("backup-archiver-snapshot-"))
        .collect();
    assert!(leftovers.is_empty(), "the local copy is removed: {leftovers:?}");
}

#[test]
fn archive_snapshot_of_a_missing_snapshot_fails_and_stores_nothing() {
    let t = TestS3::start_with("snap-missing", Moto::start_with_patches(PATCHES));
    let out =
        CliEnv::new(&t.endpoint()).run(["archive", "--snapshot", "snap-0123456789abcdef0", "--to", &t.url("missing")]);
    out.assert_code(1);
    out.assert_one_line_error(&["ListSnapshotBlocks", "snap-0123456789abcdef0", "ResourceNotFoundException"]);
    t.assert_nothing_under("missing/");
}

#[test]
fn restore_to_snapshot_of_one_partition_holds_that_partition() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-partition");
    let t = TestS3::start_with("snap-partition", Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let disk = image::gpt_disk(&work.path().join("gpt.img"), populate_basic);
    env.archive(&disk.image, &t.url("gpt"), &["--mode", "raw"]);

    let out = env.run(["restore", &t.url("gpt"), "--to-snapshot"]);
    out.assert_code(2);
    out.assert_one_line_error(&["3 raw objects", "--partition"]);
    let out = env.run(["restore", &t.url("gpt"), "--to-snapshot", "--partition", "3"]);
    out.assert_success();
    let blocks = Aws::new(&t.endpoint()).blocks(out.stdout_text().trim());
    assert_snapshot_holds(&blocks, &disk.unknown.bytes(&disk.image));
}

/// A files archive restored to a snapshot as a new `target` filesystem, read back block by block
/// into a sparse image, mounted and compared with the source tree, metadata included.
fn files_archive_to_snapshot(target: Fs) {
    require_image_prerequisites();
    let _system = shared_system();
    let tag = format!("snap-fs-{}", target.name());
    let work = workdir(&tag);
    let t = TestS3::start_with(&tag, Moto::start_with_patches(PATCHES));
    let env = CliEnv::new(&t.endpoint());
    let source = work.path().join("source.img");
    image::fs_image(&source, Fs::Ext4, Fs::Ext4.min_size(), populate_full);
    env.archive(&source, &t.url("files"), &["--mode", "files"]);

    let out = env.run(["restore", &t.url("files"), "--to-snapshot", "--filesystem", target.name(), "--json"]);
    out.assert_success();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let size = json["volume_size_gib"].as_u64().expect("volume_size_gib") << 30;
    let restored = work.path().join("restored.img");
    image::sparse_file(&restored, size);
    for (index, data) in Aws::new(&t.endpoint()).blocks(json["snapshot_id"].as_str().expect("snapshot_id")) {
        image::write_at(&restored, index * BLOCK as u64, &data);
    }
    assert_eq!(image::blkid_type(&restored), target.name());
    let expected = MountedImage::open(&source, None, Fs::Ext4, &work.path().join("expected"));
    let actual = MountedImage::open(&restored, None, target, &work.path().join("actual"));
    let diffs = compare_trees(expected.dir(), actual.dir(), Compare::exact());
    assert!(diffs.is_empty(), "the restored {} tree differs:\n  {}", target.name(), diffs.join("\n  "));
}

#[test]
fn files_archive_to_snapshot_as_ext4_keeps_every_kind_of_metadata() {
    files_archive_to_snapshot(Fs::Ext4);
}

#[test]
fn files_archive_to_snapshot_as_xfs_keeps_every_kind_of_metadata() {
    files_archive_to_snapshot(Fs::Xfs);
}

#[test]
fn a_snapshot_that_ebs_fails_at_completion_is_deleted() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-miscount");
    let t = TestS3::start_with("snap-miscount", Moto::start_with_patches(PATCHES));
    archived_image(&t, &CliEnv::new(&t.endpoint()), work.path(), "raw");
    let aws = Aws::new(&t.endpoint());
    let before = aws.snapshot_ids();

    let proxy = FaultProxy::start(t.moto.port, Fault::MiscountCompletion);
    let out = CliEnv::new(&proxy.endpoint()).run(["restore", &t.url("raw"), "--to-snapshot"]);
    out.assert_code(1);
    out.assert_one_line_error(&["ended in state error", "block count or the checksum"]);
    assert_eq!(proxy.stats.injected(), 1, "{}", proxy.stats.log_text());
    assert_eq!(aws.snapshot_ids(), before, "the failed snapshot is deleted:\n{}", out.report());
}

#[test]
fn an_interrupted_restore_to_snapshot_deletes_the_snapshot_and_exits_130() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("snap-sigint");
    let t = TestS3::start_with("snap-sigint", Moto::start_with_patches(PATCHES));
    archived_image(&t, &CliEnv::new(&t.endpoint()), work.path(), "raw");
    let aws = Aws::new(&t.endpoint());
    let before = aws.snapshot_ids();

    let proxy = FaultProxy::start(t.moto.port, Fault::DelayBlocks(Duration::from_millis(1500)));
    let running = CliEnv::new(&proxy.endpoint()).spawn(["restore", &t.url("raw"), "--to-snapshot"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.stats.log_text().contains("/blocks/") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(proxy.stats.log_text().contains("/blocks/"), "no block was written:\n{}", proxy.stats.log_text());
    running.signal(libc::SIGINT);
    let out = finish(running);
    out.assert_code(130);
    // Blocks the proxy still holds reach the emulator after the deletion and are refused there.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(aws.snapshot_ids(), before, "the interrupted snapshot is deleted:\n{}", out.report());
}
