//! The machine the tests run on: root, installed tools, temporary directories, and child
//! processes run with a time limit and their output collected. Also included (by path) by
//! `batch-worker/tests`, so nothing here may name a binary of this package.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/setup` puts the venv (and where the cargo target dir lives).
pub fn ba_home() -> PathBuf {
    std::env::var_os("BA_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/backup-archiver"))
}

/// The PATH given to every tool and to the binary under test: the system directories only, so
/// the tests use Debian's tools whatever the caller's PATH holds.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests need root (loop devices, mount, mknod): run them with scripts/test as root");
}

/// Panics naming the first tool that is not installed.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = SYSTEM_PATH.split(':').any(|dir| Path::new(dir).join(tool).is_file());
        assert!(found, "required tool `{tool}` is not installed: run scripts/setup");
    }
}

/// A temporary directory for one test's images, mount points and downloads, on the root
/// filesystem (ext4 here), which stores every kind of metadata the comparisons need.
pub fn workdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ba-test-{tag}-"))
        .tempdir_in(std::env::temp_dir())
        .expect("create workdir")
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

fn shell_quote(a: &OsStr) -> String {
    let s = a.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a tool to completion with the system PATH; panics with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run_timeout(cmd.env("PATH", SYSTEM_PATH), TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{}{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Shorthand for [`run_ok`] on a program and arguments.
pub fn sh<I, S>(program: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_ok(Command::new(program).args(args))
}

/// Arbitrary bound on one helper tool (mkfs, tar, losetup): each takes seconds at most here.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `cmd` with stdin closed, kills it if it outlives `timeout`, and returns its output.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    Running::spawn(cmd).wait(timeout)
}

/// A child process whose stdout and stderr are being collected.
pub struct Running {
    pub child: std::process::Child,
    pub cmdline: String,
    out_thread: std::thread::JoinHandle<Vec<u8>>,
    err_thread: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let cmdline = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let out_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stdout.read_to_end(&mut v);
            v
        });
        let err_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stderr.read_to_end(&mut v);
            v
        });
        Running { child, cmdline, out_thread, err_thread }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the PID is our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill {}: {}", self.child.id(), std::io::Error::last_os_error());
    }

    /// Waits for the process, killing it (and panicking) if it outlives `timeout`.
    pub fn wait(self, timeout: Duration) -> Output {
        self.wait_measured(timeout).0
    }

    /// [`Running::wait`], and the process's peak resident set size in KiB (its `ru_maxrss`,
    /// reported by `wait4` for this child alone).
    pub fn wait_measured(mut self, timeout: Duration) -> (Output, u64) {
        use std::os::unix::process::ExitStatusExt;
        let started = Instant::now();
        let pid = self.child.id() as libc::pid_t;
        let (status, peak_kib) = loop {
            let mut raw = 0;
            // SAFETY: an all-zero rusage is valid; wait4 writes it and the status for our own child.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let reaped = unsafe { libc::wait4(pid, &mut raw, libc::WNOHANG, &mut usage) };
            assert!(reaped >= 0, "wait4 {pid}: {}", std::io::Error::last_os_error());
            if reaped == pid {
                break (ExitStatus::from_raw(raw), usage.ru_maxrss as u64);
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait for killed child");
                let stderr = self.err_thread.join().unwrap_or_default();
                panic!(
                    "`{}` did not finish within {timeout:?} and was killed ({status}); stderr:\n{}",
                    self.cmdline,
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = Output {
            status,
            stdout: self.out_thread.join().unwrap_or_default(),
            stderr: self.err_thread.join().unwrap_or_default(),
        };
        (output, peak_kib)
    }
}
