//! Real database servers for the dump tests: PostgreSQL 15 and MariaDB, each initialised in its
//! own temporary directory, listening on a free loopback port, running as its unprivileged
//! system user, and stopped (by PID) when dropped, also when the test panics.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::s3::free_port;
use super::{describe, require_root, require_tools, run_ok, run_timeout, workdir, TOOL_TIMEOUT};

/// Where Debian puts each PostgreSQL major version's server programs (not on PATH).
const PG_LIB: &str = "/usr/lib/postgresql";
/// Bound on a server's start: a few seconds here, more under load.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a clean shutdown before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// uid and gid of a system user.
fn ids(user: &str) -> (u32, u32) {
    let user = nix::unistd::User::from_name(user)
        .expect("read passwd")
        .unwrap_or_else(|| panic!("no user {user}: run scripts/setup"));
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Stops a server process: `signal` (its fast shutdown), then SIGKILL if it lingers.
fn stop(child: &mut Child, signal: libc::c_int) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill has no memory effects; the PID is our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let started = Instant::now();
    while started.elapsed() < STOP_TIMEOUT {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_until(what: &str, log: &Path, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().expect("wait server") {
            panic!("{what} exited with {status}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "{what} did not start:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest installed server's `bin` (Debian 12: 15), whose initdb and postgres the tests run.
fn pg_bin() -> PathBuf {
    let newest = std::fs::read_dir(PG_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse::<u32>().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .max();
    newest.map(|(_, bin)| bin).unwrap_or_else(|| panic!("no PostgreSQL server under {PG_LIB}: run scripts/setup"))
}

/// A PostgreSQL server whose superuser `master` logs in over TCP with a password.
pub struct Postgres {
    child: Child,
    pub port: u16,
    pub user: String,
    password: String,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start(password: &str) -> Postgres {
        require_root();
        require_tools(&["psql", "pg_dump", "pg_dumpall", "pg_restore"]);
        let bin = pg_bin();
        let (uid, gid) = ids("postgres");
        let dir = workdir("postgres");
        nix::unistd::chown(dir.path(), Some(uid.into()), Some(gid.into())).expect("chown postgres dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, password).expect("write pwfile");
        nix::unistd::chown(&pwfile, Some(uid.into()), Some(gid.into())).expect("chown pwfile");
        let as_postgres = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            cmd.uid(uid).gid(gid).env("HOME", dir.path());
            cmd
        };
        run_ok(
            as_postgres("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "master",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        let port = free_port();
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let child = as_postgres("postgres")
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ])
            .arg("-k")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("start postgres");
        // Built before the wait, so that a server that never answers is still stopped.
        let mut server = Postgres { child, port, user: "master".into(), password: password.into(), dir };
        wait_until("postgres", &log, &mut server.child, || {
            Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        });
        server
    }

    /// `psql -At` as `master` over TCP, with `ON_ERROR_STOP`.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut cmd = self.client("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql]);
        String::from_utf8(run_ok(&mut cmd)).expect("psql prints UTF-8").trim_end().to_string()
    }

    /// A PostgreSQL client program connecting as `master` over TCP.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", &self.user]).env("PGPASSWORD", &self.password);
        cmd
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the data directory is thrown away.
        stop(&mut self.child, libc::SIGQUIT);
    }
}

/// A MariaDB server: `master@127.0.0.1` logs in with a password, root through the socket.
pub struct Mariadb {
    child: Child,
    pub port: u16,
    pub user: String,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Mariadb {
    pub fn start(password: &str) -> Mariadb {
        require_root();
        require_tools(&["mariadbd", "mariadb-install-db", "mariadb", "mysql", "mysqldump"]);
        let (uid, gid) = ids("mysql");
        let dir = workdir("mariadb");
        nix::unistd::chown(dir.path(), Some(uid.into()), Some(gid.into())).expect("chown mariadb dir");
        let data = dir.path().join("data");
        // Its own tmpdir: the temporary tables of the server, and of the bootstrap server that
        // mariadb-install-db runs (it takes $TMPDIR), must not share /tmp with the other tests'
        // servers: two bootstraps at once failed with "Could not remove temporary table".
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("mariadb tmpdir");
        nix::unistd::chown(&tmp, Some(uid.into()), Some(gid.into())).expect("chown mariadb tmpdir");
        run_ok(
            Command::new("mariadb-install-db")
                .env("TMPDIR", &tmp)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--user=mysql", "--skip-test-db", "--auth-root-authentication-method=socket"]),
        );
        let port = free_port();
        let socket = dir.path().join("mysqld.sock");
        let log = dir.path().join("server.log");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("mysqld.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--user=mysql",
                "--bind-address=127.0.0.1",
                &format!("--port={port}"),
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        // Built before the wait, so that a server that never answers is still stopped.
        let mut server = Mariadb { child, port, user: "master".into(), socket, dir };
        let socket = server.socket.clone();
        wait_until("mariadbd", &log, &mut server.child, || {
            Command::new("mariadb-admin")
                .arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()))
                .args(["--user=root", "--silent", "ping"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
        server.root_sql(&format!(
            "CREATE USER 'master'@'127.0.0.1' IDENTIFIED BY '{quoted}'; GRANT ALL ON *.* TO 'master'@'127.0.0.1' WITH GRANT OPTION;"
        ));
        server
    }

    /// SQL as root through the socket, in utf8mb4, tab-separated without column names.
    pub fn root_sql(&self, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults").arg(format!("--socket={}", self.socket.display())).args([
            "--user=root",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
            "--execute",
            sql,
        ]);
        String::from_utf8(run_ok(&mut cmd)).expect("mariadb prints UTF-8").trim_end().to_string()
    }

    /// Runs the SQL file `path` as root.
    pub fn root_source(&self, path: &Path) {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--default-character-set=utf8mb4"]);
        let out = run_timeout(cmd.arg("--execute").arg(format!("source {}", path.display())), TOOL_TIMEOUT);
        assert!(out.status.success(), "`{}` failed: {}", describe(&cmd), String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away, and InnoDB's clean shutdown takes seconds.
        stop(&mut self.child, libc::SIGKILL);
    }
}
