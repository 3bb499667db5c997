"""Copying one file fast: reflink (FICLONE) where the filesystem allows, else an
in-kernel copy (copy_file_range, then sendfile as the fallback)."""

from __future__ import annotations

import errno
import fcntl
import os

from dbgym._core import sync_file_blocks, sync_file_hashed

CHUNK = 1 << 20  # compare unit of sync_file
BLOCK = 8192  # PostgreSQL's page size: the write unit for differing chunks
FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_NO_REFLINK_ERRNOS = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM}
_reflink_ok: dict[int, bool] = {}  # st_dev -> does FICLONE work there


def _kernel_copy(src_fd: int, dst_fd: int, size: int) -> None:
    offset = 0
    use_cfr = hasattr(os, "copy_file_range")
    while offset < size:
        chunk = min(size - offset, 1 << 30)
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, chunk, offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_cfr = False
                continue
        else:
            os.lseek(dst_fd, offset, os.SEEK_SET)
            n = os.sendfile(dst_fd, src_fd, offset, chunk)
        if n == 0:
            break  # source shrank underneath us
        offset += n


def copy_into(src: str, dst_fd: int, size: int, dst_dev: int) -> None:
    """Make the open, empty (truncated) file `dst_fd` a copy of `src` (`size` bytes)."""
    src_fd = os.open(src, os.O_RDONLY)
    try:
        if _reflink_ok.get(dst_dev, True) and size > 0:
            try:
                fcntl.ioctl(dst_fd, FICLONE, src_fd)
                _reflink_ok[dst_dev] = True
                return
            except OSError as exc:
                if exc.errno not in _NO_REFLINK_ERRNOS:
                    raise
                _reflink_ok[dst_dev] = False
        _kernel_copy(src_fd, dst_fd, size)
    finally:
        os.close(src_fd)


def copy_file(src: str, dst: str, size: int, mode: int = 0o600) -> None:
    """Create or overwrite `dst` (keeping its inode if it exists) as a copy of `src`."""
    dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        copy_into(src, dst_fd, size, os.fstat(dst_fd).st_dev)
    finally:
        os.close(dst_fd)


def reflink_supported(directory: str) -> bool | None:
    """Whether reflinks worked on `directory`'s filesystem so far (None: not tried yet)."""
    return _reflink_ok.get(os.stat(directory).st_dev)


def sync_file(src: str, dst: str, size: int, hashes: bytes | None = None) -> int:
    """Make the existing file `dst` equal to `src` (`size` bytes) writing only what
    differs: a reflink where the filesystem allows, else rewrite the differing BLOCK
    runs (found by comparing with `src`'s block hashes if given, else with `src`
    itself), copy a missing tail, truncate an extra one. Returns bytes written."""
    dst_fd = os.open(dst, os.O_RDWR)
    try:
        st = os.fstat(dst_fd)
        src_fd = os.open(src, os.O_RDONLY)
        try:
            if _reflink_ok.get(st.st_dev) is not False:
                try:
                    fcntl.ioctl(dst_fd, FICLONE, src_fd)
                    _reflink_ok[st.st_dev] = True
                    return 0
                except OSError as exc:
                    if exc.errno not in _NO_REFLINK_ERRNOS:
                        raise
                    _reflink_ok[st.st_dev] = False
            if st.st_size < CHUNK:
                os.ftruncate(dst_fd, 0)
                _kernel_copy(src_fd, dst_fd, size)
                return size
        finally:
            os.close(src_fd)
    finally:
        os.close(dst_fd)
    # Compare and rewrite differing blocks in Rust (parallel, GIL released).
    if hashes is not None:
        return sync_file_hashed(src, dst, hashes, BLOCK, CHUNK)
    return sync_file_blocks(src, dst, BLOCK, CHUNK)
