"""`dbgym doctor`: which backends are usable on this machine, and why not."""

from __future__ import annotations

from dbgym.dbms.backend import BACKENDS, DoctorReport, backend_class
from dbgym.errors import BackendUnavailableError


def backend_report(name: str) -> DoctorReport:
    """Whether backend `name` is usable here (its own `doctor()`), and why not."""
    try:
        cls = backend_class(name)
    except BackendUnavailableError as exc:  # its module cannot be imported here
        return DoctorReport(backend=name, usable=False, problems=[str(exc)])
    return cls.doctor()


def doctor() -> list[DoctorReport]:
    """One report per known backend."""
    return [backend_report(name) for name in BACKENDS]
