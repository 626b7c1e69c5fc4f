//! The backup-archiver worker: archives a block device or a database server to S3, and reads
//! archives back.
//!
//! Layout, in pipeline order:
//! - [`source`]: the device or disk image (attached read-only to a loop device).
//! - [`layout`]: partitions (GPT, MBR) or the whole disk, and their filesystem types.
//! - [`mount`]: read-only mounts with journal-replay fallbacks.
//! - [`tree`] and [`acl`]: a mounted filesystem as a tar stream with all its metadata; [`fat`]:
//!   the same for FAT read in user space where the kernel has no vfat driver; [`read_ahead`]: the
//!   walk running ahead of the writer, the next files' contents asked for early; [`pax`]: PAX
//!   extended header records, written and read; [`index`]: the index of a tar stream, recorded
//!   as it is written.
//! - [`raw`]: an unmountable device's bytes, read with several reads outstanding.
//! - [`compress`]: parallel gzip members or zstd frames, all-zero chunks for free.
//! - [`upload`]: the S3 multipart sink, aborted on any error; [`seek_table`]: the zstd seekable
//!   format's table that ends each zstd segment.
//! - [`pipeline`]: one stream through compression and upload, the manifest uploaded last, and
//!   the cleanup of a failed run; shared by both kinds of archive:
//! - [`archive`]: a device's stages wired together;
//! - [`dump`]: dump mode, a database server's databases streamed from `pg_dump` or `mysqldump`,
//!   with the password from [`password`].
//! - [`verify`] and [`restore`]: reading an archive back; [`restore_database`]: a dump archive
//!   into a database server; [`get`]: single files through the index, by byte ranges;
//!   [`archive_fs`]: the same as a read-only FUSE mount; [`catalogue`]: the archives under a
//!   prefix, from their manifests; [`thaw`]: which objects are in a Glacier class, and restoring
//!   only those a read needs.
//! - [`ebs`] and [`nvme`]: the Batch side: attaching the restored volume and finding its device.
//! - [`ebs_direct`]: the EBS direct APIs, snapshots read and written block by block without a
//!   volume: [`archive_snapshot`] archives a snapshot that way, [`restore_snapshot`] restores a
//!   raw archive into a new snapshot.
//! - [`drill`]: a restore drill of one archive: a deep verification, optionally a restore to a
//!   snapshot that is then deleted, and the verdict written for the drill's report.
//!
//! [`s3`] builds the client from the standard AWS configuration; [`options`] holds the flags
//! both binaries share; [`command`] runs system tools; [`signal`] turns SIGTERM into
//! cancellation; [`memory`] keeps the allocator from holding freed buffers.

pub mod acl;
pub mod archive;
pub mod archive_fs;
pub mod archive_snapshot;
pub mod catalogue;
pub mod command;
pub mod compress;
pub mod drill;
pub mod dump;
pub mod ebs;
pub mod ebs_direct;
pub mod fat;
pub mod get;
pub mod index;
pub mod layout;
pub mod logging;
pub mod memory;
pub mod mount;
pub mod nvme;
pub mod options;
pub mod password;
pub mod pax;
pub mod pipeline;
pub mod raw;
pub mod read_ahead;
pub mod restore;
pub mod restore_database;
pub mod restore_filesystem;
pub mod restore_snapshot;
pub mod s3;
pub mod seek_table;
pub mod signal;
pub mod source;
pub mod thaw;
pub mod tree;
pub mod upload;
pub mod verify;
