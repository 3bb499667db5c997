"""Provenance: the facts recorded with every simulation and comparison, from real sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dbgym
from dbgym import provenance
from dbgym.dbms.spec import InstanceSpec
from dbgym.session import DbSession


def test_host_facts_name_the_machine_and_the_software() -> None:
    facts = provenance.host_facts()
    json.dumps(facts)  # JSON-able
    assert facts["dbgym_version"] == dbgym.__version__
    assert facts["python"].count(".") == 2
    assert facts["dependencies"]["numpy"]
    assert facts["cpu_count"] == os.cpu_count()
    assert facts["memory_bytes"] is not None and facts["memory_bytes"] > 2**28
    assert facts["kernel"] == os.uname().release
    assert facts["cpu_model"]
    # a fresh copy: callers may add to it
    facts["dependencies"]["x"] = "1"
    assert "x" not in provenance.host_facts()["dependencies"]


def test_git_commit_of_a_checkout() -> None:
    commit = provenance.git_commit()
    root = Path(dbgym.__file__).resolve().parent.parent
    if (root / ".git").exists():
        assert commit is not None and len(commit.split("-")[0]) == 40
    else:
        assert commit is None


def test_file_digest_hashes_names_and_bytes(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * 2**20 + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert provenance.file_digest(path) == hashlib.sha256(b"f.bin" + data).hexdigest()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.sql").write_text("SELECT 1;")
    before = provenance.file_digest(tmp_path / "d")
    (tmp_path / "d" / "a.sql").write_text("SELECT 2;")
    assert provenance.file_digest(tmp_path / "d") != before


def test_server_facts_of_a_local_server() -> None:
    with DbSession.launch(InstanceSpec(backend="local", knobs={"work_mem": "16MB"})) as s:
        assert s.instance is not None
        facts = provenance.server_facts(s.connection(), s.instance)
    json.dumps(facts)
    assert facts["version"].startswith("PostgreSQL ")
    assert facts["server_version_num"] >= 140000
    assert facts["settings"]["work_mem"] == "16384kB"
    assert len(facts["settings"]) > 300
    assert facts["backend"] == "local"
    assert len(facts["server_binary_sha256"]) == 64
