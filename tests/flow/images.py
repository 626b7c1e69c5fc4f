"""A real filesystem standing in for the restored volume: an ext4 image filled from a directory with
`mkfs.ext4 -d` (no mount needed), attached read-only to a loop device, detached on exit."""

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

IMAGE_SIZE = "64M"  # small enough to archive in a second or two through moto's S3


def populate(root: Path) -> dict:
    """A small tree with the shapes the worker must keep (nested dirs, a symlink, an empty file, binary data);
    returns {relative path: sha256} of its regular files."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("archived-host\n")
    (root / "var" / "lib" / "app").mkdir(parents=True)
    (root / "var" / "lib" / "app" / "data.bin").write_bytes(os.urandom(3 << 20))
    (root / "var" / "lib" / "app" / "empty").write_bytes(b"")
    (root / "home" / "user").mkdir(parents=True)
    (root / "home" / "user" / "notes.txt").write_text("backup-archiver demo disk\n" * 1000)
    (root / "home" / "user" / "link").symlink_to("notes.txt")
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


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
