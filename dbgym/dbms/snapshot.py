"""Snapshots of a stopped data directory, and restoring one by copying back only what changed.

A snapshot is a copy of the cleanly shut-down data directory plus a manifest: for every
path, its kind, size, mtime (ns), mode and owner. Copies keep mtimes, so right after a
snapshot (or a restore) every live file has exactly the manifest's (size, mtime_ns).
PostgreSQL never sets mtimes itself, so a live file whose (size, mtime_ns) still match
was not written since; restore brings back only the files that differ (for large files only the
differing 8 kB blocks, unless the filesystem can reflink), deletes files the snapshot
does not have and recreates the ones that went missing. With nothing changed it copies
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dbgym._core import block_hashes
from dbgym.dbms.filecopy import BLOCK, CHUNK, copy_file, sync_file

# kind ("f" file, "d" dir, "l" symlink), size, mtime_ns, mode, uid, gid, symlink target
Entry = tuple[str, int, int, int, int, int, str]
Manifest = dict[str, Entry]


@dataclass
class RestoreStats:
    copied_files: int = 0  # files that differed and were brought back
    copied_bytes: int = 0  # bytes written to do so (only differing blocks of large files)
    removed: int = 0
    created: int = 0


def _entry(path: str, st: os.stat_result) -> Entry:
    if stat.S_ISLNK(st.st_mode):
        kind, target = "l", os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        kind, target = "d", ""
    else:
        kind, target = "f", ""
    size = st.st_size if kind == "f" else 0
    return (kind, size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, target)


def _set_meta(path: str, entry: Entry, set_owner: bool, is_root: bool) -> None:
    kind, _size, mtime_ns, mode, uid, gid, _target = entry
    if set_owner and is_root:
        os.chown(path, uid, gid, follow_symlinks=False)
    if kind != "l":
        os.chmod(path, mode)
    if kind == "f":
        os.utime(path, ns=(mtime_ns, mtime_ns))


def copy_tree(
    src: Path,
    dst: Path,
    skip: frozenset[str] | set[str] = frozenset(),
    owner: tuple[int, int] | None = None,
) -> Manifest:
    """Copy `src` into the new directory `dst` keeping mode and mtimes, and owners when
    running as root (or giving everything `owner`). Relative paths in `skip` are left
    out. Returns the manifest of the copy (relative paths; "" is the root)."""
    is_root = os.geteuid() == 0
    manifest: Manifest = {}

    def meta(path: str, entry: Entry) -> Entry:
        if owner is not None:
            entry = (*entry[:4], owner[0], owner[1], entry[6])
        _set_meta(path, entry, set_owner=True, is_root=is_root)
        return entry

    def walk(s: str, d: str, rel: str) -> None:
        with os.scandir(s) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            if r in skip:
                continue
            st = e.stat(follow_symlinks=False)
            entry = _entry(e.path, st)
            target = os.path.join(d, e.name)
            if entry[0] == "d":
                os.mkdir(target, 0o700)
                walk(e.path, target, r)
            elif entry[0] == "l":
                os.symlink(entry[6], target)
            else:
                copy_file(e.path, target, entry[1])
            manifest[r] = meta(target, entry)

    os.mkdir(dst, 0o700)
    walk(str(src), str(dst), "")
    manifest[""] = meta(str(dst), _entry(str(src), os.lstat(src)))
    return manifest


def save_manifest(manifest: Manifest, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, separators=(",", ":")))
    os.replace(tmp, path)


def load_manifest(path: Path) -> Manifest:
    raw = json.loads(path.read_text())
    return {k: (v[0], v[1], v[2], v[3], v[4], v[5], v[6]) for k, v in raw.items()}


def _remove(path: str, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path)
    else:
        os.unlink(path)


def compute_hashes(root: Path, manifest: Manifest) -> dict[str, bytes]:
    """Block hashes (dbgym._core.block_hashes) of the snapshot's files of >= CHUNK bytes:
    restore then reads only the live file, not the snapshot copy, to find changes."""
    return {
        rel: block_hashes(str(root / rel), BLOCK, CHUNK)
        for rel, entry in manifest.items()
        if entry[0] == "f" and entry[1] >= CHUNK
    }


def save_hashes(hashes: dict[str, bytes], directory: Path) -> None:
    """hashes.bin (all hashes, concatenated) + hashes.json (path -> [offset, length])."""
    index: dict[str, list[int]] = {}
    offset = 0
    with open(directory / "hashes.bin", "wb") as f:
        for rel, data in sorted(hashes.items()):
            f.write(data)
            index[rel] = [offset, len(data)]
            offset += len(data)
    (directory / "hashes.json").write_text(json.dumps(index))


def load_hashes(directory: Path) -> dict[str, bytes]:
    try:
        index = json.loads((directory / "hashes.json").read_text())
        data = (directory / "hashes.bin").read_bytes()
    except FileNotFoundError:
        return {}
    return {rel: data[off : off + length] for rel, (off, length) in index.items()}


def restore_tree(
    snapshot: Path, manifest: Manifest, live: Path, hashes: dict[str, bytes] | None = None
) -> RestoreStats:
    """Make `live` identical to the snapshot directory `snapshot` described by `manifest`
    (`hashes`: from compute_hashes for that snapshot, to read less)."""
    hashes = hashes or {}
    is_root = os.geteuid() == 0
    stats = RestoreStats()
    seen: set[str] = set()

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                want = manifest.get(r)
                st = e.stat(follow_symlinks=False)
                have = _entry(e.path, st)
                if want is None or want[0] != have[0] or (have[0] == "l" and have[6] != want[6]):
                    _remove(e.path, have[0] == "d")
                    stats.removed += 1
                    continue
                seen.add(r)
                if have[0] == "d":
                    if have[3] != want[3]:
                        os.chmod(e.path, want[3])
                    walk(e.path, r)
                elif have[0] == "f":
                    if have[1] != want[1] or have[2] != want[2]:
                        src = os.path.join(snapshot, r)
                        written = sync_file(src, e.path, want[1], hashes.get(r))
                        _set_meta(e.path, want, set_owner=False, is_root=is_root)
                        stats.copied_files += 1
                        stats.copied_bytes += written
                    elif have[3] != want[3]:
                        os.chmod(e.path, want[3])

    walk(str(live), "")
    # Recreate what went missing; sorted, so parents come before their children.
    for r in sorted(k for k in manifest if k and k not in seen):
        want = manifest[r]
        target = os.path.join(live, r)
        if want[0] == "d":
            os.mkdir(target, 0o700)
        elif want[0] == "l":
            os.symlink(want[6], target)
        else:
            copy_file(os.path.join(snapshot, r), target, want[1], want[3])
            stats.copied_bytes += want[1]
        _set_meta(target, want, set_owner=True, is_root=is_root)
        stats.created += 1
    root = manifest.get("")
    if root is not None and stat.S_IMODE(os.stat(live).st_mode) != root[3]:
        os.chmod(live, root[3])
    return stats
