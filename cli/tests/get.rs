//! The archive index and single-file restores (issue 13): real filesystems on loop devices, a
//! moto S3 server on loopback, `ls`/`find` from the index alone, `get` of entries at member
//! boundaries, of a file of many members, of a hard link whose target lies in an earlier member,
//! across segments, and a tampered index that must never produce a wrong file.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use archiver_core::index::{IndexWriter, MemberSize, TarIndex};
use batch_worker::get::show;
use common::cli::CliOutput;
use common::image::{self, Fs, MountedImage, MIB};
use common::populate::populate_full;
use common::tree::{self, compare_trees, Compare};
use common::world::World;
use common::{check_archive_output, pseudo_random, sha256_file, shared_system};

const CHUNK: u64 = MIB;

impl World {
    /// An ext4 image filled by `populate`, archived under `prefix` with `extra` options.
    fn archive_ext4(&self, prefix: &str, size: u64, populate: impl FnOnce(&Path), extra: &[&str]) -> PathBuf {
        let img = self.path(&format!("{}.img", prefix.replace('/', "-")));
        image::fs_image(&img, Fs::Ext4, size, populate);
        let out = self.env.archive(&img, &self.t.url(prefix), extra);
        if extra.is_empty() {
            check_archive_output(&out, &self.t, prefix);
        } else {
            assert!(out.objects.iter().all(|o| o.json["index"].is_object()), "{}", out.json);
        }
        img
    }

    fn run(&self, args: &[&OsStr]) -> CliOutput {
        self.env.run(args)
    }

    /// `find URL --json`: every entry but the root, by archive name (as the CLI shows it).
    fn entries(&self, prefix: &str) -> BTreeMap<String, serde_json::Value> {
        let out = self.run(&["find".as_ref(), self.t.url(prefix).as_ref(), "--json".as_ref()]);
        out.assert_success();
        json_lines(&out).into_iter().map(|e| (e["path"].as_str().expect("path").to_string(), e)).collect()
    }

    /// `get URL PATHS --to DIR --json`, asserting success; returns the report.
    fn get(&self, prefix: &str, paths: &[&[u8]], dir: &Path) -> serde_json::Value {
        let out = self.run(&get_args(&self.t.url(prefix), paths, dir.as_os_str()));
        out.assert_success();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("get --json ({e}):\n{}", out.report()))
    }

    /// `get URL PATH --to -`: the file's bytes.
    fn cat(&self, prefix: &str, path: &[u8]) -> CliOutput {
        self.run(&get_args(&self.t.url(prefix), &[path], "-".as_ref()))
    }
}

fn get_args<'a>(url: &'a str, paths: &[&'a [u8]], to: &'a OsStr) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec!["get".as_ref(), url.as_ref()];
    args.extend(paths.iter().map(|p| OsStr::from_bytes(p)));
    args.extend(["--to".as_ref(), to, "--json".as_ref()]);
    args
}

#[track_caller]
fn json_lines(out: &CliOutput) -> Vec<serde_json::Value> {
    out.stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", out.report())))
        .collect()
}

#[track_caller]
fn assert_same_file(actual: &Path, expected: &Path) {
    assert_eq!(
        (std::fs::metadata(actual).map(|m| m.len()).ok(), sha256_file(actual)),
        (std::fs::metadata(expected).map(|m| m.len()).ok(), sha256_file(expected)),
        "{} differs from {}",
        actual.display(),
        expected.display()
    );
}

/// Nothing at all under `dir` (the staging directory included).
#[track_caller]
fn assert_empty_dir(dir: &Path) {
    let left: Vec<OsString> =
        std::fs::read_dir(dir).map(|d| d.map(|e| e.expect("dir entry").file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{} holds {left:?}", dir.display());
}

#[test]
fn the_index_lists_every_entry_of_the_metadata_tree_and_get_restores_it_exactly() {
    let w = World::new("get-meta");
    let _system = shared_system();
    let img = w.archive_ext4("rt", Fs::Ext4.min_size(), populate_full, &[]);
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));

    // find: every entry of the source, with the size and SHA-256 of every file.
    let entries = w.entries("rt");
    let source = tree::scan(src.dir());
    let mut expected: Vec<String> = source.keys().filter(|p| p.as_slice() != b".").map(|p| show(p)).collect();
    expected.sort();
    assert_eq!(entries.keys().cloned().collect::<Vec<_>>(), expected);
    let mut files = 0;
    for (path, e) in &source {
        if !e.meta.is_file() {
            continue;
        }
        let json = &entries[&show(path)];
        if json["kind"] == "hardlink" {
            continue;
        }
        let on_disk = tree::join_bytes(src.dir(), path);
        assert_eq!(json["kind"], "file", "{json}");
        assert_eq!(json["size"].as_u64(), Some(e.meta.len()), "{json}");
        assert_eq!(json["sha256"].as_str(), Some(sha256_file(&on_disk).as_str()), "{json}");
        assert_eq!(json["mode"].as_str(), Some(format!("{:04o}", e.meta.mode() & 0o7777).as_str()), "{json}");
        files += 1;
    }
    assert!(files > 20, "{files} files checked");

    // ls: the root's children, and one directory's.
    let ls = w.run(&["ls".as_ref(), w.t.url("rt").as_ref(), "--json".as_ref()]);
    let top: Vec<String> = json_lines(ls.assert_success()).iter().map(|e| e["path"].as_str().unwrap().into()).collect();
    assert!(top.contains(&"hardlinks".to_string()) && top.contains(&"caf\\xe9".to_string()), "{top:?}");
    assert!(top.iter().all(|p| !p.contains('/')), "{top:?}");
    let ls = w.run(&["ls".as_ref(), w.t.url("rt").as_ref(), "hardlinks".as_ref(), "--json".as_ref()]);
    assert_eq!(json_lines(ls.assert_success()).len(), 4, "{}", ls.report());

    // get of the root: the whole tree, every kind of metadata, as restore writes it.
    let all = w.path("all");
    let report = w.get("rt", &[b"."], &all);
    assert_eq!(report["entries"].as_array().map(Vec::len), Some(source.len()), "{report}");
    let diffs = compare_trees(src.dir(), &all, Compare::exact());
    assert!(diffs.is_empty(), "get . differs from the source:\n  {}", diffs.join("\n  "));

    // A non-UTF-8 name, a long one, a sparse file: into another directory, and to stdout.
    let some = w.path("some");
    let long = "m".repeat(255);
    w.get("rt", &[b"dir_\xff\xfe", long.as_bytes(), b"sparse.bin"], &some);
    assert_same_file(
        &some.join(OsStr::from_bytes(b"dir_\xff\xfe/\x80child")),
        &src.dir().join(OsStr::from_bytes(b"dir_\xff\xfe/\x80child")),
    );
    assert_same_file(&some.join(&long), &src.dir().join(&long));
    assert_same_file(&some.join("sparse.bin"), &src.dir().join("sparse.bin"));
    assert!(tree::allocated(&std::fs::metadata(some.join("sparse.bin")).unwrap()) < MIB, "sparse.bin stays sparse");
    let cat = w.cat("rt", b"hardlinks/triple_b");
    cat.assert_success();
    assert_eq!(cat.stdout, std::fs::read(src.dir().join("hardlinks/triple_a")).unwrap(), "a hard link to stdout");
    w.cat("rt", b"nested").assert_code(1);
    w.run(&["find".as_ref(), w.t.url("rt").as_ref(), "--name".as_ref(), "no-such-*".as_ref()]).assert_code(1);
}

/// A hard link's target first, then 40 incompressible files of 100 KiB (4 MiB: several members),
/// a file of many members, 30 files of 70 KiB, and the hard link last.
fn populate_members(root: &Path) {
    std::fs::write(root.join("a_target"), pseudo_random(1, 10_000)).unwrap();
    std::fs::create_dir(root.join("b_fill")).unwrap();
    for i in 0..40 {
        std::fs::write(root.join(format!("b_fill/{i:02}")), pseudo_random(100 + i, 100 * 1024)).unwrap();
    }
    std::fs::write(root.join("big"), pseudo_random(2, 5 * MIB as usize + 123)).unwrap();
    std::fs::create_dir(root.join("c_files")).unwrap();
    for i in 0..30 {
        std::fs::write(root.join(format!("c_files/{i:02}")), pseudo_random(200 + i, 70 * 1024)).unwrap();
    }
    std::fs::hard_link(root.join("a_target"), root.join("z_link")).unwrap();
}

#[test]
fn get_fetches_only_the_members_of_the_entries_across_boundaries_and_segments() {
    let w = World::new("get-members");
    let _system = shared_system();
    // 5 MiB segments: the ~12 MiB stream lies in three segment objects.
    let img = w.archive_ext4("m", 64 * MIB, populate_members, &["--part-size", "5MiB", "--segment-size", "5MiB"]);
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));
    let manifest: serde_json::Value = serde_json::from_slice(&w.t.s3.get(&w.t.bucket, "m/manifest.json")).unwrap();
    let segments = manifest["objects"][0]["segments"].as_array().unwrap().len();
    assert!(segments >= 2, "{manifest}");

    let entries = w.entries("m");
    let span = |e: &serde_json::Value| (e["offset"].as_u64().unwrap(), e["span"].as_u64().unwrap());
    // Files whose headers and data straddle a member boundary, and the first to start after one.
    let crossing: Vec<&String> = entries
        .iter()
        .filter(|(_, e)| e["kind"] == "file" && e["size"].as_u64() < Some(MIB))
        .filter(|(_, e)| {
            let (offset, span) = span(e);
            offset / CHUNK != (offset + span - 1) / CHUNK
        })
        .map(|(p, _)| p)
        .collect();
    assert!(crossing.len() >= 5, "{crossing:?}");
    let dir = w.path("crossing");
    for path in &crossing {
        let report = w.get("m", &[path.as_bytes()], &dir);
        assert_same_file(&dir.join(path), &src.dir().join(path));
        // One ranged GET, two when a segment ends between its members.
        assert!(matches!(report["ranges"].as_u64(), Some(1 | 2)), "{path}: {report}");
        // Two members at most of an incompressible stream: about 2 MiB of a 12 MiB object.
        let fetched = report["bytes_fetched"].as_u64().unwrap();
        assert!(fetched <= 2 * CHUNK + 4096, "{path}: {report}");
        assert!(report["object_bytes"].as_u64().unwrap() > 5 * fetched, "{path}: {report}");
    }

    // A file of many members, to a directory and to stdout.
    let report = w.get("m", &[b"big"], &w.path("big"));
    assert_same_file(&w.path("big/big"), &src.dir().join("big"));
    assert!(report["bytes_fetched"].as_u64().unwrap() >= 5 * CHUNK, "{report}");
    let cat = w.cat("m", b"big");
    cat.assert_success();
    assert!(cat.stdout == std::fs::read(src.dir().join("big")).unwrap(), "big to stdout differs");

    // A hard link whose target lies members earlier: both names, one inode, the content.
    let (target, link) = (span(&entries["a_target"]), span(&entries["z_link"]));
    assert!(link.0 / CHUNK > (target.0 + target.1) / CHUNK + 2, "target {target:?}, link {link:?}");
    let linked = w.path("linked");
    w.get("m", &[b"z_link"], &linked);
    assert_same_file(&linked.join("z_link"), &src.dir().join("a_target"));
    let (a, z) =
        (std::fs::metadata(linked.join("a_target")).unwrap(), std::fs::metadata(linked.join("z_link")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (z.ino(), 2), "z_link is a hard link to a_target");

    // A directory with everything under it.
    let fill = w.path("fill");
    w.get("m", &[b"c_files"], &fill);
    let diffs = compare_trees(&src.dir().join("c_files"), &fill.join("c_files"), Compare::exact());
    assert!(diffs.is_empty(), "c_files differs:\n  {}", diffs.join("\n  "));
}

/// Rewrites the index of the archive under `prefix` with `tamper` and records it in the manifest
/// (size and SHA-256), so only the index's content is wrong.
fn tamper_index(w: &World, prefix: &str, tamper: impl FnOnce(&mut TarIndex)) {
    let manifest_key = format!("{prefix}/manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&w.t.s3.get(&w.t.bucket, &manifest_key)).unwrap();
    let object = &manifest["objects"][0];
    let index_key = object["index"]["key"].as_str().unwrap().to_string();
    let mut index = TarIndex::parse(&w.t.s3.get(&w.t.bucket, &index_key)).unwrap();
    tamper(&mut index);
    let mut writer = IndexWriter::new().unwrap();
    for e in &index.entries {
        writer.push(e).unwrap();
    }
    let members: Vec<MemberSize> =
        index.members.iter().map(|m| MemberSize { len: m.len, compressed_len: m.compressed_len }).collect();
    let segments: Vec<u64> =
        object["segments"].as_array().unwrap().iter().map(|s| s["size"].as_u64().unwrap()).collect();
    let bytes = writer.finish(&members, &segments).unwrap();
    let file = w.path("tampered.index");
    std::fs::write(&file, &bytes).unwrap();
    manifest["objects"][0]["index"]["size"] = bytes.len().into();
    manifest["objects"][0]["index"]["sha256"] = sha256_file(&file).into();
    w.t.s3.put(&w.t.bucket, &index_key, bytes);
    w.t.s3.put(&w.t.bucket, &manifest_key, serde_json::to_vec(&manifest).unwrap());
}

fn populate_small(root: &Path) {
    for i in 1..=5 {
        std::fs::write(root.join(format!("f{i}")), pseudo_random(i, 3000)).unwrap();
    }
}

#[track_caller]
fn assert_detected(w: &World, prefix: &str, path: &[u8], dir: &Path) {
    let out = w.run(&get_args(&w.t.url(prefix), &[path], dir.as_os_str()));
    out.assert_code(1);
    assert!(out.stderr_text().contains("does not match the index"), "{}", out.report());
    assert_empty_dir(dir);
    let cat = w.cat(prefix, path);
    cat.assert_code(1);
    assert!(cat.stdout.is_empty(), "{} bytes written to stdout:\n{}", cat.stdout.len(), cat.report());
}

#[test]
fn a_tampered_index_is_detected_and_never_writes_a_wrong_file() {
    let w = World::new("get-tamper");
    let _system = shared_system();
    w.archive_ext4("t", Fs::Ext4.min_size(), populate_small, &[]);

    // f2's entry points at f3's header (f3 dropped from the index).
    tamper_index(&w, "t", |index| {
        let i = index.entries.iter().position(|e| e.path == b"f2").unwrap();
        let next = index.entries.remove(i + 1);
        assert_eq!(next.path, b"f3");
        (index.entries[i].offset, index.entries[i].span) = (next.offset, next.span);
    });
    assert_detected(&w, "t", b"f2", &w.path("wrong-entry"));

    // f4's entry points one block into its own entry.
    tamper_index(&w, "t", |index| {
        let e = index.entries.iter_mut().find(|e| e.path == b"f4").unwrap();
        e.offset += 512;
        e.span -= 512;
    });
    assert_detected(&w, "t", b"f4", &w.path("mid-entry"));

    // The right offsets with another file's hash: extracted, checked, and removed again.
    tamper_index(&w, "t", |index| {
        let f1 = index.entries.iter().find(|e| e.path == b"f1").unwrap().sha256;
        index.entries.iter_mut().find(|e| e.path == b"f5").unwrap().sha256 = f1;
    });
    let dir = w.path("wrong-hash");
    let out = w.run(&get_args(&w.t.url("t"), &[b"f5"], dir.as_os_str()));
    out.assert_code(1);
    assert!(out.stderr_text().contains("SHA-256"), "{}", out.report());
    assert_empty_dir(&dir);
    // To stdout the bytes are out before the hash is known: the exit code says to discard them.
    let cat = w.cat("t", b"f5");
    cat.assert_code(1);
    assert!(cat.stderr_text().contains("discard"), "{}", cat.report());

    // An index changed behind the manifest's back is refused before anything is fetched.
    let manifest: serde_json::Value = serde_json::from_slice(&w.t.s3.get(&w.t.bucket, "t/manifest.json")).unwrap();
    let index_key = manifest["objects"][0]["index"]["key"].as_str().unwrap().to_string();
    let mut bytes = w.t.s3.get(&w.t.bucket, &index_key);
    bytes.push(0);
    w.t.s3.put(&w.t.bucket, &index_key, bytes);
    let ls = w.run(&["ls".as_ref(), w.t.url("t").as_ref()]);
    ls.assert_code(1);
    assert!(ls.stderr_text().contains("does not match the manifest"), "{}", ls.report());

    // An archive written before indexes: `get` says so and points at `restore`.
    let mut manifest = manifest;
    manifest["objects"][0].as_object_mut().unwrap().remove("index");
    w.t.s3.put(&w.t.bucket, "t/manifest.json", serde_json::to_vec(&manifest).unwrap());
    let get = w.run(&get_args(&w.t.url("t"), &[b"f1"], w.path("old").as_os_str()));
    get.assert_code(2);
    assert!(get.stderr_text().contains("no index") && get.stderr_text().contains("restore"), "{}", get.report());
}

#[test]
fn archives_lists_the_catalogue_newest_first_and_get_reads_zstd_frames() {
    let w = World::new("get-catalogue");
    let _system = shared_system();
    let a = w.archive_ext4("ebs/a", Fs::Ext4.min_size(), populate_small, &[]);
    let b = w.archive_ext4("ebs/b", Fs::Ext4.min_size(), populate_small, &["--compression", "zstd"]);

    let url = w.t.url("ebs");
    let archives = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec!["archives".as_ref(), url.as_ref(), "--json".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        json_lines(w.run(&args).assert_success())
    };
    let all = archives(&[]);
    let locations: Vec<&str> = all.iter().map(|a| a["location"].as_str().unwrap()).collect();
    assert_eq!(locations, [w.t.url("ebs/b"), w.t.url("ebs/a")], "newest first: {all:?}");
    assert_eq!(all[0]["source"].as_str(), b.to_str(), "{}", all[0]);
    assert_eq!(all[0]["modes"], serde_json::json!(["files"]), "{}", all[0]);
    assert_eq!(all[0]["storage_classes"], serde_json::json!(["STANDARD"]), "{}", all[0]);
    assert_eq!(all[0]["indexed"], true, "{}", all[0]);
    assert_eq!(archives(&["--source", a.to_str().unwrap()]).len(), 1);
    assert_eq!(archives(&["--source", "ebs/b"])[0]["location"].as_str(), Some(w.t.url("ebs/b").as_str()));
    assert!(archives(&["--since", "2100-01-01"]).is_empty());

    // The zstd archive: one frame per range, and the seek table other tools read.
    let cat = w.cat("ebs/b", b"f3");
    cat.assert_success();
    assert!(cat.stdout == pseudo_random(3, 3000), "f3 from the zstd archive differs:\n{}", cat.report());
    let stored = w.t.s3.get(&w.t.bucket, "ebs/b/disk.tar.zst");
    let footer = &stored[stored.len() - 9..];
    assert_eq!(footer[5..], 0x8F92_EAB1u32.to_le_bytes(), "the object ends with a zstd seek table");
    let manifest: serde_json::Value = serde_json::from_slice(&w.t.s3.get(&w.t.bucket, "ebs/b/manifest.json")).unwrap();
    let frames = u32::from_le_bytes(footer[..4].try_into().unwrap());
    assert_eq!(Some(frames as u64), manifest["objects"][0]["index"]["members"].as_u64(), "{manifest}");
}

/// A `backup-archiver mount` running on a directory; dropping it unmounts (lazily, so a failed
/// assertion never leaves a mount behind) and ends the process.
struct Mounted {
    dir: PathBuf,
    running: Option<common::Running>,
}

impl Mounted {
    fn start(w: &World, prefix: &str, dir: PathBuf) -> Mounted {
        std::fs::create_dir_all(&dir).unwrap();
        let running = w.env.spawn([OsStr::new("mount"), w.t.url(prefix).as_ref(), dir.as_os_str()]);
        let mut mounted = Mounted { dir, running: Some(running) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !mounted.is_mounted() {
            let running = mounted.running.as_mut().expect("running");
            if let Some(status) = running.child.try_wait().unwrap() {
                let out = mounted.running.take().unwrap().wait(std::time::Duration::from_secs(5));
                panic!("mount exited ({status}) before mounting: {}", String::from_utf8_lossy(&out.stderr));
            }
            assert!(std::time::Instant::now() < deadline, "{} was not mounted within 60 s", mounted.dir.display());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        mounted
    }

    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let dir = self.dir.to_str().unwrap();
        mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir))
    }

    /// Unmounts as an operator would and waits for the CLI, which must exit 0.
    fn unmount(mut self) -> CliOutput {
        common::sh("umount", [&self.dir]);
        let running = self.running.take().expect("running");
        let cmdline = running.cmdline.clone();
        let out = running.wait(std::time::Duration::from_secs(60));
        CliOutput { cmdline, status: out.status, stdout: out.stdout, stderr: out.stderr }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.is_mounted() {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

#[test]
fn mount_shows_the_archive_and_cp_a_copies_it_out_exactly() {
    let w = World::new("get-mount");
    let _system = shared_system();
    let img = w.archive_ext4("rt", Fs::Ext4.min_size(), populate_full, &[]);
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));
    let mounted = Mounted::start(&w, "rt", w.path("mnt"));

    assert_same_file(&mounted.dir.join("hardlinks/triple_b"), &src.dir().join("hardlinks/triple_a"));
    let copy = w.path("copy");
    common::sh("cp", [OsStr::new("-a"), mounted.dir.join(".").as_os_str(), copy.as_os_str()]);
    // The mount shows no xattrs or ACLs: they live in the tar stream, not in the index.
    let diffs = compare_trees(src.dir(), &copy, Compare { xattrs: false, ..Compare::exact() });
    assert!(diffs.is_empty(), "cp -a from the mount differs from the source:\n  {}", diffs.join("\n  "));
    let ls = common::sh("ls", [OsStr::new("-l"), mounted.dir.as_os_str()]);
    assert!(String::from_utf8_lossy(&ls).contains("sparse.bin"), "{}", String::from_utf8_lossy(&ls));
    mounted.unmount().assert_success();
}

/// Storage class and restore state (`x-amz-restore`) of an object, as HeadObject reports them.
fn head(w: &World, key: &str) -> (String, Option<String>) {
    let out = w.t.s3.block_on(w.t.s3.client.head_object().bucket(&w.t.bucket).key(key).send()).unwrap();
    (out.storage_class().map_or("STANDARD", |c| c.as_str()).to_string(), out.restore().map(str::to_string))
}

#[test]
fn an_archive_in_glacier_thaws_only_the_objects_a_get_needs() {
    let w = World::new("get-glacier");
    let _system = shared_system();
    let args = ["--storage-class", "GLACIER", "--part-size", "5MiB", "--segment-size", "5MiB"];
    let img = w.archive_ext4("g", 64 * MIB, populate_members, &args);
    let src = MountedImage::open(&img, None, Fs::Ext4, &w.path("src"));
    let manifest: serde_json::Value = serde_json::from_slice(&w.t.s3.get(&w.t.bucket, "g/manifest.json")).unwrap();
    let object = &manifest["objects"][0];
    let segments: Vec<String> =
        object["segments"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect();
    assert!(segments.len() >= 3, "{manifest}");
    for key in &segments {
        assert_eq!(head(&w, key), ("GLACIER".to_string(), None), "{key}");
    }
    // The index and the manifest stay readable at once, whatever --storage-class says.
    assert_eq!(head(&w, object["index"]["key"].as_str().unwrap()).0, "STANDARD");
    assert_eq!(head(&w, "g/manifest.json").0, "STANDARD");
    let archives = w.run(&["archives".as_ref(), w.t.url("g").as_ref(), "--json".as_ref()]);
    assert_eq!(json_lines(archives.assert_success())[0]["storage_classes"], serde_json::json!(["GLACIER"]));
    let entries = w.entries("g");

    // Without --thaw: which objects, and how to thaw them; nothing written, nothing thawed.
    let dir = w.path("frozen");
    let last = entries["c_files/29"]["offset"].as_u64().unwrap();
    let out = w.run(&get_args(&w.t.url("g"), &[b"c_files/29"], dir.as_os_str()));
    out.assert_code(1);
    let last_segment = segments.last().unwrap();
    assert!(out.stderr_text().contains(last_segment.as_str()), "{}", out.report());
    assert!(out.stderr_text().contains("--thaw"), "{}", out.report());
    assert_empty_dir(&dir);
    let mount = w.run(&[OsStr::new("mount"), w.t.url("g").as_ref(), w.path("mnt").as_os_str()]);
    mount.assert_code(1);
    assert!(mount.stderr_text().contains("must be thawed"), "{}", mount.report());

    // --thaw restores the object that holds the file, and only it.
    assert!(last > 10 * MIB, "c_files/29 lies in the last segment: {last}");
    let url = w.t.url("g");
    let mut args = get_args(&url, &[b"c_files/29"], dir.as_os_str());
    args.extend([OsStr::new("--thaw"), "--tier".as_ref(), "standard".as_ref(), "--days".as_ref(), "2".as_ref()]);
    // The first call starts the restore and says so; S3 takes hours, so nothing is read yet.
    let started = w.run(&args);
    started.assert_code(1);
    assert!(started.stderr_text().contains("being thawed"), "{}", started.report());
    assert_empty_dir(&dir);
    for key in &segments {
        let restored = head(&w, key).1.is_some();
        assert_eq!(restored, key == last_segment, "restore of {key}");
    }
    // A later call finds it readable (this S3 thaws at once) and restores the file.
    w.run(&args).assert_success();
    assert_same_file(&dir.join("c_files/29"), &src.dir().join("c_files/29"));
    // The thawed object reads without --thaw; the others still do not.
    w.cat("g", b"c_files/28").assert_success();
    w.cat("g", b"a_target").assert_code(1);
}

#[test]
fn a_disk_of_several_filesystems_is_read_one_partition_at_a_time() {
    let w = World::new("get-gpt");
    let _system = shared_system();
    let disk = image::gpt_disk(&w.path("gpt.img"), populate_small);
    let out = w.env.archive(&disk.image, &w.t.url("gpt"), &[]);
    check_archive_output(&out, &w.t, "gpt");
    let url = w.t.url("gpt");

    let ls = w.run(&["ls".as_ref(), url.as_ref()]);
    ls.assert_code(2);
    assert!(ls.stderr_text().contains("--partition") && ls.stderr_text().contains("1, 2"), "{}", ls.report());
    for partition in ["1", "2"] {
        let dir = w.path(&format!("part{partition}"));
        let mut args = get_args(&url, &[b"f4"], dir.as_os_str());
        args.extend([OsStr::new("--partition"), partition.as_ref()]);
        w.run(&args).assert_success();
        assert_eq!(std::fs::read(dir.join("f4")).unwrap(), pseudo_random(4, 3000), "f4 of partition {partition}");
    }
    let raw = w.run(&["ls".as_ref(), url.as_ref(), "--partition".as_ref(), "3".as_ref()]);
    raw.assert_code(2);
    assert!(raw.stderr_text().contains("no files-mode object for partition 3"), "{}", raw.report());
}
