//! End-to-end round trips of `backup-archiver archive` (issue 2 items 4-7, 9, 10): real
//! filesystems in image files, a moto S3 server on loopback, extraction with GNU tar and with
//! `backup-archiver restore`, and a comparison of every kind of metadata with the source.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{decompress_raw, extract_with_gnu_tar, ArchiveOutput};
use common::image::{self, Fs, MountedImage, Partition, MIB};
use common::populate::{self, populate_basic, populate_full, stamp_mtimes_vfat, SPARSE_FILES};
use common::tree::{self, compare_trees, Compare};
use common::world::World;
use common::{check_archive_output, sha256_file, shared_system};

impl World {
    /// Archives `image` under `prefix` with `extra` options, checks the output against the
    /// bucket, and checks that the image was not changed.
    fn archive(&self, image: &Path, prefix: &str, extra: &[&str]) -> ArchiveOutput {
        let before = sha256_file(image);
        let out = self.env.archive(image, &self.t.url(prefix), extra);
        check_archive_output(&out, &self.t, prefix);
        assert_eq!(sha256_file(image), before, "archiving changed the source image {}", image.display());
        assert!(
            image::loops_of(image).is_empty(),
            "loop devices left on {}: {:?}",
            image.display(),
            image::loops_of(image)
        );
        out
    }

    /// `restore s3://bucket/prefix --to DIR`.
    fn restore_to(&self, prefix: &str, name: &str) -> PathBuf {
        let dir = self.path(name);
        self.env
            .run(["restore".as_ref(), self.t.url(prefix).as_ref(), "--to".as_ref(), dir.as_os_str()])
            .assert_success();
        dir
    }

    /// `restore s3://bucket/prefix --to-image FILE [--partition N]`.
    fn restore_image(&self, prefix: &str, partition: Option<u32>, name: &str) -> PathBuf {
        let file = self.path(name);
        let mut args: Vec<std::ffi::OsString> =
            vec!["restore".into(), self.t.url(prefix).into(), "--to-image".into(), file.clone().into()];
        if let Some(n) = partition {
            args.extend(["--partition".into(), n.to_string().into()]);
        }
        self.env.run(&args).assert_success();
        file
    }

    /// Extracts a tar object with GNU tar into a new directory.
    fn gnu_tar(&self, key: &str, name: &str) -> PathBuf {
        let dir = self.path(name);
        extract_with_gnu_tar(&self.t, key, self.work.path(), &dir);
        dir
    }
}

/// Compares `source` with each copy and panics once, listing the differences of all of them.
#[track_caller]
fn assert_copies_match(source: &Path, copies: &[(&str, &Path)], how: Compare) {
    let mut report = String::new();
    for (what, copy) in copies {
        let diffs = compare_trees(source, copy, how);
        if !diffs.is_empty() {
            report.push_str(&format!(
                "\n{what} ({}) differs from the source in {} ways:\n  ",
                copy.display(),
                diffs.len()
            ));
            report.push_str(&diffs.iter().take(150).cloned().collect::<Vec<_>>().join("\n  "));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// The sparse files stayed sparse: a few KiB allocated for 64 MiB.
#[track_caller]
fn assert_sparse_files_small(dir: &Path) {
    for name in SPARSE_FILES {
        let m =
            std::fs::symlink_metadata(dir.join(name)).unwrap_or_else(|e| panic!("{name} in {}: {e}", dir.display()));
        assert!(tree::allocated(&m) < MIB, "{name} in {} allocates {} bytes", dir.display(), tree::allocated(&m));
    }
}

#[track_caller]
fn assert_files_equal(actual: &Path, expected: &Path) {
    let (a, e) = (sha256_file(actual), sha256_file(expected));
    assert_eq!(
        (std::fs::metadata(actual).map(|m| m.len()).ok(), a),
        (std::fs::metadata(expected).map(|m| m.len()).ok(), e),
        "{} is not bit-identical to {}",
        actual.display(),
        expected.display()
    );
}

/// Whole-disk filesystem with every kind of metadata: archive, then GNU tar and `restore --to`.
fn round_trip_whole_disk(fs: Fs) {
    let w = World::new(&format!("rt-{}", fs.name()));
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, fs, fs.min_size(), populate_full);
    let out = w.archive(&img, "rt", &[]);
    assert_eq!(out.objects.len(), 1, "{}", out.json);
    let o = out.object(None);
    assert_eq!((o.mode.as_str(), o.fs_type.as_deref()), ("files", Some(fs.name())), "{}", o.json);
    assert!(o.key.ends_with("/disk.tar.gz"), "{}", o.key);

    let tar_dir = w.gnu_tar(&o.key, "gnu-tar");
    let restored = w.restore_to("rt", "restored");
    let src = MountedImage::open(&img, None, fs, &w.path("src"));
    assert_copies_match(
        src.dir(),
        &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("disk"))],
        Compare::exact(),
    );
    assert_sparse_files_small(&tar_dir);
    assert_sparse_files_small(&restored.join("disk"));
}

#[test]
fn ext4_round_trip_keeps_every_kind_of_metadata() {
    round_trip_whole_disk(Fs::Ext4);
}

#[test]
fn xfs_round_trip_keeps_every_kind_of_metadata() {
    round_trip_whole_disk(Fs::Xfs);
}

#[test]
fn btrfs_round_trip_keeps_every_kind_of_metadata() {
    round_trip_whole_disk(Fs::Btrfs);
}

#[test]
fn vfat_round_trip_keeps_names_contents_and_times() {
    let w = World::new("rt-vfat");
    let _system = shared_system();
    let reference = w.path("reference");
    std::fs::create_dir(&reference).expect("mkdir");
    populate_basic(&reference);
    stamp_mtimes_vfat(&reference);
    let img = w.path("vfat.img");
    image::vfat_image(&img, 32 * MIB, &reference);
    let out = w.archive(&img, "rt", &[]);
    let o = out.object(None);
    let kernel_has_vfat = std::fs::read_to_string("/proc/filesystems").unwrap_or_default().contains("vfat");
    assert_eq!(
        (o.mode.as_str(), o.fs_type.as_deref()),
        ("files", Some("vfat")),
        "vfat must be archived as files (this kernel {} the vfat driver): {}",
        if kernel_has_vfat { "has" } else { "lacks" },
        o.json
    );
    let tar_dir = w.gnu_tar(&o.key, "gnu-tar");
    let restored = w.restore_to("rt", "restored");
    assert_copies_match(
        &reference,
        &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("disk"))],
        Compare::vfat(),
    );
}

#[test]
fn gpt_disk_archives_each_partition_and_unknown_data_raw() {
    let w = World::new("rt-gpt");
    let _system = shared_system();
    let disk = image::gpt_disk(&w.path("gpt.img"), populate_full);
    let out = w.archive(&disk.image, "gpt", &[]);
    assert_eq!(out.objects.len(), 3, "{}", out.json);
    for (n, mode, fs) in [(1, "files", Some("ext4")), (2, "files", Some("xfs")), (3, "raw", None)] {
        let o = out.object(Some(n));
        assert_eq!((o.mode.as_str(), o.fs_type.as_deref()), (mode, fs), "partition {n}: {}", o.json);
    }
    assert!(out.object(Some(3)).key.ends_with("/part3.raw.gz"), "{}", out.object(Some(3)).key);

    // The unknown partition, three ways: gunzip, restore --to-image --partition 3, restore --to.
    let part3 = w.path("part3.expected");
    std::fs::write(&part3, disk.unknown.bytes(&disk.image)).expect("write expected partition");
    assert_files_equal(&decompress_raw(&w.t, &out.object(Some(3)).key, w.work.path()), &part3);
    assert_files_equal(&w.restore_image("gpt", Some(3), "part3.restored"), &part3);
    let restored = w.restore_to("gpt", "restored");
    assert_files_equal(&restored.join("part3.img"), &part3);

    // The filesystems, with GNU tar and with restore --to.
    let tar1 = w.gnu_tar(&out.object(Some(1)).key, "gnu-tar-1");
    let tar2 = w.gnu_tar(&out.object(Some(2)).key, "gnu-tar-2");
    let src1 = MountedImage::open(&disk.image, Some(disk.ext4), Fs::Ext4, &w.path("src1"));
    let src2 = MountedImage::open(&disk.image, Some(disk.xfs), Fs::Xfs, &w.path("src2"));
    assert_copies_match(
        src1.dir(),
        &[("GNU tar extraction of part1", &tar1), ("restore --to, part1", &restored.join("part1"))],
        Compare::exact(),
    );
    assert_copies_match(
        src2.dir(),
        &[("GNU tar extraction of part2", &tar2), ("restore --to, part2", &restored.join("part2"))],
        Compare::exact(),
    );
}

#[test]
fn mbr_disk_archives_its_ext4_partition_as_files() {
    let w = World::new("rt-mbr");
    let _system = shared_system();
    let img = w.path("mbr.img");
    let p: Partition = image::mbr_disk(&img, populate_full);
    let out = w.archive(&img, "mbr", &[]);
    assert_eq!(out.objects.len(), 1, "{}", out.json);
    let o = out.object(Some(1));
    assert_eq!((o.mode.as_str(), o.fs_type.as_deref()), ("files", Some("ext4")), "{}", o.json);
    assert!(o.key.ends_with("/part1.tar.gz"), "{}", o.key);
    let tar_dir = w.gnu_tar(&o.key, "gnu-tar");
    let restored = w.restore_to("mbr", "restored");
    let src = MountedImage::open(&img, Some(p), Fs::Ext4, &w.path("src"));
    assert_copies_match(
        src.dir(),
        &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("part1"))],
        Compare::exact(),
    );
}

/// `--mode raw` (and `compression`): the object decompresses to the image, bit for bit.
fn raw_round_trip(compression: &str, extension: &str) {
    let w = World::new(&format!("raw-{compression}"));
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    let out = w.archive(&img, "raw", &["--mode", "raw", "--compression", compression]);
    assert_eq!(out.objects.len(), 1, "{}", out.json);
    let o = out.object(None);
    assert_eq!(o.mode, "raw", "{}", o.json);
    assert!(o.key.ends_with(&format!("/disk.raw.{extension}")), "{}", o.key);
    assert_eq!(out.bytes_read, 16 * MIB, "bytes_read of a 16 MiB image: {}", out.json);
    assert_files_equal(&decompress_raw(&w.t, &o.key, w.work.path()), &img);
    assert_files_equal(&w.restore_image("raw", None, "restored.img"), &img);
    let restored = w.restore_to("raw", "restored");
    assert_files_equal(&restored.join("disk.img"), &img);
}

#[test]
fn raw_mode_gzip_object_is_bit_identical_to_the_image() {
    raw_round_trip("gzip", "gz");
}

#[test]
fn raw_mode_zstd_object_is_bit_identical_to_the_image() {
    raw_round_trip("zstd", "zst");
}

#[test]
fn zstd_files_mode_round_trip_extracts_with_gnu_tar() {
    let w = World::new("zstd-files");
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 32 * MIB, populate_full);
    let out = w.archive(&img, "z", &["--compression", "zstd", "--level", "5"]);
    let o = out.object(None);
    assert!(o.key.ends_with("/disk.tar.zst"), "{}", o.key);
    let tar_dir = w.gnu_tar(&o.key, "gnu-tar");
    let restored = w.restore_to("z", "restored");
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));
    assert_copies_match(
        src.dir(),
        &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("disk"))],
        Compare::exact(),
    );
}

/// A corrupt image goes raw in auto mode (bit-exact) and fails `--mode files`.
fn corrupt_image_goes_raw(tag: &str, build: fn(&Path)) {
    let w = World::new(tag);
    let _system = shared_system();
    let img = w.path("corrupt.img");
    build(&img);
    let out = w.archive(&img, "auto", &[]);
    assert_eq!(out.objects.len(), 1, "{}", out.json);
    let o = out.object(None);
    assert_eq!(o.mode, "raw", "a corrupt filesystem must be archived raw: {}", o.json);
    assert_files_equal(&decompress_raw(&w.t, &o.key, w.work.path()), &img);
    assert_files_equal(&w.restore_image("auto", None, "restored.img"), &img);

    let files = w.env.run([
        "archive".as_ref(),
        "--device".as_ref(),
        img.as_os_str(),
        "--to".as_ref(),
        w.t.url("files").as_ref(),
        "--mode".as_ref(),
        "files".as_ref(),
    ]);
    files.assert_failure();
    w.t.assert_nothing_under("files/");
    assert!(image::loops_of(&img).is_empty(), "loop devices left: {:?}", image::loops_of(&img));
}

#[test]
fn ext4_with_zeroed_superblock_is_archived_raw() {
    corrupt_image_goes_raw("corrupt-zeroed", image::ext4_with_zeroed_superblock);
}

#[test]
fn ext4_that_blkid_knows_but_will_not_mount_is_archived_raw() {
    corrupt_image_goes_raw("corrupt-blocksize", image::ext4_with_bad_block_size);
}

#[test]
fn xfs_with_garbage_superblock_is_archived_raw() {
    corrupt_image_goes_raw("corrupt-xfs", image::xfs_with_garbage_superblock);
}

#[test]
fn empty_filesystems_round_trip() {
    let w = World::new("empty");
    let _system = shared_system();
    for fs in [Fs::Ext4, Fs::Xfs] {
        let img = w.path(&format!("{}.img", fs.name()));
        image::fs_image(&img, fs, fs.min_size(), |_| {});
        let prefix = format!("empty-{}", fs.name());
        let out = w.archive(&img, &prefix, &[]);
        let o = out.object(None);
        assert_eq!(o.mode, "files", "{}", o.json);
        let tar_dir = w.gnu_tar(&o.key, &format!("gnu-tar-{}", fs.name()));
        let restored = w.restore_to(&prefix, &format!("restored-{}", fs.name()));
        let src = MountedImage::open(&img, None, fs, &w.path(&format!("src-{}", fs.name())));
        assert_copies_match(
            src.dir(),
            &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("disk"))],
            Compare::exact(),
        );
    }
}

#[test]
fn full_filesystem_round_trips() {
    let w = World::new("full");
    let _system = shared_system();
    let img = w.path("full.img");
    image::fs_image(&img, Fs::Ext4, 24 * MIB, |root| {
        populate_basic(root);
        populate::fill_until_full(root);
    });
    let out = w.archive(&img, "full", &[]);
    let o = out.object(None);
    assert_eq!(o.mode, "files", "{}", o.json);
    let tar_dir = w.gnu_tar(&o.key, "gnu-tar");
    let restored = w.restore_to("full", "restored");
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));
    assert_copies_match(
        src.dir(),
        &[("GNU tar extraction", &tar_dir), ("restore --to", &restored.join("disk"))],
        Compare::exact(),
    );
}

#[test]
fn archive_json_describes_every_object() {
    let w = World::new("json");
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    let out = w.archive(&img, "json", &[]);
    // archive() already parsed one JSON object with every field and checked sizes and checksums.
    let o = out.object(None);
    assert!(o.json["partition"].is_null(), "a whole-disk object has no partition: {}", o.json);
    assert_eq!(o.fs_type.as_deref(), Some("ext4"));
    assert!(out.bytes_read > 0 && out.bytes_read <= 16 * MIB, "bytes_read: {}", out.json);
}

/// Issue 12 item 5: a files-mode archive that misses most of the filesystem's used bytes (here
/// 400 MiB whose directory entry is gone, as for files the walk cannot see) fails, naming both
/// numbers, and stores nothing; a full filesystem whose files are all seen passes the same check.
#[test]
fn a_files_archive_that_misses_most_used_bytes_fails_naming_both_numbers() {
    let w = World::new("shortfall");
    let _system = shared_system();
    common::require_tools(&["debugfs"]);
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 600 * MIB, |root| {
        populate_basic(root);
        // Zeros, but written: allocated blocks, cheap to compress had they been archived.
        let mut big =
            std::io::BufWriter::new(std::fs::File::create(root.join("hidden.bin")).expect("create hidden.bin"));
        let zeros = vec![0u8; MIB as usize];
        for _ in 0..400 {
            std::io::Write::write_all(&mut big, &zeros).expect("write hidden.bin");
        }
    });
    // Remove the name, keep the inode and its blocks: used, and invisible to any walk.
    common::sh("debugfs", ["-w".as_ref(), "-R".as_ref(), "unlink /hidden.bin".as_ref(), img.as_os_str()]);
    let out = w.env.run([
        "archive".as_ref(),
        "--device".as_ref(),
        img.as_os_str(),
        "--to".as_ref(),
        w.t.url("short").as_ref(),
        "--mode".as_ref(),
        "files".as_ref(),
    ]);
    out.assert_code(1);
    let line = out.assert_one_line_error(&["in use", "occupy"]);
    let numbers: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).filter(|n| *n > MIB).collect();
    assert!(numbers.iter().any(|n| *n >= 400 * MIB), "the used bytes are named: {line}");
    w.t.assert_nothing_under("");

    let full = w.path("full.img");
    image::fs_image(&full, Fs::Ext4, 64 * MIB, |root| {
        populate::fill_until_full(root);
    });
    let out = w.archive(&full, "full", &["--mode", "files"]);
    let o = out.object(None);
    let used = o.json["fs_used_bytes"].as_u64().expect("fs_used_bytes recorded");
    let allocated = o.json["entries"]["allocated_bytes"].as_u64().expect("allocated_bytes recorded");
    assert!(allocated <= used + MIB && allocated >= used / 2, "allocated {allocated}, used {used}: {}", o.json);
}

#[test]
fn verify_accepts_a_good_archive_and_rejects_a_changed_object() {
    let w = World::new("verify");
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    let out = w.archive(&img, "v", &[]);
    w.env.run(["verify", &w.t.url("v")]).assert_success();
    w.env.run(["verify", &w.t.url("v"), "--json"]).assert_success();

    // Same size, one byte changed: only the checksum can tell.
    let key = &out.object(None).key;
    let mut bytes = w.t.s3.get(&w.t.bucket, key);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    w.t.s3.put(&w.t.bucket, key, bytes.clone());
    let bad = w.env.run(["verify", &w.t.url("v")]);
    bad.assert_code(1);

    // A different size.
    bytes.truncate(mid);
    w.t.s3.put(&w.t.bucket, key, bytes);
    w.env.run(["verify", &w.t.url("v")]).assert_code(1);

    // A missing object.
    w.t.s3.delete(&w.t.bucket, key);
    w.env.run(["verify", &w.t.url("v")]).assert_code(1);
}

/// Issue 15 item 7: with stdout piped, as in a script or a CI log, a successful `verify` prints
/// its own lines and no log line on either stream at the default verbosity; `-v` brings log lines
/// back, as readable text on stderr.
#[test]
fn verify_prints_no_log_lines_unless_asked() {
    let mut w = World::new("quiet");
    w.env.remove("RUST_LOG");
    let _system = shared_system();
    let img = w.path("disk.img");
    image::fs_image(&img, Fs::Ext4, 16 * MIB, populate_basic);
    w.archive(&img, "q", &[]);

    let out = w.env.run(["verify", &w.t.url("q")]);
    out.assert_success();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.trim().is_empty(), "verify says what it checked:\n{}", out.report());
    assert!(
        !stdout.lines().any(|line| line.contains("\"level\"") || line.contains(" INFO ")),
        "a log line on stdout:\n{}",
        out.report()
    );
    assert!(out.stderr.is_empty(), "nothing on stderr at the default verbosity:\n{}", out.report());

    let verbose = w.env.run(["-v", "verify", &w.t.url("q")]);
    verbose.assert_success();
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.lines().any(|line| line.contains(" INFO ") && line.contains("checked object")),
        "-v logs the checks as text on stderr:\n{}",
        verbose.report()
    );
    assert!(!stderr.contains("\"level\""), "no JSON log lines from the CLI:\n{}", verbose.report());
}

#[test]
fn verify_and_restore_say_a_prefix_without_manifest_is_not_an_archive() {
    let w = World::new("nomanifest");
    w.t.s3.put(&w.t.bucket, "nm/disk.tar.gz", b"not really".to_vec());
    for prefix in ["nm", "nothing-here"] {
        let out = w.env.run(["verify", &w.t.url(prefix)]);
        out.assert_code(1);
        out.assert_one_line_error(&["manifest"]);
        let dir = w.path(&format!("restore-{prefix}"));
        let out = w.env.run(["restore".as_ref(), w.t.url(prefix).as_ref(), "--to".as_ref(), dir.as_os_str()]);
        out.assert_failure();
        out.assert_one_line_error(&["manifest"]);
    }
}
