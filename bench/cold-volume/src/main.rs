//! `cold-volume`: serves a disk image as one file, `MOUNTPOINT/disk`, over FUSE, the way a volume
//! freshly restored from an EBS snapshot serves its blocks: the first read of each block waits a
//! fetch latency, at most `--concurrency` fetches at once; later reads come from the image at
//! memory speed. A loop device on `MOUNTPOINT/disk` makes it a block device (bench/run does it).
//! Runs until SIGINT or SIGTERM, then unmounts and prints what it fetched on stderr.
//!
//! The model and its limits are described in bench/README.md.

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, Request,
};
use memmap2::{Mmap, MmapOptions};
use nix::sys::signal::{SigSet, Signal};

/// The one file's name under the mount point.
const DISK_NAME: &str = "disk";
const DISK_INO: INodeNo = INodeNo(2);
/// Nothing under the mount ever changes: the kernel may cache attributes as long as it likes.
const TTL: Duration = Duration::from_secs(3600);
/// FUSE threads beyond the fetch slots, so that requests for fetched blocks are served while
/// every slot waits (arbitrary).
const SPARE_THREADS: usize = 8;

#[derive(Parser)]
#[command(about = "Serve a disk image over FUSE as a lazily loaded (cold) volume")]
struct Args {
    /// The disk image; it should be in the page cache, since fetched blocks are served from it.
    image: PathBuf,
    /// An empty directory; the volume appears as MOUNTPOINT/disk.
    mountpoint: PathBuf,
    /// The wait of the first read of a block, in milliseconds.
    #[arg(long, default_value_t = 2.0)]
    latency_ms: f64,
    /// Fetches in progress at once; reads of more unfetched blocks wait for a slot.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The fetch unit, in KiB: EBS loads snapshot blocks of 512 KiB.
    #[arg(long, default_value_t = 512)]
    block_kib: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    Cold,
    Fetching,
    Warm,
}

/// Which blocks are warm, and what the fetches did (printed at exit).
struct FetchState {
    blocks: Vec<Block>,
    in_flight: usize,
    peak_in_flight: usize,
    fetched: u64,
}

/// The lazily loaded side of the volume, shared by the FUSE threads and `main`.
struct Fetcher {
    block_size: u64,
    latency: Duration,
    concurrency: usize,
    state: Mutex<FetchState>,
    fetched: Condvar,
}

impl Fetcher {
    /// Returns once every block of `offset..offset + len` is warm. The cold blocks a request
    /// finds are fetched together (one latency, one slot each), as EBS fetches a request's
    /// blocks in parallel; blocks another request is fetching are waited for, not fetched twice.
    fn warm_up(&self, offset: u64, len: u64) {
        let blocks = (offset / self.block_size) as usize..(offset + len).div_ceil(self.block_size) as usize;
        let mut state = self.state.lock().expect("fetch state lock");
        loop {
            let cold: Vec<usize> = blocks.clone().filter(|&b| state.blocks[b] == Block::Cold).collect();
            let fetching = blocks.clone().any(|b| state.blocks[b] == Block::Fetching);
            if cold.is_empty() && !fetching {
                return;
            }
            // A request wider than every slot still proceeds alone rather than waiting forever.
            let slots_free = state.in_flight + cold.len() <= self.concurrency || state.in_flight == 0;
            if cold.is_empty() || !slots_free {
                state = self.fetched.wait(state).expect("fetch state lock");
                continue;
            }
            for &b in &cold {
                state.blocks[b] = Block::Fetching;
            }
            state.in_flight += cold.len();
            state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
            drop(state);
            std::thread::sleep(self.latency);
            state = self.state.lock().expect("fetch state lock");
            for &b in &cold {
                state.blocks[b] = Block::Warm;
            }
            state.in_flight -= cold.len();
            state.fetched += cold.len() as u64;
            self.fetched.notify_all();
        }
    }
}

struct ColdVolume {
    /// The image, mapped once: a read is then one copy, from the page cache into the kernel's
    /// request, where reading into a fresh buffer cost a page fault and a zeroing per page on
    /// top of a second copy, CPU taken from the pipeline measured on the same cores.
    image: Mmap,
    size: u64,
    fetcher: Arc<Fetcher>,
}

impl ColdVolume {
    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, size, perm, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0, 0o755, 2),
            DISK_INO => (FileType::RegularFile, self.size, 0o444, 1),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

impl Filesystem for ColdVolume {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // The kernel's read-ahead and a loop device's direct I/O are background requests, 12 at
        // once by default: without this, the kernel and not the volume would bound concurrency.
        let background = u16::try_from(self.fetcher.concurrency + SPARE_THREADS).unwrap_or(u16::MAX);
        let _ = config.set_max_background(background);
        // Direct I/O from the loop device (losetup --direct-io=on) stays asynchronous.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO) {
            eprintln!("cold-volume: the kernel lacks {missing:?}; direct I/O is synchronous");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match (parent, name.to_str()) {
            (INodeNo::ROOT, Some(DISK_NAME)) => {
                reply.entry(&TTL, &self.attr(DISK_INO).expect("the disk's inode"), Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != DISK_INO {
            return reply.error(Errno::EISDIR);
        }
        let len = u64::from(size).min(self.size.saturating_sub(offset));
        if len == 0 {
            return reply.data(&[]);
        }
        self.fetcher.warm_up(offset, len);
        reply.data(&self.image[offset as usize..(offset + len) as usize]);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let listing = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (DISK_INO, FileType::RegularFile, DISK_NAME),
        ];
        for (i, (ino, kind, name)) in listing.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.block_kib > 0, "--block-kib must be at least 1");
    let image = File::open(&args.image).with_context(|| format!("cannot open {}", args.image.display()))?;
    let size = image.metadata().with_context(|| format!("cannot stat {}", args.image.display()))?.len();
    // SAFETY: a mapped file changed or truncated by another process is undefined behaviour here;
    // bench/run writes the image before it starts a simulator and never while one serves it.
    let image = unsafe { MmapOptions::new().populate().map(&image) }
        .with_context(|| format!("cannot map {}", args.image.display()))?;
    let block_size = args.block_kib * 1024;
    let fetcher = Arc::new(Fetcher {
        block_size,
        latency: Duration::from_secs_f64(args.latency_ms / 1000.0),
        concurrency: args.concurrency,
        state: Mutex::new(FetchState {
            blocks: vec![Block::Cold; size.div_ceil(block_size) as usize],
            in_flight: 0,
            peak_in_flight: 0,
            fetched: 0,
        }),
        fetched: Condvar::new(),
    });
    let volume = ColdVolume { image, size, fetcher: Arc::clone(&fetcher) };

    // Blocked before the FUSE threads start, so that they inherit the mask and this thread
    // alone receives the signals.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block().context("cannot block SIGINT and SIGTERM")?;

    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::RO, fuser::MountOption::FSName("cold-volume".into())];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(args.concurrency + SPARE_THREADS);
    config.clone_fd = true;
    let started = Instant::now();
    let session = fuser::spawn_mount(volume, &args.mountpoint, &config)
        .with_context(|| format!("cannot mount FUSE at {}", args.mountpoint.display()))?;
    eprintln!(
        "cold-volume: serving {} ({size} bytes) at {}/{DISK_NAME}",
        args.image.display(),
        args.mountpoint.display()
    );
    let signal = stop.wait().context("cannot wait for a signal")?;
    eprintln!("cold-volume: {signal:?} after {:.1} s, unmounting", started.elapsed().as_secs_f64());
    session.umount_and_join().context("cannot unmount")?;
    let state = fetcher.state.lock().expect("fetch state lock");
    eprintln!(
        "cold-volume: fetched {} of {} blocks of {} KiB, at most {} at once",
        state.fetched,
        state.blocks.len(),
        args.block_kib,
        state.peak_in_flight
    );
    Ok(())
}
