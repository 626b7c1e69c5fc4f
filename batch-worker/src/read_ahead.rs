//! Files mode's read-ahead, so that a lazily loaded volume (a freshly restored EBS volume fetches
//! each block from S3 on first read) has many reads in flight instead of one:
//! - [`ReadAhead`]: the walk runs ahead of the tar writer, and the files it has found but the
//!   writer has not reached yet are opened and their contents asked for with
//!   `posix_fadvise(WILLNEED)`;
//! - [`DirectoryWarmer`]: threads read the directories ahead of the walk.
//!
//! The tar stream keeps the walk's order; what is read ahead waits in the page cache, not in the
//! process's memory.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ignore::WalkState;
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

/// Entries walked ahead of the writer, at most. Also bounds the files held open (the soft limit
/// is usually 1,024 descriptors). Arbitrary: well above the volume's useful concurrency.
const ENTRIES_AHEAD: usize = 256;
/// File bytes asked for ahead of the writer, at most: the page cache holds them until written,
/// not the process. Not tuned: with it, bench/run's cold volume saw its 64 fetches at once.
const BYTES_AHEAD: u64 = 64 * 1024 * 1024;
/// One WILLNEED is cut to the device's largest request (the kernel reads at most
/// max(max_sectors_kb, read_ahead_kb) per call), so larger files are asked for in steps.
const ADVICE_STEP: u64 = 1024 * 1024;

/// Directory reads in flight while the directories are warmed: each thread waits on one read at
/// a time. Not tuned beyond bench/run's cold volume (64 fetches at once).
const DIRECTORY_READERS: usize = 16;

/// An entry of the walk, handed to the writer in the walk's order.
pub struct Walked {
    pub entry: Result<walkdir::DirEntry, walkdir::Error>,
    /// A regular file, already opened and read ahead; `None` when opening it failed (the writer
    /// opens it again and reports the error in order) or the entry is not a regular file.
    pub file: Option<File>,
    /// A directory another filesystem is mounted on: the walk did not descend into it.
    pub other_mount: bool,
    /// Bytes of this file counted in the read-ahead.
    advised: u64,
}

/// The walk, running up to [`ENTRIES_AHEAD`] entries and [`BYTES_AHEAD`] bytes ahead.
pub struct ReadAhead<'a> {
    walk: walkdir::IntoIter,
    other_mounts: &'a [PathBuf],
    queue: VecDeque<Walked>,
    bytes_ahead: u64,
    walk_ended: bool,
}

impl<'a> ReadAhead<'a> {
    /// Directories in `other_mounts` are yielded but not descended into.
    pub fn new(walk: walkdir::IntoIter, other_mounts: &'a [PathBuf]) -> Self {
        ReadAhead { walk, other_mounts, queue: VecDeque::new(), bytes_ahead: 0, walk_ended: false }
    }

    fn fill(&mut self) {
        while !self.walk_ended && self.queue.len() < ENTRIES_AHEAD && self.bytes_ahead < BYTES_AHEAD {
            let Some(entry) = self.walk.next() else {
                self.walk_ended = true;
                break;
            };
            let mut walked = Walked { entry, file: None, other_mount: false, advised: 0 };
            if let Ok(e) = &walked.entry {
                if e.file_type().is_dir() && self.other_mounts.iter().any(|m| m == e.path()) {
                    // Right after the walk yielded the directory: this skips its contents.
                    self.walk.skip_current_dir();
                    walked.other_mount = true;
                } else if e.file_type().is_file() {
                    if let Ok(file) = File::open(e.path()) {
                        let len = file.metadata().map_or(0, |m| m.len());
                        walked.advised = advise(&file, len.min(BYTES_AHEAD));
                        walked.file = Some(file);
                    }
                }
            }
            self.bytes_ahead += walked.advised;
            self.queue.push_back(walked);
        }
    }
}

/// Asks the kernel to start reading the first `len` bytes of `file`; returns `len`. Advice
/// only: a failure costs speed, never data, since the writer reads the file itself.
fn advise(file: &File, len: u64) -> u64 {
    let mut at = 0;
    while at < len {
        let step = ADVICE_STEP.min(len - at);
        if posix_fadvise(file, at as i64, step as i64, PosixFadviseAdvice::POSIX_FADV_WILLNEED).is_err() {
            break;
        }
        at += step;
    }
    len
}

impl Iterator for ReadAhead<'_> {
    type Item = Walked;

    fn next(&mut self) -> Option<Walked> {
        self.fill();
        let walked = self.queue.pop_front()?;
        self.bytes_ahead -= walked.advised;
        Some(walked)
    }
}

/// Reads every directory under a root in the background, many at once, so that the walk finds
/// their blocks in the cache. The walk reads one directory after another, and a directory's
/// blocks are read one at a time (ext4 reads an indexed directory block by block): on bench/run's
/// warm image the tar writer waited 2,290 times on a directory block, 0.95 s of a 4.5 s run, and
/// on a cold volume each wait is a fetch. Only directories are read; files are [`ReadAhead`]'s. Quits
/// and is joined when dropped, so nothing holds the filesystem after the walk.
pub struct DirectoryWarmer {
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DirectoryWarmer {
    /// Starts warming the directories under `root`, not crossing into other filesystems. Advice
    /// only: when its thread cannot start, the walk reads the directories itself.
    pub fn start(root: &Path) -> Self {
        let quit = Arc::new(AtomicBool::new(false));
        let walk = ignore::WalkBuilder::new(root)
            .standard_filters(false)
            .follow_links(false)
            .same_file_system(true)
            .threads(DIRECTORY_READERS)
            .filter_entry(|entry| entry.file_type().is_some_and(|t| t.is_dir()))
            .build_parallel();
        let stop = Arc::clone(&quit);
        let thread = std::thread::Builder::new()
            .name("dir-warmer".into())
            .spawn(move || {
                walk.run(|| {
                    let stop = Arc::clone(&stop);
                    Box::new(move |_| if stop.load(Ordering::Relaxed) { WalkState::Quit } else { WalkState::Continue })
                })
            })
            .inspect_err(|error| tracing::warn!(%error, "cannot start reading directories ahead"))
            .ok();
        DirectoryWarmer { quit, thread }
    }
}

impl Drop for DirectoryWarmer {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic in the warmer cost speed only; the walk read everything itself.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_the_walk_in_order_with_files_open() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..(ENTRIES_AHEAD + 10) {
            std::fs::write(dir.path().join(format!("f{i:04}")), vec![1u8; i]).unwrap();
        }
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        std::fs::write(dir.path().join("mnt/hidden"), b"x").unwrap();
        let others = [dir.path().join("mnt")];
        let walk = || walkdir::WalkDir::new(dir.path()).sort_by_file_name().into_iter();
        let expected: Vec<PathBuf> = walk()
            .filter_entry(|e| e.path() != dir.path().join("mnt/hidden"))
            .map(|e| e.unwrap().into_path())
            .collect();
        let walked: Vec<Walked> = ReadAhead::new(walk(), &others).collect();
        let paths: Vec<PathBuf> = walked.iter().map(|w| w.entry.as_ref().unwrap().path().to_path_buf()).collect();
        assert_eq!(paths, expected);
        assert!(walked.iter().all(|w| w.file.is_some() == w.entry.as_ref().unwrap().file_type().is_file()));
        assert_eq!(walked.iter().filter(|w| w.other_mount).count(), 1);
    }

    /// Unmounts the test's tmpfs, also when an assertion failed.
    struct Unmount<'a>(&'a Path);

    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn the_warmer_reads_every_directory_under_its_root() {
        use nix::sys::stat::{utimensat, UtimensatFlags};
        use nix::sys::time::TimeSpec;
        use std::os::unix::fs::MetadataExt;

        // On a tmpfs mounted strictatime every read of a directory moves its atime.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fs");
        std::fs::create_dir(&root).unwrap();
        let flags = nix::mount::MsFlags::MS_STRICTATIME;
        nix::mount::mount(Some("tmpfs"), &root, Some("tmpfs"), flags, None::<&str>).unwrap();
        let _unmount = Unmount(&root);
        let mut dirs = Vec::new();
        for i in 0..40 {
            for j in 0..5 {
                let path = root.join(format!("d{i}/e{j}"));
                std::fs::create_dir_all(&path).unwrap();
                std::fs::write(path.join("file"), b"x").unwrap();
                dirs.push(path);
            }
            dirs.push(root.join(format!("d{i}")));
        }
        let long_ago = TimeSpec::new(1, 0);
        for path in &dirs {
            utimensat(nix::fcntl::AT_FDCWD, path, &long_ago, &TimeSpec::UTIME_OMIT, UtimensatFlags::NoFollowSymlink)
                .unwrap();
        }
        let unread = || dirs.iter().filter(|p| std::fs::metadata(p).unwrap().atime() == 1).count();
        assert_eq!(unread(), dirs.len());

        let warmer = DirectoryWarmer::start(&root);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while unread() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(warmer);
        assert_eq!(unread(), 0, "every directory was read ahead");
    }
}
