//! Files mode: writes a mounted filesystem as a tar stream that GNU tar and our `restore` extract
//! with every piece of metadata: hard links (by inode), sparse files, device nodes and FIFOs,
//! numeric owners, all mode bits, nanosecond mtimes, xattrs and POSIX ACLs.
//!
//! The tar crate writes GNU headers, long names and sparse maps; the rest travels in PAX
//! records before each entry, in the keys GNU tar and star use (`mtime`, `SCHILY.xattr.*`,
//! `SCHILY.acl.access`, `SCHILY.acl.default`).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use archiver_core::manifest::EntryCounts;
use tar::{EntryType, Header, HeaderMode};

use crate::read_ahead::{DirectoryWarmer, ReadAhead};
use crate::{acl, pax};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot list {path}: {source}")]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    #[error("cannot archive {path}: {source}")]
    Append {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the POSIX ACL of {path}: {source}")]
    Acl {
        path: PathBuf,
        #[source]
        source: acl::AclError,
    },
    #[error("cannot finish the tar stream: {0}")]
    Finish(#[source] io::Error),
}

/// XFS shows root its ACLs a second time under these names; `SCHILY.acl.*` already carries
/// them, and written back as plain xattrs elsewhere they would be stray copies. libattr skips
/// them too (/etc/xattr.conf).
const XFS_ACL_XATTRS: [&str; 2] = ["trusted.SGI_ACL_FILE", "trusted.SGI_ACL_DEFAULT"];

/// Writes the tree under `root` to `out` as a tar stream and returns the counts and `out`.
/// Directories that are mount points of other filesystems are stored, their contents are not.
pub fn write_tree<W: Write>(root: &Path, other_mounts: &[PathBuf], out: W) -> Result<(EntryCounts, W), TreeError> {
    let mut builder = tar::Builder::new(out);
    builder.mode(HeaderMode::Complete);
    builder.follow_symlinks(false);
    builder.sparse(true);
    let mut counts = EntryCounts::default();
    // The first archive name of every multiply-linked inode, so later names become hard links.
    let mut first_names: HashMap<(u64, u64), PathBuf> = HashMap::new();

    let _warmer = DirectoryWarmer::start(root);
    let walk = walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter();
    for walked in ReadAhead::new(walk, other_mounts) {
        let entry = walked.entry.map_err(|source| TreeError::Walk {
            path: source.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf()),
            source,
        })?;
        let path = entry.path();
        let name = match path.strip_prefix(root).expect("walkdir yields paths under its root") {
            rel if rel.as_os_str().is_empty() => PathBuf::from("."),
            rel => rel.to_path_buf(),
        };
        let append_err = |source| TreeError::Append { path: path.to_path_buf(), source };
        let meta = entry.metadata().map_err(|e| TreeError::Walk { path: path.to_path_buf(), source: e })?;
        let file_type = meta.file_type();

        if file_type.is_socket() {
            counts.skipped_sockets += 1;
            continue;
        }
        let pax = pax_records(path, &meta)?;
        if !pax.is_empty() {
            append_pax(&mut builder, &pax).map_err(append_err)?;
        }

        if !file_type.is_dir() && meta.nlink() > 1 {
            if let Some(first) = first_names.get(&(meta.dev(), meta.ino())) {
                let mut header = header_for(&meta);
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, &name, first).map_err(append_err)?;
                counts.hard_links += 1;
                continue;
            }
            first_names.insert((meta.dev(), meta.ino()), name.clone());
        }

        // Each inode once (later names of a hard link stopped above), as the filesystem counts.
        counts.allocated_bytes += meta.blocks() * 512;
        if file_type.is_file() {
            let mut file = match walked.file {
                Some(file) => file,
                None => File::open(path).map_err(append_err)?,
            };
            builder.append_file(&name, &mut file).map_err(append_err)?;
            counts.files += 1;
            counts.file_bytes += meta.len();
        } else if file_type.is_dir() {
            let mut header = header_for(&meta);
            builder.append_data(&mut header, &name, io::empty()).map_err(append_err)?;
            counts.directories += 1;
            if walked.other_mount {
                tracing::warn!(path = %path.display(), "not descending into another filesystem mounted here");
            }
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(append_err)?;
            let mut header = header_for(&meta);
            builder.append_link(&mut header, &name, &target).map_err(append_err)?;
            counts.symlinks += 1;
        } else {
            // FIFOs and character and block devices.
            let mut header = header_for(&meta);
            let rdev = meta.rdev();
            header.set_device_major(nix::sys::stat::major(rdev) as u32).map_err(append_err)?;
            header.set_device_minor(nix::sys::stat::minor(rdev) as u32).map_err(append_err)?;
            builder.append_data(&mut header, &name, io::empty()).map_err(append_err)?;
            counts.special += 1;
        }
    }
    let out = builder.into_inner().map_err(TreeError::Finish)?;
    Ok((counts, out))
}

/// A GNU header with the entry's type, mode, owner and whole-second mtime.
fn header_for(meta: &Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header
}

/// The PAX records of one entry: the mtime when it has a sub-second part (or predates 1970,
/// which the header cannot hold), every xattr except the `system.*` ones the kernel derives,
/// and POSIX ACLs in text form.
fn pax_records(path: &Path, meta: &Metadata) -> Result<Vec<(String, Vec<u8>)>, TreeError> {
    let mut records = Vec::new();
    let (secs, nanos) = (meta.mtime(), meta.mtime_nsec());
    if nanos != 0 || secs < 0 {
        records.push(("mtime".to_string(), pax::format_time(secs, nanos).into_bytes()));
    }
    let names = match xattr::list(path) {
        Ok(names) => names.collect::<Vec<_>>(),
        Err(e) if unsupported(&e) => Vec::new(),
        Err(source) => return Err(TreeError::Append { path: path.into(), source }),
    };
    for name in names {
        let name_text = name.to_string_lossy();
        let value = match xattr::get(path, &name) {
            Ok(Some(value)) => value,
            Ok(None) => continue,
            Err(source) => return Err(TreeError::Append { path: path.into(), source }),
        };
        let acl_key = match name_text.as_ref() {
            acl::ACCESS_XATTR => Some("SCHILY.acl.access"),
            acl::DEFAULT_XATTR => Some("SCHILY.acl.default"),
            _ => None,
        };
        if let Some(key) = acl_key {
            let text = acl::xattr_to_text(&value).map_err(|source| TreeError::Acl { path: path.into(), source })?;
            records.push((key.to_string(), text.into_bytes()));
        } else if !name_text.starts_with("system.") && !XFS_ACL_XATTRS.contains(&name_text.as_ref()) {
            records.push((format!("SCHILY.xattr.{name_text}"), value));
        }
    }
    Ok(records)
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) || e.raw_os_error() == Some(nix::libc::ENOTSUP)
}

/// Appends a PAX extended header (typeflag `x`) holding `records`, which applies to the next entry.
fn append_pax<W: Write>(builder: &mut tar::Builder<W>, records: &[(String, Vec<u8>)]) -> io::Result<()> {
    let mut data = Vec::new();
    for (key, value) in records {
        pax::encode_record(&mut data, key, value);
    }
    let mut header = Header::new_ustar();
    header.set_path("././@PaxHeader")?;
    header.set_entry_type(EntryType::XHeader);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_a_tree_that_the_tar_crate_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        let (counts, out) = write_tree(dir.path(), &[], Vec::new()).unwrap();
        assert_eq!((counts.files, counts.hard_links, counts.symlinks, counts.directories), (1, 1, 1, 2));
        let mut archive = tar::Archive::new(out.as_slice());
        let kinds: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().into_owned(), e.header().entry_type())
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (PathBuf::from("."), EntryType::Directory),
                (PathBuf::from("a"), EntryType::Regular),
                (PathBuf::from("b"), EntryType::Link),
                (PathBuf::from("empty"), EntryType::Directory),
                (PathBuf::from("link"), EntryType::Symlink),
            ]
        );
    }
}
