//! Files mode's read-ahead: the walk runs ahead of the tar writer, and the files it has found but
//! the writer has not reached yet are opened and their contents asked for with
//! `posix_fadvise(WILLNEED)`, so a lazily loaded volume (a freshly restored EBS volume fetches
//! each block from S3 on first read) has many reads in flight instead of one file's. The tar
//! stream keeps the walk's order; what is read ahead waits in the page cache, not in the
//! process's memory.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;

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
}
