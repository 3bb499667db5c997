"""`dbgym doctor`: which backends are usable on this machine, and why not."""

from __future__ import annotations

from dbgym.dbms.backend import BACKENDS, DoctorReport, backend_class
from dbgym.dbms.images import DEFAULT_IMAGE
from dbgym.errors import BackendUnavailableError


def docker_engine_report(image: str = DEFAULT_IMAGE) -> DoctorReport:
    """Docker engine reachable and image present (used until a docker backend answers)."""
    report = DoctorReport(backend="docker", usable=False)
    try:
        import docker.errors

        import docker
    except ImportError as exc:
        report.problems.append(f"the docker Python SDK is not installed ({exc})")
        return report
    try:
        client = docker.from_env(timeout=5)
        version = client.version()
    except docker.errors.DockerException as exc:
        report.problems.append(f"docker engine not reachable: {exc}")
        return report
    report.details.append(f"docker engine {version.get('Version', '?')} reachable")
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        report.problems.append(
            f"image {image} not present; build it offline with `dbgym docker build-image`"
        )
        return report
    except docker.errors.DockerException as exc:
        report.problems.append(f"cannot inspect image {image}: {exc}")
        return report
    report.details.append(f"image {image} present")
    report.problems.append("the docker backend is not part of this build yet")
    return report


def doctor() -> list[DoctorReport]:
    """One report per known backend."""
    reports = []
    for name in BACKENDS:
        try:
            cls = backend_class(name)
        except BackendUnavailableError as exc:
            if name == "docker":
                reports.append(docker_engine_report())
            else:
                reports.append(DoctorReport(backend=name, usable=False, problems=[str(exc)]))
            continue
        reports.append(cls.doctor())
    return reports
