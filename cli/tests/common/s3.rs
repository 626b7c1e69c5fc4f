//! A moto S3 server per test on a free loopback port, and a small blocking S3 client the tests use
//! to look behind the CLI's back (objects, multipart uploads).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

use super::{ba_home, workdir};

/// moto imports most of botocore on start: a few seconds here, far more under load.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Another process may take the port between our probe and moto's bind: try a few ports.
const MOTO_START_ATTEMPTS: u32 = 3;

/// A running moto server, killed (by PID) when dropped, also when the test panics. It runs through
/// the emulator's launcher with only its S3 patch (`full_object_checksums`) unless told otherwise:
/// like S3, it refuses an object whose full-object checksum differs from the one sent at completion.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A port that was free a moment ago: bind 127.0.0.1:0 and let it go.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// True once something on `port` answers an HTTP request.
fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

impl Moto {
    pub fn binary() -> PathBuf {
        ba_home().join("venv/bin/python")
    }

    /// The repository root, where the `emulator` package is (these files are also compiled
    /// into batch-worker's tests, whose manifest directory is a sibling of cli's).
    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("a crate inside the repository").to_path_buf()
    }

    pub fn start() -> Moto {
        Self::start_with_patches("full_object_checksums")
    }

    /// moto with these of the emulator's patches (a comma-separated list of launcher.PATCHES).
    pub fn start_with_patches(patches: &str) -> Moto {
        let binary = Self::binary();
        assert!(binary.is_file(), "{} is missing: run scripts/setup", binary.display());
        let dir = workdir("moto");
        let mut last_log = String::new();
        for attempt in 0..MOTO_START_ATTEMPTS {
            let port = free_port();
            let log = dir.path().join(format!("moto-{attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("create moto log");
            let mut child = Command::new(&binary)
                .args(["-m", "emulator.launcher", &port.to_string()])
                .current_dir(Self::repository())
                .env("MOTO_PORT", port.to_string())
                .env("BA_EMULATOR_PATCHES", patches)
                .env_remove("AWS_ENDPOINT_URL")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup log"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let started = Instant::now();
            loop {
                if answers_http(port) {
                    return Moto { child, port, log, _dir: dir };
                }
                if let Some(status) = child.try_wait().expect("wait moto") {
                    last_log = format!("exited with {status}: {}", std::fs::read_to_string(&log).unwrap_or_default());
                    break;
                }
                if started.elapsed() > MOTO_START_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto did not answer on port {port} within {MOTO_START_TIMEOUT:?}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("moto failed to start {MOTO_START_ATTEMPTS} times; last: {last_log}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's request log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bucket name unique to this process and call: 3-63 characters of a-z, 0-9 and '-'.
pub fn unique_bucket(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(30).collect::<String>().to_lowercase();
    format!("ba-{tag}-{}-{n}", std::process::id())
}

/// A blocking facade over the AWS SDK, pointed at one endpoint with static test credentials.
pub struct S3 {
    rt: tokio::runtime::Runtime,
    pub client: aws_sdk_s3::Client,
}

impl S3 {
    pub fn new(endpoint: &str) -> S3 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        S3 { rt, client: aws_sdk_s3::Client::from_conf(config) }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.block_on(self.client.create_bucket().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }

    /// Every key under `prefix` (all pages).
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(token.clone())
                        .send(),
                )
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// Multipart uploads still open in the bucket, as (key, upload id).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let out = self
            .block_on(self.client.list_multipart_uploads().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("list multipart uploads of {bucket}: {e:?}"));
        out.uploads()
            .iter()
            .map(|u| (u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default().to_string()))
            .collect()
    }

    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"));
            out.body.collect().await.unwrap_or_else(|e| panic!("read s3://{bucket}/{key}: {e:?}")).into_bytes().to_vec()
        })
    }

    pub fn download(&self, bucket: &str, key: &str, to: &Path) {
        let bytes = self.get(bucket, key);
        std::fs::write(to, bytes).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.block_on(self.client.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes)).send())
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        self.block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e:?}"));
    }
}

/// One test's S3: its own moto server, a client, and an empty bucket.
pub struct TestS3 {
    pub s3: S3,
    pub bucket: String,
    // Dropped last: the client above never outlives the server it talks to.
    pub moto: Moto,
}

impl TestS3 {
    pub fn start(tag: &str) -> TestS3 {
        Self::start_with(tag, Moto::start())
    }

    /// With its own moto, started with [`Moto::start_with_patches`].
    pub fn start_with(tag: &str, moto: Moto) -> TestS3 {
        let s3 = S3::new(&moto.endpoint());
        let bucket = unique_bucket(tag);
        s3.create_bucket(&bucket);
        TestS3 { s3, bucket, moto }
    }

    pub fn endpoint(&self) -> String {
        self.moto.endpoint()
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }

    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.s3.list_keys(&self.bucket, prefix)
    }

    /// Asserts that the bucket holds no object under `prefix` and no open multipart upload.
    pub fn assert_nothing_under(&self, prefix: &str) {
        let keys = self.keys(prefix);
        assert!(keys.is_empty(), "objects were left under s3://{}/{prefix}: {keys:?}", self.bucket);
        let uploads = self.s3.multipart_uploads(&self.bucket);
        assert!(uploads.is_empty(), "multipart uploads were left open in {}: {uploads:?}", self.bucket);
    }
}
