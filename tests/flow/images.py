"""A real filesystem standing in for the restored volume: an ext4 image filled from a directory with
`mkfs.ext4 -d` (no mount needed), attached read-only to a loop device, detached on exit."""

import contextlib
import hashlib
import os
import stat
import subprocess
from pathlib import Path

IMAGE_SIZE = "64M"  # small enough to archive in a second or two through moto's S3


def populate(root: Path) -> dict:
    """A small tree with the shapes the worker must keep (nested dirs, a symlink, an empty file, binary data, modes
    other than the umask's); returns `tree(root)`."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("archived-host\n")
    (root / "var" / "lib" / "app").mkdir(parents=True)
    (root / "var" / "lib" / "app" / "data.bin").write_bytes(os.urandom(3 << 20))
    (root / "var" / "lib" / "app" / "data.bin").chmod(0o600)
    (root / "var" / "lib" / "app" / "empty").write_bytes(b"")
    (root / "var" / "lib" / "app").chmod(0o750)
    (root / "home" / "user").mkdir(parents=True)
    (root / "home" / "user" / "notes.txt").write_text("backup-archiver demo disk\n" * 1000)
    (root / "home" / "user" / "run.sh").write_text("#!/bin/sh\necho archived\n")
    (root / "home" / "user" / "run.sh").chmod(0o755)
    (root / "home" / "user" / "link").symlink_to("notes.txt")
    return tree(root)


def tree(root: Path) -> dict:
    """Every entry under `root` by relative path: its type, permission bits, and the SHA-256 of a file's content
    or a symlink's target, which is what an archive must give back for each path."""
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        entry = {"mode": oct(stat.S_IMODE(info.st_mode))}
        if stat.S_ISLNK(info.st_mode):
            entry.update(type="symlink", target=os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entry.update(type="directory")
        elif stat.S_ISREG(info.st_mode):
            entry.update(type="file", sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            entry.update(type=f"special {stat.S_IFMT(info.st_mode):o}")
        entries[str(path.relative_to(root))] = entry
    return entries


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def loop_device(image: Path, source: Path):
    """`image` made from `source`, attached read-only; yields the device path and detaches it afterwards."""
    run("mkfs.ext4", "-q", "-F", "-L", "demo-disk", "-d", str(source), str(image), IMAGE_SIZE)
    device = run("losetup", "--find", "--show", "--read-only", str(image))
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], capture_output=True, timeout=30)
