//! A fault-injecting HTTP/1.1 proxy between the CLI and moto, on 127.0.0.1:0.
//!
//! Each client connection carries one request: the proxy answers with `Connection: close`, so a
//! client never reuses a connection and every request is seen whole. UploadPart requests
//! (`PUT ...?partNumber=N&uploadId=...`) can be answered with HTTP 500 or cut off in the middle of
//! their body, PutSnapshotBlock requests (`PUT /snapshots/ID/blocks/N`) can have their data
//! corrupted and CompleteSnapshot requests their block count; everything else is passed through
//! unchanged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Arbitrary; long enough for a 5 MiB part on a loaded 2-core machine.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// Which UploadPart requests fail, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything.
    None,
    /// Answer every UploadPart with part number >= N with HTTP 500 InternalError.
    Fail500FromPart(u32),
    /// Close the connection in the middle of the body of every UploadPart with number >= N.
    DropFromPart(u32),
    /// Answer only the first attempt of part N with HTTP 500, then pass.
    Fail500Once(u32),
    /// Drop only the first attempt of part N mid-body, then pass.
    DropOnce(u32),
    /// Hold every UploadPart this long before passing it: an archive that is surely still
    /// uploading when the test interrupts it.
    DelayParts(Duration),
    /// Flip one byte of the data of every PutSnapshotBlock of block N: its checksum no longer
    /// matches, and EBS refuses it.
    CorruptBlock(u32),
    /// Add one to the changed-block count of every CompleteSnapshot: EBS fails the snapshot.
    MiscountCompletion,
    /// Hold every PutSnapshotBlock this long before passing it: a restore that is surely still
    /// writing when the test interrupts it.
    DelayBlocks(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    Delay(Duration),
    Fail500,
    Drop,
    Corrupt,
    Miscount,
}

/// What the proxy saw, for assertions and failure messages.
#[derive(Debug, Default)]
pub struct Stats {
    /// Faults injected so far.
    pub injected: AtomicU32,
    /// UploadPart requests seen (passed or not).
    pub upload_parts: AtomicU32,
    /// One line per request: `METHOD target -> action`.
    pub log: Mutex<Vec<String>>,
    once_used: AtomicBool,
}

impl Stats {
    pub fn injected(&self) -> u32 {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn upload_parts(&self) -> u32 {
        self.upload_parts.load(Ordering::SeqCst)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

pub struct FaultProxy {
    pub port: u16,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (stats2, stop2) = (stats.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let stats = stats2.clone();
                std::thread::spawn(move || {
                    if let Err(e) = handle(conn, upstream_port, fault, &stats) {
                        stats.log.lock().unwrap_or_else(|e| e.into_inner()).push(format!("proxy error: {e}"));
                    }
                });
            }
        });
        FaultProxy { port, stats, stop, accept: Some(accept) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The part number of an UploadPart request target, if it is one.
pub fn upload_part_number(method: &str, target: &str) -> Option<u32> {
    if method != "PUT" {
        return None;
    }
    let query = target.split_once('?')?.1;
    let mut part = None;
    let mut has_upload_id = false;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "partNumber" => part = v.parse().ok(),
            "uploadId" => has_upload_id = true,
            _ => {}
        }
    }
    if has_upload_id {
        part
    } else {
        None
    }
}

/// The block index of a PutSnapshotBlock request target, if it is one.
fn put_snapshot_block_index(method: &str, target: &str) -> Option<u32> {
    let path = target.split('?').next()?;
    let (snapshot, index) = path.strip_prefix("/snapshots/")?.split_once("/blocks/")?;
    (method == "PUT" && !snapshot.contains('/')).then(|| index.parse().ok())?
}

fn decide(fault: Fault, part: Option<u32>, block: Option<u32>, completion: bool, stats: &Stats) -> Action {
    if let Fault::CorruptBlock(which) = fault {
        return if block == Some(which) { Action::Corrupt } else { Action::Pass };
    }
    if let Fault::DelayBlocks(d) = fault {
        return if block.is_some() { Action::Delay(d) } else { Action::Pass };
    }
    if fault == Fault::MiscountCompletion {
        return if completion { Action::Miscount } else { Action::Pass };
    }
    let Some(n) = part else { return Action::Pass };
    match fault {
        Fault::None => Action::Pass,
        Fault::Fail500FromPart(from) if n >= from => Action::Fail500,
        Fault::DropFromPart(from) if n >= from => Action::Drop,
        Fault::Fail500Once(which) if n == which && !stats.once_used.swap(true, Ordering::SeqCst) => Action::Fail500,
        Fault::DropOnce(which) if n == which && !stats.once_used.swap(true, Ordering::SeqCst) => Action::Drop,
        Fault::DelayParts(d) => Action::Delay(d),
        _ => Action::Pass,
    }
}

struct Head {
    method: String,
    target: String,
    /// The request or status line.
    first_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn encode_without(&self, drop: &[&str], extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.first_line);
        for (k, v) in &self.headers {
            if !drop.iter().any(|d| k.eq_ignore_ascii_case(d)) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads a request or response head; `None` at a clean end of stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut first_line = String::new();
    if r.read_line(&mut first_line)? == 0 {
        return Ok(None);
    }
    let first_line = first_line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "end of stream in headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut parts = first_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    Ok(Some(Head { method, target, first_line, headers }))
}

/// Reads a message body as framed by `head`, returning its raw bytes (chunk framing kept).
fn read_body(r: &mut impl BufRead, head: &Head) -> std::io::Result<Vec<u8>> {
    if head.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut raw = Vec::new();
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            raw.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0").trim(), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line)?;
                    raw.extend_from_slice(line.as_bytes());
                    if line.trim_end().is_empty() {
                        return Ok(raw);
                    }
                }
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
        }
    }
    let len: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

const INTERNAL_ERROR: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
<Message>We encountered an internal error. Please try again. (injected by the test proxy)</Message>\
<RequestId>FAULT</RequestId></Error>";

fn handle(client: TcpStream, upstream_port: u16, fault: Fault, stats: &Stats) -> std::io::Result<()> {
    client.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    client.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    let mut writer = client.try_clone()?;
    let mut reader = BufReader::new(client);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let part = upload_part_number(&head.method, &head.target);
    if part.is_some() {
        stats.upload_parts.fetch_add(1, Ordering::SeqCst);
    }
    let block = put_snapshot_block_index(&head.method, &head.target);
    let completion = head.method == "POST" && head.target.starts_with("/snapshots/completion/");
    let action = decide(fault, part, block, completion, stats);
    stats.log.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{} {} -> {action:?}", head.method, head.target));
    if head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    match action {
        Action::Drop => {
            stats.injected.fetch_add(1, Ordering::SeqCst);
            // Take part of the body, then reset the connection with the rest unread.
            let len: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut half = vec![0u8; (len / 2).clamp(1, 1 << 20)];
            let _ = reader.read_exact(&mut half);
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Fail500 => {
            let _ = read_body(&mut reader, &head)?;
            stats.injected.fetch_add(1, Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: FAULT\r\nConnection: close\r\n\r\n{INTERNAL_ERROR}",
                INTERNAL_ERROR.len()
            );
            writer.write_all(response.as_bytes())?;
            writer.flush()?;
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Pass | Action::Delay(_) | Action::Corrupt | Action::Miscount => {
            let mut head = head;
            if action == Action::Miscount {
                for (name, value) in &mut head.headers {
                    if name.eq_ignore_ascii_case("x-amz-ChangedBlocksCount") {
                        *value = (value.parse::<u64>().expect("a count") + 1).to_string();
                        stats.injected.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            let mut body = read_body(&mut reader, &head)?;
            if let Action::Delay(d) = action {
                std::thread::sleep(d);
            }
            if action == Action::Corrupt {
                assert!(head.header("content-length").is_some(), "a PutSnapshotBlock body framed by its length");
                let middle = body.len() / 2;
                body[middle] ^= 0xff;
                stats.injected.fetch_add(1, Ordering::SeqCst);
            }
            let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
            upstream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
            upstream
                .write_all(&head.encode_without(&["connection", "keep-alive", "expect"], &[("Connection", "close")]))?;
            upstream.write_all(&body)?;
            upstream.flush()?;
            let mut up_reader = BufReader::new(upstream);
            let Some(resp) = read_head(&mut up_reader)? else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upstream closed without a response",
                ));
            };
            // The upstream closes after its response: everything until EOF is the body.
            let mut resp_body = Vec::new();
            up_reader.read_to_end(&mut resp_body)?;
            writer.write_all(&resp.encode_without(&["connection", "keep-alive"], &[("Connection", "close")]))?;
            writer.write_all(&resp_body)?;
            writer.flush()?;
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
    }
}
