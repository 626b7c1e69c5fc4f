//! Shared harness of the dump tests: real database servers on loopback ([`db`]), a moto server
//! for S3 and SSM, and runners for the `batch-worker` and `backup-archiver` binaries in a sealed
//! environment. The host and S3 helpers are `cli/tests`' own, included by path.
#![allow(dead_code)]

#[path = "../../../cli/tests/common/ebs.rs"]
pub mod ebs;
#[path = "../../../cli/tests/common/host.rs"]
pub mod host;
#[path = "../../../cli/tests/common/s3.rs"]
pub mod s3;

pub mod db;

use std::process::{Command, Output};
use std::time::Duration;

pub use host::*;

pub const WORKER: &str = env!("CARGO_BIN_EXE_batch-worker");

/// Arbitrary bound on one worker run: the test databases dump in about a second.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(120);

/// `backup-archiver`, built beside the worker by `cargo test --workspace` (scripts/test).
pub fn cli_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(WORKER).with_file_name("backup-archiver");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p backup-archiver` (scripts/test does)",
        path.display()
    );
    path
}

/// A command for `program` that reaches only the loopback moto server, with test credentials.
pub fn sealed(program: impl AsRef<std::ffi::OsStr>, endpoint: &str, home: &std::path::Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // JSON logs at info: the tests check that the password is in none of them.
        .env("RUST_LOG", "info");
    cmd
}

/// One test's AWS: moto (S3 bucket and SSM), and a home directory for the binaries.
pub struct World {
    pub s3: s3::TestS3,
    pub home: tempfile::TempDir,
}

impl World {
    pub fn new(tag: &str) -> World {
        World { s3: s3::TestS3::start(tag), home: workdir("home") }
    }

    /// Stores `value` as the SecureString parameter `name` in moto's SSM.
    pub fn put_parameter(&self, name: &str, value: &str) {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(self.s3.endpoint())
            .build();
        let client = aws_sdk_ssm::Client::from_conf(config);
        self.s3
            .s3
            .block_on(
                client
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put SSM parameter {name}: {e:?}"));
    }

    /// Runs `batch-worker dump ARGS --to s3://<bucket>/<prefix>`.
    pub fn dump(&self, prefix: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        let mut cmd = sealed(WORKER, &self.s3.endpoint(), self.home.path());
        cmd.arg("dump").args(args).arg("--to").arg(self.s3.url(prefix));
        run_timeout(&mut cmd, WORKER_TIMEOUT)
    }

    /// Runs `backup-archiver verify s3://<bucket>/<prefix>`.
    pub fn verify(&self, prefix: &str) -> Output {
        let mut cmd = sealed(cli_binary(), &self.s3.endpoint(), self.home.path());
        cmd.arg("verify").arg(self.s3.url(prefix));
        run_timeout(&mut cmd, WORKER_TIMEOUT)
    }

    /// Runs `backup-archiver restore s3://<bucket>/<prefix> --to-database URL ARGS` with `envs`
    /// added to its environment.
    pub fn restore_to_database(&self, prefix: &str, url: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = sealed(cli_binary(), &self.s3.endpoint(), self.home.path());
        cmd.arg("restore").arg(self.s3.url(prefix)).args(["--to-database", url]).args(args).envs(envs.iter().copied());
        run_timeout(&mut cmd, WORKER_TIMEOUT)
    }

    /// Downloads `key` and decompresses it with the system's gzip.
    pub fn gunzip_object(&self, key: &str, to: &std::path::Path) {
        let compressed = to.with_extension("gz");
        self.s3.s3.download(&self.s3.bucket, key, &compressed);
        let content = run_ok(Command::new("gzip").arg("-dc").arg(&compressed));
        std::fs::write(to, content).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }

    /// The manifest under `prefix`, parsed.
    pub fn manifest(&self, prefix: &str) -> serde_json::Value {
        serde_json::from_slice(&self.s3.s3.get(&self.s3.bucket, &format!("{prefix}/manifest.json")))
            .expect("manifest is JSON")
    }
}

/// Panics unless `output` succeeded, showing its stderr.
#[track_caller]
pub fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Panics if `secret` appears in the output of a run (stdout, stderr, logs).
#[track_caller]
pub fn assert_not_leaked(secret: &str, output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(secret), "the password appears in the worker's {stream}:\n{text}");
    }
}
