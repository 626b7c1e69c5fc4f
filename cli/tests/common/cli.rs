//! Runs the `backup-archiver` binary with a sealed environment (only the loopback endpoint and
//! test credentials; no profile, no IMDS) and a bounded run time, and reads its `--json` output.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::{describe, run_timeout, workdir, Running, SYSTEM_PATH};

pub const BIN: &str = env!("CARGO_BIN_EXE_backup-archiver");

/// Arbitrary bound on one CLI run: the largest test archive is ~400 MiB sparse / 30 MiB of data,
/// which takes seconds; a hang must fail the test rather than the CI run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// The environment of one test's CLI runs.
pub struct CliEnv {
    vars: Vec<(OsString, OsString)>,
    _home: tempfile::TempDir,
}

impl CliEnv {
    /// Talks to `endpoint` with static test credentials.
    pub fn new(endpoint: &str) -> CliEnv {
        let mut env = Self::without_credentials();
        env.set("AWS_ENDPOINT_URL", endpoint);
        env.set("AWS_ACCESS_KEY_ID", "test");
        env.set("AWS_SECRET_ACCESS_KEY", "test");
        env
    }

    /// Everything but credentials: empty config and credentials files, no IMDS, a region.
    pub fn without_credentials() -> CliEnv {
        let home = workdir("home");
        let config = home.path().join("aws-config");
        let credentials = home.path().join("aws-credentials");
        std::fs::write(&config, b"").expect("write empty aws config");
        std::fs::write(&credentials, b"").expect("write empty aws credentials");
        let mut vars: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), SYSTEM_PATH.into()),
            ("HOME".into(), home.path().into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_CONFIG_FILE".into(), config.into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), credentials.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        if let Some(v) = std::env::var_os("RUST_LOG") {
            vars.push(("RUST_LOG".into(), v));
        }
        if let Some(v) = std::env::var_os("TMPDIR") {
            vars.push(("TMPDIR".into(), v));
        }
        CliEnv { vars, _home: home }
    }

    pub fn set(&mut self, key: &str, value: impl AsRef<OsStr>) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.as_ref().to_os_string()));
    }

    pub fn remove(&mut self, key: &str) {
        self.vars.retain(|(k, _)| k != key);
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_clear().envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `backup-archiver ARGS` to completion (bounded by [`CLI_TIMEOUT`]).
    pub fn run<I, S>(&self, args: I) -> CliOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        let cmdline = describe(&cmd);
        let out = run_timeout(&mut cmd, CLI_TIMEOUT);
        CliOutput { cmdline, status: out.status, stdout: out.stdout, stderr: out.stderr }
    }

    /// Starts `backup-archiver ARGS` without waiting; see [`finish`].
    pub fn spawn<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Running::spawn(&mut self.command(args))
    }

    /// `archive --device IMAGE --to URL --json EXTRA...`, asserting success; returns its JSON.
    pub fn archive(&self, image: &Path, url: &str, extra: &[&str]) -> ArchiveOutput {
        let mut args: Vec<OsString> =
            vec!["archive".into(), "--device".into(), image.into(), "--to".into(), url.into(), "--json".into()];
        args.extend(extra.iter().map(OsString::from));
        let out = self.run(&args);
        out.assert_success();
        ArchiveOutput::parse(&out)
    }
}

/// Waits for a run started with [`CliEnv::spawn`] (bounded by [`CLI_TIMEOUT`]).
pub fn finish(running: Running) -> CliOutput {
    let cmdline = running.cmdline.clone();
    let out = running.wait(CLI_TIMEOUT);
    CliOutput { cmdline, status: out.status, stdout: out.stdout, stderr: out.stderr }
}

/// What one run printed, and how it ended.
pub struct CliOutput {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CliOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The run, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.status,
            self.stdout_text(),
            self.stderr_text()
        )
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "expected success:\n{}", self.report());
        self
    }

    /// Asserts the exit code; a panic (101) or a signal never counts as a clean failure.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "expected exit code {code}:\n{}", self.report());
        self
    }

    /// Asserts a clean failure: non-zero exit, not a panic, not a signal.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        let code = self.code();
        assert!(
            matches!(code, Some(c) if c != 0 && c != 101),
            "expected a clean non-zero exit (not a panic or a signal):\n{}",
            self.report()
        );
        assert!(!self.stderr_text().contains("panicked at"), "the CLI panicked:\n{}", self.report());
        self
    }

    /// The lines of stderr meant for people: JSON log records (lines starting with `{`) and
    /// clap's standard hint after a usage error aside.
    pub fn stderr_message_lines(&self) -> Vec<String> {
        self.stderr_text()
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.trim_start().starts_with('{'))
            .filter(|l| !l.starts_with("For more information, try '--help'"))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that stderr holds exactly one line for people, containing each of `needles`
    /// (case-insensitive), and returns it.
    #[track_caller]
    pub fn assert_one_line_error(&self, needles: &[&str]) -> String {
        let lines = self.stderr_message_lines();
        assert_eq!(lines.len(), 1, "expected a one-line error on stderr:\n{}", self.report());
        let line = lines[0].to_lowercase();
        for n in needles {
            assert!(line.contains(&n.to_lowercase()), "the error should mention {n:?}:\n{}", self.report());
        }
        lines[0].clone()
    }
}

/// One object of `archive --json`.
#[derive(Debug, Clone)]
pub struct ObjectOut {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub mode: String,
    pub partition: Option<u32>,
    pub fs_type: Option<String>,
    pub json: serde_json::Value,
}

/// The parsed `archive --json` document.
#[derive(Debug, Clone)]
pub struct ArchiveOutput {
    pub objects: Vec<ObjectOut>,
    pub bytes_read: u64,
    pub seconds: f64,
    pub json: serde_json::Value,
    pub cmdline: String,
}

impl ArchiveOutput {
    /// Parses stdout as exactly one JSON object with the documented fields, or panics saying
    /// which is missing.
    #[track_caller]
    pub fn parse(out: &CliOutput) -> ArchiveOutput {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout of --json is not one JSON document ({e}):\n{}", out.report()));
        let ctx = || out.report();
        assert!(json.is_object(), "--json printed {json} instead of an object:\n{}", ctx());
        let objects = json["objects"]
            .as_array()
            .unwrap_or_else(|| panic!("no `objects` array in {json}"))
            .iter()
            .map(|o| {
                let partition = match &o["partition"] {
                    serde_json::Value::Null => None,
                    p => {
                        Some(p["number"].as_u64().unwrap_or_else(|| panic!("`partition` without a `number` in {o}"))
                            as u32)
                    }
                };
                assert!(o.get("fs_type").is_some() || o["mode"] == "raw", "object without `fs_type`: {o}");
                ObjectOut {
                    key: o["key"].as_str().unwrap_or_else(|| panic!("object without `key`: {o}")).to_string(),
                    size: o["size"].as_u64().unwrap_or_else(|| panic!("object without `size`: {o}")),
                    sha256: o["sha256"].as_str().unwrap_or_else(|| panic!("object without `sha256`: {o}")).to_string(),
                    mode: o["mode"].as_str().unwrap_or_else(|| panic!("object without `mode`: {o}")).to_string(),
                    partition,
                    fs_type: o["fs_type"].as_str().map(str::to_string),
                    json: o.clone(),
                }
            })
            .collect();
        let bytes_read = json["bytes_read"].as_u64().unwrap_or_else(|| panic!("no `bytes_read` in {json}"));
        let seconds = json["seconds"].as_f64().unwrap_or_else(|| panic!("no `seconds` in {json}"));
        ArchiveOutput { objects, bytes_read, seconds, json, cmdline: out.cmdline.clone() }
    }

    /// The object of partition `n` (`None`: the whole disk).
    #[track_caller]
    pub fn object(&self, partition: Option<u32>) -> &ObjectOut {
        self.objects
            .iter()
            .find(|o| o.partition == partition)
            .unwrap_or_else(|| panic!("no object for partition {partition:?} in {}", self.json))
    }
}

/// Downloads a tar object and extracts it with GNU tar and every metadata option.
pub fn extract_with_gnu_tar(s3: &super::s3::TestS3, key: &str, work: &Path, dest: &Path) {
    let file = work.join(key.replace('/', "_"));
    s3.s3.download(&s3.bucket, key, &file);
    std::fs::create_dir_all(dest).expect("create extraction dir");
    let decompress = if key.ends_with(".zst") { "--zstd" } else { "--gzip" };
    super::sh(
        "tar",
        [
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("--acls"),
            OsStr::new("--numeric-owner"),
            OsStr::new(decompress),
            OsStr::new("-xpf"),
            file.as_os_str(),
            OsStr::new("-C"),
            dest.as_os_str(),
        ],
    );
}

/// Decompresses a downloaded raw object with the standard tool (`gzip -dc` / `zstd -dc`).
pub fn decompress_raw(s3: &super::s3::TestS3, key: &str, work: &Path) -> PathBuf {
    let file = work.join(key.replace('/', "_"));
    s3.s3.download(&s3.bucket, key, &file);
    let out_path = work.join(format!("{}.out", key.replace('/', "_")));
    let tool = if key.ends_with(".zst") { "zstd" } else { "gzip" };
    let out = std::fs::File::create(&out_path).expect("create decompressed file");
    let status = Command::new(tool)
        .arg("-dc")
        .arg(&file)
        .env("PATH", SYSTEM_PATH)
        .stdout(out)
        .status()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(status.success(), "{tool} -dc {} failed: {status}", file.display());
    out_path
}
