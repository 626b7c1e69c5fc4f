//! The worker's volume paths against the emulator's EC2 (issue 12 item 4): `batch-worker
//! --volume-id` attaches the volume to the instance, and a SIGTERM (what AWS Batch sends, with
//! SIGKILL 30 s later) ends the run with the volume detached, the upload aborted and nothing
//! stored, well within 25 s; a SIGTERM while IMDS does not answer ends the run before anything is
//! attached. The waits that the emulator cannot make slow (an attachment that never completes, a
//! detach that must be forced) are tested with a paused clock in `src/ebs.rs`.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_ok, sealed, workdir, Running, World, WORKER, WORKER_TIMEOUT};

/// What Batch allows between SIGTERM and SIGKILL, less the margin the worker keeps.
const SIGNAL_BUDGET: Duration = Duration::from_secs(25);

/// The emulator's EC2: a volume and an instance to attach it to.
fn volume_and_instance(world: &World) -> (aws_sdk_ec2::Client, String, String) {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(world.s3.endpoint())
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(config);
    let rt = &world.s3.s3;
    let volume = rt
        .block_on(ec2.create_volume().availability_zone("us-east-1a").size(1).send())
        .expect("create volume")
        .volume_id
        .expect("a volume id");
    let instance = rt
        .block_on(ec2.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).send())
        .expect("run instance")
        .instances()[0]
        .instance_id
        .clone()
        .expect("an instance id");
    (ec2, volume, instance)
}

/// The volume's state and attachment count, as DescribeVolumes says.
fn volume_state(world: &World, ec2: &aws_sdk_ec2::Client, volume: &str) -> (String, usize) {
    let out = world.s3.s3.block_on(ec2.describe_volumes().volume_ids(volume).send()).expect("describe volume");
    let v = &out.volumes()[0];
    (v.state().map(|s| s.as_str().to_string()).unwrap_or_default(), v.attachments().len())
}

fn worker(world: &World, volume: &str, args: &[&str]) -> Command {
    let mut cmd = sealed(WORKER, &world.s3.endpoint(), world.home.path());
    cmd.args(["--volume-id", volume, "--to", &world.s3.url("w"), "--mode", "raw"]).args(args);
    cmd
}

/// Sends SIGTERM to `running` and returns how it ended and how long that took.
fn sigterm(running: Running) -> (std::process::Output, Duration) {
    running.signal(libc::SIGTERM);
    let sent = Instant::now();
    let out = running.wait(WORKER_TIMEOUT);
    (out, sent.elapsed())
}

#[test]
fn sigterm_during_the_upload_detaches_the_volume_and_aborts_the_upload() {
    let world = World::new("detach-upload");
    let (ec2, volume, instance) = volume_and_instance(&world);
    let work = workdir("detach-upload");
    // Incompressible and large enough that the upload is still running when the signal comes.
    let image = work.path().join("random.img");
    let of = format!("of={}", image.display());
    run_ok(Command::new("dd").args(["if=/dev/urandom", &of, "bs=1M", "count=256", "status=none"]));
    let running = Running::spawn(&mut worker(
        &world,
        &volume,
        &["--instance-id", &instance, "--device", image.to_str().expect("a UTF-8 path")],
    ));
    let deadline = Instant::now() + WORKER_TIMEOUT;
    while world.s3.s3.multipart_uploads(&world.s3.bucket).is_empty() {
        assert!(Instant::now() < deadline, "no upload started");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(volume_state(&world, &ec2, &volume), ("in-use".to_string(), 1), "attached while archiving");
    let (out, took) = sigterm(running);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(took < SIGNAL_BUDGET, "the worker took {took:?} after SIGTERM");
    assert_eq!(volume_state(&world, &ec2, &volume), ("available".to_string(), 0), "detached");
    world.s3.assert_nothing_under("");
}

#[test]
fn sigterm_while_imds_does_not_answer_ends_the_run_before_anything_is_attached() {
    let world = World::new("detach-imds");
    let (ec2, volume, _) = volume_and_instance(&world);
    // Accepts connections and never answers, like an IMDS hop limit that drops the reply.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut cmd = worker(&world, &volume, &["--device", "/dev/null"]);
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{}", silent.local_addr().expect("address")));
    let running = Running::spawn(&mut cmd);
    // Long enough to be past the handler's installation, short of IMDS's own timeouts.
    std::thread::sleep(Duration::from_millis(800));
    let (out, took) = sigterm(running);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(took < Duration::from_secs(5), "the worker took {took:?} after SIGTERM");
    assert_eq!(volume_state(&world, &ec2, &volume), ("available".to_string(), 0), "never attached");
}
