//! Checks of the test harness itself, independent of the CLI: the S3 server, the fault proxy,
//! the image builders, and the tree comparator (against `cp -a` and GNU tar copies, which keep
//! every kind of metadata the round-trip tests demand).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::image::{self, Fs, MountedImage, MIB};
use common::populate::{self, populate_basic, populate_full, stamp_mtimes_vfat, SPARSE_FILES};
use common::proxy::{upload_part_number, Fault, FaultProxy};
use common::s3::{TestS3, S3};
use common::tree::{self, assert_same_tree, compare_trees, Compare};
use common::{sh, shared_system, workdir};

#[test]
fn moto_serves_s3_and_stops_with_its_guard() {
    let t = TestS3::start("harness");
    t.s3.put(&t.bucket, "a/b.txt", b"hello".to_vec());
    assert_eq!(t.s3.get(&t.bucket, "a/b.txt"), b"hello");
    assert_eq!(t.keys("a/"), vec!["a/b.txt".to_string()]);
    assert!(t.s3.multipart_uploads(&t.bucket).is_empty());
    let port = t.moto.port;
    let pid = t.moto.pid();
    drop(t);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "moto_server {pid} still runs after drop");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
}

#[test]
fn recognises_upload_part_requests() {
    assert_eq!(upload_part_number("PUT", "/b/k?partNumber=2&uploadId=abc"), Some(2));
    assert_eq!(upload_part_number("PUT", "/b/k?uploadId=abc&partNumber=17&x-id=UploadPart"), Some(17));
    assert_eq!(upload_part_number("PUT", "/b/k"), None);
    assert_eq!(upload_part_number("POST", "/b/k?partNumber=2&uploadId=abc"), None);
    assert_eq!(upload_part_number("PUT", "/b/k?partNumber=2"), None);
}

/// Starts a multipart upload through `s3` and tries parts 1..=3; returns which succeeded.
fn try_three_parts(s3: &S3, bucket: &str) -> (String, Vec<bool>) {
    let part = vec![7u8; 5 * MIB as usize];
    s3.block_on(async {
        let up = s3.client.create_multipart_upload().bucket(bucket).key("k").send().await.expect("create upload");
        let id = up.upload_id().expect("upload id").to_string();
        let mut ok = Vec::new();
        for n in 1..=3 {
            let r = s3
                .client
                .upload_part()
                .bucket(bucket)
                .key("k")
                .upload_id(&id)
                .part_number(n)
                .body(part.clone().into())
                .send()
                .await;
            ok.push(r.is_ok());
        }
        (id, ok)
    })
}

#[test]
fn fault_proxy_passes_other_requests_and_fails_chosen_parts() {
    let t = TestS3::start("proxy");
    for (fault, expected) in [
        (Fault::None, vec![true, true, true]),
        (Fault::Fail500FromPart(2), vec![true, false, false]),
        (Fault::DropFromPart(2), vec![true, false, false]),
        // The SDK's own retry gets past a single failure.
        (Fault::Fail500Once(2), vec![true, true, true]),
        (Fault::DropOnce(2), vec![true, true, true]),
    ] {
        let proxy = FaultProxy::start(t.moto.port, fault);
        let s3 = S3::new(&proxy.endpoint());
        let (id, ok) = try_three_parts(&s3, &t.bucket);
        assert_eq!(ok, expected, "{fault:?}; proxy log:\n{}", proxy.stats.log_text());
        if fault != Fault::None {
            assert!(proxy.stats.injected() >= 1, "{fault:?} injected nothing:\n{}", proxy.stats.log_text());
        }
        s3.block_on(s3.client.abort_multipart_upload().bucket(&t.bucket).key("k").upload_id(id).send())
            .expect("abort through the proxy");
    }
    t.assert_nothing_under("");
}

/// Checks that a populated filesystem looks as the populate function meant it to, and that the
/// comparator finds no difference with itself, a `cp -a` copy or a GNU tar copy.
fn check_populated_fs(fs: Fs) {
    common::require_image_prerequisites();
    let _system = shared_system();
    let work = workdir(&format!("harness-{}", fs.name()));
    let img = work.path().join("fs.img");
    image::fs_image(&img, fs, fs.min_size(), populate_full);
    let src = MountedImage::open(&img, None, fs, &work.path().join("src"));

    // The populate function did what it says.
    let root = src.dir();
    for name in SPARSE_FILES {
        let m = std::fs::symlink_metadata(root.join(name)).expect("sparse file");
        assert!(tree::is_sparse(&m), "{name} is not sparse on {}: {} bytes allocated", fs.name(), tree::allocated(&m));
    }
    let m = std::fs::symlink_metadata(root.join("owned_setuid")).expect("owned_setuid");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (populate::FOREIGN_UID, populate::FOREIGN_GID, 0o4750));
    assert_eq!(std::fs::symlink_metadata(root.join("hardlinks/triple_a")).expect("triple").nlink(), 3);
    assert!(xattr::get(root.join("acl_dir"), "system.posix_acl_default").expect("getxattr").is_some());
    assert!(xattr::get(root.join("acl_file"), "system.posix_acl_access").expect("getxattr").is_some());
    assert_eq!(
        xattr::get(root.join("xattrs.txt"), "trusted.secret").expect("getxattr").as_deref(),
        Some(&b"for root only"[..])
    );
    assert!(root.join(OsStr::from_bytes(b"caf\xe9")).is_file());
    assert_ne!(m.mtime_nsec(), 0, "mtimes keep nanoseconds");

    assert_same_tree(root, root, Compare::exact());

    let cp = work.path().join("cp");
    sh("cp", ["-a".as_ref(), root.as_os_str(), cp.as_os_str()]);
    assert_same_tree(root, &cp, Compare::exact());

    let tarball = work.path().join("copy.tar.gz");
    sh(
        "tar",
        [
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("--acls"),
            OsStr::new("--numeric-owner"),
            OsStr::new("--sparse"),
            // XFS's own form of the ACLs, which --acls already carries (see tree::scan).
            OsStr::new("--xattrs-exclude=trusted.SGI_ACL_*"),
            OsStr::new("-czpf"),
            tarball.as_os_str(),
            OsStr::new("-C"),
            root.as_os_str(),
            OsStr::new("."),
        ],
    );
    let extracted = work.path().join("tar");
    std::fs::create_dir(&extracted).expect("mkdir");
    sh(
        "tar",
        [
            OsStr::new("--xattrs"),
            OsStr::new("--xattrs-include=*"),
            OsStr::new("--acls"),
            OsStr::new("--numeric-owner"),
            OsStr::new("-xzpf"),
            tarball.as_os_str(),
            OsStr::new("-C"),
            extracted.as_os_str(),
        ],
    );
    assert_same_tree(root, &extracted, Compare::exact());
}

#[test]
fn populated_ext4_survives_cp_and_gnu_tar_unchanged() {
    check_populated_fs(Fs::Ext4);
}

#[test]
fn populated_xfs_survives_cp_and_gnu_tar_unchanged() {
    check_populated_fs(Fs::Xfs);
}

#[test]
fn populated_btrfs_survives_cp_and_gnu_tar_unchanged() {
    check_populated_fs(Fs::Btrfs);
}

#[test]
fn comparator_reports_each_kind_of_difference() {
    common::require_root();
    common::require_tools(&["setfacl", "cp"]);
    let work = workdir("comparator");
    let a = work.path().join("a");
    std::fs::create_dir(&a).expect("mkdir");
    populate_full(&a);
    let b = work.path().join("b");
    sh("cp", ["-a".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(compare_trees(&a, &b, Compare::exact()), Vec::<String>::new());

    // One change of each kind, each to be reported.
    std::fs::write(b.join("hello.txt"), b"hellO, world\n").expect("write");
    populate::chmod(&b.join("mode_0640"), 0o644);
    populate::lchown(&b.join("owned_foreign"), 1, 1);
    xattr::set(b.join("xattrs.txt"), "user.comment", b"changed").expect("setxattr");
    sh("setfacl", ["-b".as_ref(), b.join("acl_file").as_os_str()]);
    std::fs::remove_file(b.join("hardlinks/pair_b")).expect("rm");
    std::fs::copy(b.join("hardlinks/pair_a"), b.join("hardlinks/pair_b")).expect("copy");
    std::fs::remove_file(b.join("dangling_link")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", b.join("dangling_link")).expect("symlink");
    let dense = std::fs::read(b.join("sparse.bin")).expect("read");
    std::fs::remove_file(b.join("sparse.bin")).expect("rm");
    std::fs::write(b.join("sparse.bin"), dense).expect("write");
    std::fs::remove_file(b.join("fifo")).expect("rm");
    std::fs::write(b.join("unexpected"), b"").expect("write");
    std::fs::remove_file(b.join("char_null")).expect("rm");
    sh("mknod", [b.join("char_null").as_os_str(), "c".as_ref(), "1".as_ref(), "5".as_ref()]);
    std::fs::write(b.join("random.bin"), b"short").expect("write");
    // Undo the mtime changes the edits above caused, then make the one meant to be found.
    for (p, e) in tree::scan(&a) {
        let pb = tree::join_bytes(&b, &p);
        if std::fs::symlink_metadata(&pb).is_ok() {
            populate::set_mtime(&pb, e.meta.mtime(), e.meta.mtime_nsec());
        }
    }
    populate::set_mtime(&b.join("empty.txt"), populate::BASE_MTIME.0, 1);

    let diffs = compare_trees(&a, &b, Compare::exact());
    let text = diffs.join("\n");
    for expected in [
        "hello.txt: content differs at byte 4",
        "mode_0640: mode 100644, expected 100640",
        "owned_foreign: owner 1:1, expected 12345:54321",
        "dangling_link: owner 0:0, expected 34567:45678",
        "hardlinks/pair_b: xattrs [], expected [user.on_hardlink=shared by both names]",
        "empty.txt: mtime",
        "xattrs.txt: xattrs",
        "acl_file: mode",
        "acl_file: xattrs",
        "hard links: hardlinks/pair_a = hardlinks/pair_b share an inode in the source but not in the copy",
        "dangling_link: symlink to \"elsewhere\"",
        "sparse.bin: not sparse",
        "fifo: missing",
        "unexpected: unexpected file",
        "char_null: device number",
        "random.bin: size 5",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(diffs.len(), 16, "differences beyond the 16 edits:\n{text}");
}

#[test]
fn gpt_and_mbr_disks_have_the_expected_partitions() {
    common::require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("harness-disks");
    let gpt = image::gpt_disk(&work.path().join("gpt.img"), populate_basic);
    assert_eq!(gpt.ext4.start, MIB, "first partition at 1 MiB");
    for (p, expected) in [(gpt.ext4, "ext4"), (gpt.xfs, "xfs"), (gpt.unknown, "")] {
        let dev = p.attach(&gpt.image, true);
        assert_eq!(image::blkid_type(&dev.path), expected, "partition {}", p.number);
    }
    let src = MountedImage::open(&gpt.image, Some(gpt.xfs), Fs::Xfs, &work.path().join("xfs"));
    assert!(src.dir().join("hello.txt").is_file());
    drop(src);

    let mbr_img = work.path().join("mbr.img");
    let p = image::mbr_disk(&mbr_img, populate_basic);
    assert_eq!((p.number, p.start, p.size), (1, MIB, 32 * MIB));
    let dev = p.attach(&mbr_img, true);
    assert_eq!(image::blkid_type(&dev.path), "ext4");
}

#[test]
fn vfat_image_holds_the_reference_tree() {
    common::require_image_prerequisites();
    let work = workdir("harness-vfat");
    let reference = work.path().join("ref");
    std::fs::create_dir(&reference).expect("mkdir");
    populate_basic(&reference);
    stamp_mtimes_vfat(&reference);
    let img = work.path().join("vfat.img");
    image::vfat_image(&img, 32 * MIB, &reference);
    assert_eq!(image::blkid_type(&img), "vfat");
    // Copy it back out with mtools and compare what vfat can hold.
    let out = work.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    common::run_ok(
        Command::new("mcopy")
            .args(["-s", "-p", "-m", "-n", "-i"])
            .arg(&img)
            .arg("::/*")
            .arg(&out)
            .env("TZ", "UTC")
            .env("MTOOLS_SKIP_CHECK", "1"),
    );
    assert_same_tree(&reference, &out, Compare::vfat());
}

#[test]
fn corrupt_images_are_unmountable_as_intended() {
    common::require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("harness-corrupt");
    let zeroed = work.path().join("zeroed.img");
    image::ext4_with_zeroed_superblock(&zeroed);
    assert_eq!(image::blkid_type(&zeroed), "", "a zeroed superblock is not recognised");
    assert!(image::mount_fails(&zeroed, Fs::Ext4, &work.path().join("m1")));

    let bad = work.path().join("bad-block-size.img");
    image::ext4_with_bad_block_size(&bad);
    assert_eq!(image::blkid_type(&bad), "ext4", "blkid still sees ext4");
    assert!(image::mount_fails(&bad, Fs::Ext4, &work.path().join("m2")), "the kernel refuses it");

    let xfs = work.path().join("xfs.img");
    image::xfs_with_garbage_superblock(&xfs);
    assert_eq!(image::blkid_type(&xfs), "");
    assert!(image::mount_fails(&xfs, Fs::Xfs, &work.path().join("m3")));
}

#[test]
fn full_filesystem_reports_enospc_and_stays_mountable() {
    common::require_image_prerequisites();
    let _system = shared_system();
    let work = workdir("harness-full");
    let img = work.path().join("full.img");
    let mut written = 0;
    image::fs_image(&img, Fs::Ext4, 16 * MIB, |root| written = populate::fill_until_full(root));
    assert!(written > 8 * MIB, "wrote only {written} bytes");
    let src = MountedImage::open(&img, None, Fs::Ext4, &work.path().join("m"));
    let out = sh("df", ["--output=avail".as_ref(), "-B1".as_ref(), src.dir().as_os_str()]);
    let avail: u64 = String::from_utf8_lossy(&out).lines().nth(1).expect("df line").trim().parse().expect("number");
    assert!(avail < MIB, "{avail} bytes still free");
    assert!(tree::count_entries(src.dir()) > 3);
}
