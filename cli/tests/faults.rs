//! Upload faults (issue 2 items 8 and 10): a proxy between the CLI and moto fails or drops
//! UploadPart requests. A persistent fault must fail the archive and leave no multipart upload
//! and no object; a single fault must be retried and leave a verifiable archive.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::cli::{decompress_raw, finish, CliEnv, CliOutput};
use common::image::{self, MIB};
use common::proxy::{Fault, FaultProxy};
use common::s3::TestS3;
use common::{pseudo_random, require_image_prerequisites, sha256_file, shared_system, workdir};

/// Incompressible, so that 24 MiB make five 5 MiB parts.
const IMAGE_SIZE: u64 = 24 * MIB;
const PART_SIZE: &str = "5MiB";

struct Run {
    out: CliOutput,
    proxy: FaultProxy,
    t: TestS3,
    image: PathBuf,
    work: tempfile::TempDir,
}

/// Archives a 24 MiB image of pseudo-random bytes through a proxy injecting `fault`.
fn archive_through(tag: &str, fault: Fault) -> Run {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir(tag);
    let image = work.path().join("random.img");
    std::fs::write(&image, pseudo_random(42, IMAGE_SIZE as usize)).expect("write image");
    let t = TestS3::start(tag);
    let proxy = FaultProxy::start(t.moto.port, fault);
    let env = CliEnv::new(&proxy.endpoint());
    let out = env.run([
        "archive".as_ref(),
        "--device".as_ref(),
        image.as_os_str(),
        "--to".as_ref(),
        t.url("f").as_ref(),
        "--part-size".as_ref(),
        PART_SIZE.as_ref(),
        "--json".as_ref(),
    ]);
    assert!(
        image::loops_of(&image).is_empty(),
        "loop devices left on the image: {:?}\n{}",
        image::loops_of(&image),
        out.report()
    );
    Run { out, proxy, t, image, work }
}

/// The archive failed cleanly, a fault was really injected, and nothing is left in the bucket.
fn assert_failed_and_aborted(run: &Run) {
    // Shown with --nocapture: what the CLI said about the fault.
    eprintln!("{}\nproxy log:\n{}", run.out.report(), run.proxy.stats.log_text());
    run.out.assert_failure();
    assert!(
        run.proxy.stats.injected() >= 1,
        "no fault was injected (did the CLI use multipart uploads with 5 MiB parts?):\n{}\nproxy log:\n{}",
        run.out.report(),
        run.proxy.stats.log_text()
    );
    // Asked of moto directly, not through the proxy.
    run.t.assert_nothing_under("");
}

/// The archive succeeded despite the fault, and `verify` and gunzip agree with the image.
fn assert_succeeded_and_verifies(run: &Run) {
    run.out.assert_success();
    assert_eq!(run.proxy.stats.injected(), 1, "proxy log:\n{}", run.proxy.stats.log_text());
    assert!(run.proxy.stats.upload_parts() >= 5, "expected several parts:\n{}", run.proxy.stats.log_text());
    let direct = CliEnv::new(&run.t.endpoint());
    direct.run(["verify", &run.t.url("f")]).assert_success();
    let json: serde_json::Value = serde_json::from_slice(&run.out.stdout).expect("--json output");
    let key = json["objects"][0]["key"].as_str().expect("object key");
    let restored = decompress_raw(&run.t, key, run.work.path());
    assert_eq!(sha256_file(&restored), sha256_file(&run.image), "the archived bytes differ from the image");
    assert!(run.t.s3.multipart_uploads(&run.t.bucket).is_empty(), "multipart uploads left open");
}

#[test]
fn persistent_500_on_parts_fails_the_archive_and_aborts_the_upload() {
    assert_failed_and_aborted(&archive_through("fault-500", Fault::Fail500FromPart(2)));
}

#[test]
fn connection_dropped_mid_part_fails_the_archive_and_aborts_the_upload() {
    assert_failed_and_aborted(&archive_through("fault-drop", Fault::DropFromPart(2)));
}

#[test]
fn a_part_failing_once_is_retried_and_the_archive_verifies() {
    assert_succeeded_and_verifies(&archive_through("fault-500-once", Fault::Fail500Once(2)));
}

#[test]
fn a_connection_dropped_once_is_retried_and_the_archive_verifies() {
    assert_succeeded_and_verifies(&archive_through("fault-drop-once", Fault::DropOnce(2)));
}

/// Interrupts an archive while parts are in flight: the upload is aborted, the exit code is
/// 130 (STYLE.md's "interrupted"), and nothing is left behind.
fn interrupted_archive_aborts_the_upload(tag: &str, signal: libc::c_int) {
    require_image_prerequisites();
    let _system = shared_system();
    let work = workdir(tag);
    let image = work.path().join("random.img");
    std::fs::write(&image, pseudo_random(43, IMAGE_SIZE as usize)).expect("write image");
    let t = TestS3::start(tag);
    let proxy = FaultProxy::start(t.moto.port, Fault::DelayParts(Duration::from_millis(1500)));
    let env = CliEnv::new(&proxy.endpoint());
    let running = env.spawn([
        "archive".as_ref(),
        "--device".as_ref(),
        image.as_os_str(),
        "--to".as_ref(),
        t.url("f").as_ref(),
        "--part-size".as_ref(),
        PART_SIZE.as_ref(),
        "--json".as_ref(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.stats.upload_parts() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(proxy.stats.upload_parts() > 0, "no part was uploaded within 60 s:\n{}", proxy.stats.log_text());
    running.signal(signal);
    let out = finish(running);
    out.assert_code(130);
    assert!(image::loops_of(&image).is_empty(), "loop devices left: {:?}", image::loops_of(&image));
    // In-flight parts the proxy still holds reach moto after the abort and are refused there.
    std::thread::sleep(Duration::from_millis(1600));
    t.assert_nothing_under("");
}

#[test]
fn sigterm_during_upload_aborts_it_and_exits_130() {
    interrupted_archive_aborts_the_upload("sigterm", libc::SIGTERM);
}

#[test]
fn sigint_during_upload_aborts_it_and_exits_130() {
    interrupted_archive_aborts_the_upload("sigint", libc::SIGINT);
}
