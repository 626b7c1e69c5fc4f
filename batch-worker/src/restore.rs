//! Restoring an archive: tar objects are extracted with all their metadata (one directory per
//! partition), raw objects become image files, bit for bit, and database dumps become the files
//! `pg_restore`, `psql` or `mysql` read. Every object's uncompressed stream
//! is checked against the manifest's `content_sha256` as it is read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use archiver_core::manifest::{ArchiveMode, ArchivedObject, Compression, Manifest};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};
use tar::EntryType;
use tokio_util::io::SyncIoBridge;

use crate::acl;
use crate::pax::{self, PaxTap};
use crate::verify::{fetch_manifest, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Manifest(#[from] VerifyError),
    #[error("cannot download {url}: {message}")]
    Download { url: String, message: String },
    #[error("cannot restore {key} to {path}: {source}")]
    Write {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{key} restored to {path} does not match the manifest: {problem}")]
    Mismatch { key: String, path: PathBuf, problem: String },
    #[error("the archive has no raw object{}", partition.map(|n| format!(" for partition {n}")).unwrap_or_default())]
    NoRawObject { partition: Option<u32> },
    #[error("the archive has {count} raw objects; choose one with --partition")]
    SeveralRawObjects { count: usize },
    #[error("a restore task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What was restored where.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoredObject {
    pub key: String,
    pub path: PathBuf,
    pub mode: ArchiveMode,
    pub bytes: u64,
}

/// Restores every object under `location` into `dir`: `disk/` or `partN/` trees for tar
/// objects, `disk.img` or `partN.img` for raw ones, `<database>.pgdump` or `<database>.sql` for
/// dumps (the object's name without its compression extension).
pub async fn restore_to_dir(
    client: &Client,
    location: &S3Location,
    dir: &Path,
) -> Result<Vec<RestoredObject>, RestoreError> {
    let manifest = fetch_manifest(client, location).await?;
    let mut restored = Vec::new();
    for object in &manifest.objects {
        let stem = object.partition.as_ref().map(|p| format!("part{}", p.number)).unwrap_or_else(|| "disk".into());
        let path = match object.mode {
            ArchiveMode::Files => dir.join(&stem),
            ArchiveMode::Raw => dir.join(format!("{stem}.img")),
            ArchiveMode::Dump => {
                let name = object.key.rsplit('/').next().unwrap_or(&object.key);
                let extension = format!(".{}", object.compression.extension());
                dir.join(name.strip_suffix(&extension).unwrap_or(name))
            }
        };
        restored.push(restore_object(client, &location.bucket, object, path).await?);
    }
    Ok(restored)
}

/// Restores the archive's raw object (the one of `partition`, when there are several) to the
/// image file `path`.
pub async fn restore_image(
    client: &Client,
    location: &S3Location,
    path: &Path,
    partition: Option<u32>,
) -> Result<RestoredObject, RestoreError> {
    let manifest: Manifest = fetch_manifest(client, location).await?;
    let object = raw_object(&manifest, partition)?;
    restore_object(client, &location.bucket, object, path.to_path_buf()).await
}

/// The archive's raw object: the one of `partition`, or the only one.
pub(crate) fn raw_object(manifest: &Manifest, partition: Option<u32>) -> Result<&ArchivedObject, RestoreError> {
    let raw: Vec<&ArchivedObject> = manifest
        .objects
        .iter()
        .filter(|o| o.mode == ArchiveMode::Raw)
        .filter(|o| partition.is_none() || o.partition.as_ref().map(|p| p.number) == partition)
        .collect();
    match raw.as_slice() {
        [] => Err(RestoreError::NoRawObject { partition }),
        [one] => Ok(*one),
        several => Err(RestoreError::SeveralRawObjects { count: several.len() }),
    }
}

pub(crate) async fn restore_object(
    client: &Client,
    bucket: &str,
    object: &ArchivedObject,
    path: PathBuf,
) -> Result<RestoredObject, RestoreError> {
    // The first download fails here, before any file is created.
    let compressed = open_segments(client, bucket, object).await?;
    let object = object.clone();
    tokio::task::spawn_blocking(move || {
        let mut content =
            HashingReader::new(decompressor(object.compression, compressed).map_err(|source| RestoreError::Write {
                key: object.key.clone(),
                path: path.clone(),
                source,
            })?);
        let write_err = |source| RestoreError::Write { key: object.key.clone(), path: path.clone(), source };
        match object.mode {
            ArchiveMode::Raw | ArchiveMode::Dump => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(write_err)?;
                }
                let mut file = File::create(&path).map_err(write_err)?;
                io::copy(&mut content, &mut file).map_err(write_err)?;
                file.sync_all().map_err(write_err)?;
            }
            ArchiveMode::Files => {
                std::fs::create_dir_all(&path).map_err(write_err)?;
                extract_tree(&mut content, &path).map_err(write_err)?;
                // Read to the end: the hash covers the whole stream, padding included.
                io::copy(&mut content, &mut io::sink()).map_err(write_err)?;
            }
        }
        let (bytes, sha256) = content.finish();
        if bytes != object.bytes_in || sha256 != object.content_sha256 {
            return Err(RestoreError::Mismatch {
                key: object.key.clone(),
                path,
                problem: format!(
                    "{bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
                    object.bytes_in, object.content_sha256
                ),
            });
        }
        tracing::info!(key = %object.key, path = %path.display(), bytes, "restored");
        Ok(RestoredObject { key: object.key, path, mode: object.mode, bytes })
    })
    .await?
}

/// The object's compressed stream, its first segment's download started: read it on a blocking
/// thread.
pub(crate) async fn open_segments(
    client: &Client,
    bucket: &str,
    object: &ArchivedObject,
) -> Result<Segments, RestoreError> {
    let mut segments = object.stored_segments().into_iter().map(|s| s.key);
    let first = segments.next().expect("an object has at least one segment");
    let body = download(client, bucket, &first).await?;
    Ok(Segments {
        client: client.clone(),
        bucket: bucket.to_string(),
        next: segments.collect(),
        current: Some(SyncIoBridge::new(Box::new(body.into_async_read()))),
        runtime: tokio::runtime::Handle::current(),
    })
}

async fn download(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<aws_sdk_s3::primitives::ByteStream, RestoreError> {
    client.get_object().bucket(bucket).key(key).send().await.map(|o| o.body).map_err(|e| RestoreError::Download {
        url: format!("s3://{bucket}/{key}"),
        message: DisplayErrorContext(e).to_string(),
    })
}

type SegmentBody = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// An object's segments read one after the other as one stream, on a blocking thread: the
/// concatenation is the object's compressed stream.
pub(crate) struct Segments {
    client: Client,
    bucket: String,
    /// The keys still to read, in order.
    next: std::collections::VecDeque<String>,
    current: Option<SyncIoBridge<SegmentBody>>,
    runtime: tokio::runtime::Handle,
}

impl Read for Segments {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(current) = &mut self.current else { return Ok(0) };
            let n = current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.current = match self.next.pop_front() {
                Some(key) => {
                    let body = self
                        .runtime
                        .block_on(download(&self.client, &self.bucket, &key))
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    let body: SegmentBody = Box::new(body.into_async_read());
                    Some(SyncIoBridge::new_with_handle(body, self.runtime.clone()))
                }
                None => None,
            };
        }
    }
}

pub(crate) fn decompressor<'a, R: Read + 'a>(compression: Compression, input: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, input))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
    })
}

/// Counts and hashes what is read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    bytes: u64,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, bytes: 0, hasher: Sha256::new() }
    }

    pub(crate) fn finish(self) -> (u64, String) {
        (self.bytes, format!("{:x}", self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extracts a tar stream into `dest` as root would with GNU tar's `--xattrs --acls
/// --numeric-owner -p`: the tar crate writes files, directories and links; this adds device
/// nodes and FIFOs, xattrs on every kind of entry, POSIX ACLs, nanosecond mtimes, and the root
/// directory's own metadata. PAX records are read whole through a [`PaxTap`].
pub fn extract_tree<R: Read>(input: R, dest: &Path) -> io::Result<()> {
    let (tap, pax_payloads) = PaxTap::new(input);
    let mut archive = tar::Archive::new(tap);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // Directory mtimes are set last: creating their children changes them.
    let mut dir_times = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        let pax = match entry.pax_extensions()? {
            Some(_) => {
                let payload = pax_payloads.borrow_mut().pop_front();
                let payload = payload
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "PAX header not seen in the stream"))?;
                pax::parse_records(&payload)?
            }
            None => Vec::new(),
        };
        let Some(relative) = safe_relative(&entry.path()?) else { continue };
        let path = dest.join(&relative);
        let header = entry.header().clone();
        let kind = header.entry_type();
        match kind {
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = nix::sys::stat::makedev(
                    header.device_major()?.unwrap_or(0) as u64,
                    header.device_minor()?.unwrap_or(0) as u64,
                );
                let _ = std::fs::remove_file(&path);
                mknod(&path, sflag, Mode::from_bits_truncate(0o600), dev).map_err(io::Error::from)?;
                set_owner_and_mode(&path, &header)?;
            }
            // The root entry (`./`): the tar crate skips it, GNU tar applies it to the target.
            _ if relative.as_os_str().is_empty() => set_owner_and_mode(dest, &header)?,
            _ => {
                entry.unpack_in(dest)?;
            }
        }
        if kind == EntryType::Link {
            // A hard link shares its inode, and so its metadata, with the entry it names.
            continue;
        }
        for (key, value) in &pax {
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                xattr::set(&path, name, value)?;
            }
            let acl_name = match key.as_str() {
                "SCHILY.acl.access" => acl::ACCESS_XATTR,
                "SCHILY.acl.default" => acl::DEFAULT_XATTR,
                _ => continue,
            };
            let encoded = acl::text_to_xattr(&String::from_utf8_lossy(value))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            xattr::set(&path, acl_name, &encoded)?;
        }
        let mtime = pax
            .iter()
            .find(|(k, _)| k == "mtime")
            .and_then(|(_, v)| pax::parse_time(&String::from_utf8_lossy(v)))
            .unwrap_or((header.mtime()? as i64, 0));
        if kind == EntryType::Directory {
            dir_times.push((path, mtime));
        } else {
            set_mtime(&path, mtime)?;
        }
    }
    for (path, mtime) in dir_times.into_iter().rev() {
        set_mtime(&path, mtime)?;
    }
    Ok(())
}

/// Owner first, then mode: chown clears setuid and setgid bits.
fn set_owner_and_mode(path: &Path, header: &tar::Header) -> io::Result<()> {
    chown(path, Some(header.uid()? as u32), Some(header.gid()? as u32))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(header.mode()?))
}

/// The entry's path inside the destination, or `None` for a path that would leave it.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

pub(crate) fn set_mtime(path: &Path, (secs, nanos): (i64, i64)) -> io::Result<()> {
    let time = TimeSpec::new(secs, nanos);
    // atime is not archived; leave it as it is.
    let omit = TimeSpec::new(0, nix::libc::UTIME_OMIT);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &omit, &time, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_leave_the_destination() {
        assert_eq!(safe_relative(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative(Path::new(".")), Some(PathBuf::new()));
        assert_eq!(safe_relative(Path::new("a/../../etc")), None);
        assert_eq!(safe_relative(Path::new("/etc/passwd")), None);
    }
}
