//! Bad input (issue 2 item 10): each case prints one clear line on stderr, exits 2 (a usage or
//! configuration error), and leaves nothing behind: no loop device, no mount, no object, no
//! multipart upload. These tests hold the system lock exclusively, so that the loop devices and
//! mounts before and after are theirs alone to compare.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::cli::{CliEnv, CliOutput};
use common::image::{self, Fs, MIB};
use common::populate::populate_basic;
use common::s3::TestS3;
use common::{exclusive_system, require_image_prerequisites, system_state, workdir};

/// A valid 16 MiB ext4 image, so that a run gets as far as the input lets it.
fn good_image(dir: &Path) -> PathBuf {
    let img = dir.join("good.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    img
}

fn archive_args(device: &Path, url: &str) -> Vec<OsString> {
    vec!["archive".into(), "--device".into(), device.into(), "--to".into(), url.into(), "--json".into()]
}

/// Runs `args` and checks the clean failure and that the system and the bucket are as before.
fn run_bad(t: &TestS3, env: &CliEnv, args: &[OsString], needles: &[&str]) -> CliOutput {
    let before = system_state();
    let out = env.run(args);
    let after = system_state();
    // Shown with --nocapture: the message an operator gets.
    eprintln!("{}", out.report());
    out.assert_code(2);
    out.assert_one_line_error(needles);
    assert!(out.stdout.is_empty(), "nothing on stdout for a failed run:\n{}", out.report());
    assert_eq!(after, before, "loop devices or mounts changed:\n{}", out.report());
    t.assert_nothing_under("");
    out
}

#[test]
fn missing_device_is_a_usage_error() {
    require_image_prerequisites();
    let _system = exclusive_system();
    let t = TestS3::start("bad-missing");
    let env = CliEnv::new(&t.endpoint());
    let missing = Path::new("/nonexistent/backup-archiver-test/disk.img");
    run_bad(&t, &env, &archive_args(missing, &t.url("p")), &[missing.to_str().expect("utf-8")]);
}

#[test]
fn file_that_is_not_a_disk_image_is_a_usage_error() {
    require_image_prerequisites();
    let _system = exclusive_system();
    let work = workdir("bad-notimage");
    let t = TestS3::start("bad-notimage");
    let env = CliEnv::new(&t.endpoint());
    // 1000 bytes: not a whole number of 512-byte sectors.
    let text = work.path().join("notes.txt");
    std::fs::write(&text, &"not a disk image\n".repeat(59).as_bytes()[..1000]).expect("write");
    run_bad(&t, &env, &archive_args(&text, &t.url("p")), &["notes.txt"]);
    // A directory is not one either.
    run_bad(&t, &env, &archive_args(work.path(), &t.url("p")), &[]);
}

#[test]
fn bucket_that_does_not_exist_is_a_configuration_error() {
    require_image_prerequisites();
    let _system = exclusive_system();
    let work = workdir("bad-bucket");
    let img = good_image(work.path());
    let t = TestS3::start("bad-bucket");
    let env = CliEnv::new(&t.endpoint());
    let url = "s3://no-such-bucket-for-backup-archiver/p";
    run_bad(&t, &env, &archive_args(&img, url), &["no-such-bucket-for-backup-archiver"]);
    let buckets = t.s3.block_on(t.s3.client.list_buckets().send()).expect("list buckets");
    assert_eq!(buckets.buckets().len(), 1, "the CLI must not create buckets: {buckets:?}");
}

#[test]
fn malformed_s3_urls_are_usage_errors() {
    require_image_prerequisites();
    let _system = exclusive_system();
    let work = workdir("bad-url");
    let img = good_image(work.path());
    let t = TestS3::start("bad-url");
    let env = CliEnv::new(&t.endpoint());
    for url in ["s3:/x", "http://b/p", "s3://", "s3://Bad_Bucket/p", "bucket/prefix"] {
        run_bad(&t, &env, &archive_args(&img, url), &[url]);
    }
    for url in ["s3:/x", "http://b/p"] {
        run_bad(&t, &env, &["verify".into(), url.into()], &[url]);
    }
}

#[test]
fn missing_credentials_are_a_configuration_error() {
    require_image_prerequisites();
    let _system = exclusive_system();
    let work = workdir("bad-creds");
    let img = good_image(work.path());
    let t = TestS3::start("bad-creds");
    // Only the endpoint: no keys, empty config and credentials files, no IMDS.
    let mut env = CliEnv::without_credentials();
    env.set("AWS_ENDPOINT_URL", t.endpoint());
    run_bad(&t, &env, &archive_args(&img, &t.url("p")), &["credentials"]);
}
