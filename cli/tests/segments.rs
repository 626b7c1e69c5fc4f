//! Segmented objects and bounded memory (issue 12 item 2): a stream longer than `--segment-size`
//! is stored as consecutive segment objects, each a valid gzip stream alone, whose concatenation
//! GNU tar and gunzip read as the whole stream; the CLI's peak RSS stays under 256 MiB with the
//! default part size whatever the source size; `verify` (S3's checksums, and `--deep`) and
//! `restore` read the segments.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{CliEnv, CliOutput, CLI_TIMEOUT};
use common::image::{self, Fs, MountedImage, MIB};
use common::s3::TestS3;
use common::tree::{assert_same_tree, Compare};
use common::{pseudo_random, require_image_prerequisites, sha256_file, shared_system, workdir, SYSTEM_PATH};

/// Incompressible, so that the compressed stream is as long as the source: 640 MiB make ten
/// 64 MiB segments, enough for memory to settle, in well under a minute against moto.
const RAW_SOURCE: u64 = 640 * MIB;
const SEGMENT: u64 = 64 * MIB;
/// The README promises 256 MiB at default settings; the test holds the design tighter, so that a
/// regression shows before the promise breaks: the part being filled and four in flight are
/// 80 MiB, compression, reads and the runtime add a few tens (72 MiB measured in all).
const PEAK_RSS_LIMIT_KIB: u64 = 160 * 1024;

/// Writes `len` bytes of pseudo-random data without holding them all in memory.
fn random_image(path: &Path, len: u64) {
    let mut file = std::fs::File::create(path).expect("create image");
    for (i, offset) in (0..len).step_by(16 * MIB as usize).enumerate() {
        let chunk = (len - offset).min(16 * MIB) as usize;
        file.write_all(&pseudo_random(1000 + i as u64, chunk)).expect("write image");
    }
}

/// The segments of `object` as the manifest lists them: (key, size, checksum).
fn segments(object: &serde_json::Value) -> Vec<(String, u64, String)> {
    object["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {object}"))
        .iter()
        .map(|s| {
            (
                s["key"].as_str().expect("segment key").to_string(),
                s["size"].as_u64().expect("segment size"),
                s["checksum_crc64nvme"].as_str().expect("segment checksum").to_string(),
            )
        })
        .collect()
}

/// Downloads every segment into `dir` under its own name and returns the paths in the order a
/// shell glob lists them.
fn download_segments(t: &TestS3, keys: &[String], dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("create download dir");
    for key in keys {
        t.s3.download(&t.bucket, key, &dir.join(key.rsplit('/').next().expect("a name")));
    }
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read download dir").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    paths
}

/// `sh -c SCRIPT` with the system PATH, asserting success.
fn shell(script: &str) {
    let out = Command::new("sh").args(["-c", script]).env("PATH", SYSTEM_PATH).output().expect("run sh");
    assert!(out.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_raw_stream_longer_than_the_segment_size_is_stored_in_segments_with_bounded_memory() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("segments-raw");
    let image = work.path().join("random.img");
    random_image(&image, RAW_SOURCE);
    let t = TestS3::start("segments-raw");
    let env = CliEnv::new(&t.endpoint());
    let running = env.spawn([
        "archive".as_ref(),
        "--device".as_ref(),
        image.as_os_str(),
        "--to".as_ref(),
        t.url("seg").as_ref(),
        "--mode".as_ref(),
        "raw".as_ref(),
        "--level".as_ref(),
        "1".as_ref(),
        "--segment-size".as_ref(),
        "64MiB".as_ref(),
        "--json".as_ref(),
    ]);
    let cmdline = running.cmdline.clone();
    let (out, peak_kib) = running.wait_measured(CLI_TIMEOUT);
    let out = CliOutput { cmdline, status: out.status, stdout: out.stdout, stderr: out.stderr };
    out.assert_success();
    eprintln!("peak RSS of a {} MiB raw archive in 64 MiB segments: {} MiB", RAW_SOURCE / MIB, peak_kib / 1024);
    assert!(peak_kib < PEAK_RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB is over {PEAK_RSS_LIMIT_KIB} KiB");

    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
    let object = &json["objects"][0];
    let segments = segments(object);
    assert!(segments.len() >= 10, "{} segments: {object}", segments.len());
    for (i, (key, size, _)) in segments.iter().enumerate() {
        let expected = if i == 0 { "seg/disk.raw.gz".to_string() } else { format!("seg/disk.raw.gz.{i:04}") };
        assert_eq!(key, &expected);
        assert!(
            *size <= SEGMENT && *size > SEGMENT - 2 * MIB || i == segments.len() - 1,
            "segment {key}: {size} bytes"
        );
    }
    assert_eq!(object["size"].as_u64(), Some(segments.iter().map(|s| s.1).sum()), "{object}");

    let keys: Vec<String> = segments.iter().map(|s| s.0.clone()).collect();
    let paths = download_segments(&t, &keys, &work.path().join("segments"));
    // Each segment is a gzip stream alone, and the glob's order is the manifest's.
    shell(&format!("gzip -t '{}'", paths[3].display()));
    let restored = work.path().join("gunzipped.img");
    shell(&format!(
        "cat '{}'/disk.raw.gz* | gzip -dc > '{}'",
        work.path().join("segments").display(),
        restored.display()
    ));
    assert_eq!(sha256_file(&restored), sha256_file(&image), "cat of the segments | gunzip differs from the image");
    std::fs::remove_file(&restored).expect("remove the gunzipped copy");

    let verify = env.run(["verify", &t.url("seg"), "--json"]);
    verify.assert_success();
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("verify --json");
    assert_eq!(report["objects"][0]["method"], "checksum", "{report}");
    assert_eq!(report["objects"][0]["segments"].as_array().map(Vec::len), Some(segments.len()), "{report}");
    env.run(["verify", "--deep", &t.url("seg")]).assert_success();

    let copy = work.path().join("restored.img");
    env.run(["restore".as_ref(), t.url("seg").as_ref(), "--to-image".as_ref(), copy.as_os_str()]).assert_success();
    assert_eq!(sha256_file(&copy), sha256_file(&image), "restore --to-image differs from the image");
}

#[test]
fn gnu_tar_extracts_the_concatenated_segments_of_a_files_archive() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("segments-files");
    let img = work.path().join("ext4.img");
    image::fs_image(&img, Fs::Ext4, 64 * MIB, |root| {
        for i in 0..6u64 {
            std::fs::write(root.join(format!("random-{i}.bin")), pseudo_random(i, 4 * MIB as usize))
                .expect("write file");
        }
        std::fs::create_dir(root.join("dir")).expect("mkdir");
        std::fs::write(root.join("dir/small.txt"), b"hello\n").expect("write file");
    });
    let t = TestS3::start("segments-files");
    let env = CliEnv::new(&t.endpoint());
    let out = env.archive(&img, &t.url("tar"), &["--mode", "files", "--part-size", "5MiB", "--segment-size", "5MiB"]);
    let object = &out.objects[0].json;
    let segments = segments(object);
    assert!(segments.len() >= 5, "{} segments: {object}", segments.len());
    let keys: Vec<String> = segments.iter().map(|s| s.0.clone()).collect();
    let dir = work.path().join("segments");
    download_segments(&t, &keys, &dir);
    let extracted = work.path().join("extracted");
    std::fs::create_dir(&extracted).expect("mkdir");
    shell(&format!(
        "cat '{}'/disk.tar.gz* | tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpz -C '{}'",
        dir.display(),
        extracted.display()
    ));
    let src = MountedImage::open(&img, None, Fs::Ext4, &work.path().join("src"));
    assert_same_tree(src.dir(), &extracted, Compare::exact());

    // A segment that differs from the manifest (same size, other bytes) fails both checks.
    let (key, size, _) = &segments[1];
    t.s3.put(&t.bucket, key, vec![0u8; *size as usize]);
    env.run(["verify", &t.url("tar")]).assert_code(1);
    env.run(["verify", "--deep", &t.url("tar")]).assert_code(1);
}

#[test]
fn an_archive_written_before_segments_and_checksums_still_verifies_in_full_and_restores() {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("segments-old");
    let image = work.path().join("random.img");
    random_image(&image, 8 * MIB);
    let t = TestS3::start("segments-old");
    let env = CliEnv::new(&t.endpoint());
    env.archive(&image, &t.url("old"), &["--mode", "raw"]);
    // The manifest as the previous format wrote it: no segments, no checksums.
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&t.s3.get(&t.bucket, "old/manifest.json")).expect("manifest is JSON");
    manifest["objects"][0].as_object_mut().expect("an object").remove("segments");
    t.s3.put(&t.bucket, "old/manifest.json", serde_json::to_vec(&manifest).expect("JSON"));

    let verify = env.run(["verify", &t.url("old"), "--json"]);
    verify.assert_success();
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("verify --json");
    assert_eq!(report["objects"][0]["method"], "sha256", "no checksum recorded: every byte is read: {report}");
    let copy = work.path().join("restored.img");
    env.run(["restore".as_ref(), t.url("old").as_ref(), "--to-image".as_ref(), copy.as_os_str()]).assert_success();
    assert_eq!(sha256_file(&copy), sha256_file(&image));
}
