"""Files dbgym owns inside a data directory (the same for every backend).

- `pg_hba.conf`: trust on the private unix socket, scram-sha-256 over TCP from the
  backend's client addresses, nothing else.
- `postgresql.conf` gets one line, `include_if_exists = 'dbgym_knobs.conf'`, at its end,
  so knobs applied by dbgym win over the defaults (ALTER SYSTEM still wins over both).
- `dbgym_knobs.conf`: the knobs applied so far (dbgym.dbms.knobs.render_conf).
- `dbgym.json`: the superuser name and password, so an exported data directory can be
  launched again (`launch(init_from=...)`). The data directory is mode 0700.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from pathlib import Path

from dbgym.errors import DbgymError

KNOB_FILE = "dbgym_knobs.conf"
CREDENTIALS_FILE = "dbgym.json"
INCLUDE_LINE = f"include_if_exists = '{KNOB_FILE}'  # added by dbgym"
#: Files that describe a running server, never part of a snapshot or an export.
RUNTIME_FILES = frozenset({"postmaster.pid", "postmaster.opts"})


def write_file(path: Path, text: str, owner: tuple[int, int] | None, mode: int = 0o600) -> None:
    """Atomically replace `path` with `text`, with that owner and mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def configure(datadir: Path, hba_cidrs: list[str], owner: tuple[int, int] | None) -> None:
    """Write pg_hba.conf and hook the knob file into postgresql.conf (idempotent)."""
    hba = ["# written by dbgym", "local all all trust"]
    hba += [f"host all all {cidr} scram-sha-256" for cidr in hba_cidrs]
    write_file(datadir / "pg_hba.conf", "\n".join(hba) + "\n", owner)
    conf = datadir / "postgresql.conf"
    text = conf.read_text()
    if INCLUDE_LINE not in text:
        write_file(conf, text.rstrip("\n") + "\n\n" + INCLUDE_LINE + "\n", owner)
    if not (datadir / KNOB_FILE).exists():
        write_knob_file(datadir, "", owner)


def write_knob_file(datadir: Path, text: str, owner: tuple[int, int] | None) -> None:
    write_file(datadir / KNOB_FILE, text, owner)


def read_knob_file(datadir: Path) -> str:
    try:
        return (datadir / KNOB_FILE).read_text()
    except FileNotFoundError:
        return ""


def write_credentials(
    datadir: Path, user: str, password: str, owner: tuple[int, int] | None
) -> None:
    write_file(datadir / CREDENTIALS_FILE, json.dumps({"user": user, "password": password}), owner)


def read_credentials(datadir: Path) -> tuple[str, str]:
    path = datadir / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
        return str(data["user"]), str(data["password"])
    except (OSError, ValueError, KeyError) as exc:
        raise DbgymError(
            f"{datadir} is not a data directory exported by dbgym ({path}: {exc}); "
            "create one with PostgresInstance.export_datadir()"
        ) from exc


def postmaster_status(datadir: Path) -> tuple[int | None, str | None]:
    """(pid, status) from postmaster.pid: line 1 is the postmaster's pid, line 8 the
    status word ("starting", "ready", "stopping", "standby"); None while missing."""
    try:
        with open(datadir / "postmaster.pid", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None, None
    pid = int(lines[0]) if lines[0].strip().isdigit() else None
    if len(lines) < 8:
        return pid, None
    return pid, lines[7].decode(errors="replace").strip() or None


def redo_wal_segments(datadir: Path) -> set[str]:
    """Names of the WAL segment files a cleanly shut-down data directory needs: those
    holding the latest checkpoint record and its redo point (the same one after a clean
    shutdown). Read from global/pg_control (layout of PostgreSQL >= 11: checkPoint at
    byte 32, checkPointCopy.redo at 40, its timeline at 48)."""
    raw = (datadir / "global" / "pg_control").read_bytes()
    checkpoint, redo = struct.unpack_from("=QQ", raw, 32)
    (timeline,) = struct.unpack_from("=I", raw, 48)
    sizes = {
        e.stat().st_size
        for e in os.scandir(datadir / "pg_wal")
        if e.is_file() and len(e.name) == 24 and e.name.isalnum()
    }
    if len(sizes) != 1:
        raise DbgymError(f"cannot tell the WAL segment size in {datadir / 'pg_wal'}: {sizes}")
    seg_size = sizes.pop()
    per_xlogid = 0x1_0000_0000 // seg_size

    def name(lsn: int) -> str:
        segno = lsn // seg_size
        return f"{timeline:08X}{segno // per_xlogid:08X}{segno % per_xlogid:08X}"

    return {name(checkpoint), name(redo)}
