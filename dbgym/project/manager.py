"""ProjectManager: a project folder, GymDash's layout.

```
<project>/                 argument > $DBGYM_PROJECT_DIR > ./.dbgym-projects
  db/simulations.db        the SQLite database (dbgym.project.schema)
  resources/               shared data: generated databases, trained models
  sims/<sim_id>/           per-simulation files (the training-data recording, logs)
```

Opening a project creates the folders, migrates the database (under a cross-process lock;
a database from a newer dbgym is refused and left untouched) and, unless
`reconcile=False`, marks simulations whose process is gone as force stopped
(dbgym.project.reconcile), cleaning the servers they left. Any number of processes may open
the same project at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from dbgym.errors import ProjectError
from dbgym.project.db import migrate
from dbgym.project.records import Records

#: The default project folder (relative to the working directory), as GymDash's.
DEFAULT_PROJECT_DIR = ".dbgym-projects"
#: The environment variable naming the project folder.
ENV_VAR = "DBGYM_PROJECT_DIR"
#: The database file under db/.
DB_FILE = "simulations.db"


def resolve_project_dir(project_dir: str | os.PathLike[str] | None = None) -> Path:
    """The project folder: `project_dir`, else $DBGYM_PROJECT_DIR, else ./.dbgym-projects
    (absolute)."""
    chosen = project_dir if project_dir is not None else os.environ.get(ENV_VAR) or None
    return Path(chosen if chosen is not None else DEFAULT_PROJECT_DIR).expanduser().absolute()


def open_if_named(project_dir: str | os.PathLike[str] | None = None) -> ProjectManager | None:
    """The project of `project_dir` or $DBGYM_PROJECT_DIR, or None when neither names one
    (for commands such as `dbgym bench` that use a project only when asked to)."""
    if project_dir is None and not os.environ.get(ENV_VAR):
        return None
    return ProjectManager(project_dir)


class ProjectManager:
    """A project folder and its database (see the module docstring)."""

    def __init__(
        self, project_dir: str | os.PathLike[str] | None = None, *, reconcile: bool = True
    ) -> None:
        self._folder = resolve_project_dir(project_dir)
        try:
            for sub in ("db", "resources", "sims"):
                (self._folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder {self._folder}: {exc}") from exc
        migrate(self.db_path())
        self._records = Records(self.db_path(), self.sims_folder())
        if reconcile:
            from dbgym.project.reconcile import reconcile_quietly

            report = reconcile_quietly(self)
            if report:  # an api_calls row only when opening found something to reconcile
                self._records.add_api_call(
                    "project.open.reconcile",
                    1 if report.errors else 0,
                    {"stopped": report.stopped, "cleaned": report.cleaned, "errors": report.errors},
                )

    def __repr__(self) -> str:
        return f"ProjectManager({str(self._folder)!r})"

    def project_folder(self) -> Path:
        return self._folder

    def sims_folder(self) -> Path:
        return self._folder / "sims"

    def db_folder(self) -> Path:
        return self._folder / "db"

    def resources_folder(self) -> Path:
        return self._folder / "resources"

    def db_path(self) -> Path:
        return self.db_folder() / DB_FILE

    def sim_folder(self, sim_id: str, *, create: bool = False) -> Path:
        """sims/<sim_id>/ (created when `create`)."""
        path = self.sims_folder() / sim_id
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def records(self) -> Records:
        """Typed access to the project's rows."""
        return self._records

    def close(self) -> None:
        """Close the database connections (the project can be reopened)."""
        self._records.close()

    def __enter__(self) -> ProjectManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
