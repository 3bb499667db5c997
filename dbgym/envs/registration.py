"""The environment ids, registered with gymnasium when `dbgym` is imported.

String entry points ("dbgym.envs.env:DbGymEnv"), so registering imports neither the
environment module nor PostgreSQL-facing code; `nondeterministic=True` because rewards are
measured on a real server (estimate mode is deterministic, execute mode is not).
"""

from __future__ import annotations

import gymnasium

#: id -> entry point
ENV_IDS: dict[str, str] = {
    "dbgym/DbGym-v0": "dbgym.envs.env:DbGymEnv",
    "dbgym/KnobTuning-v0": "dbgym.envs.env:KnobTuningEnv",
    "dbgym/IndexSelection-v0": "dbgym.envs.env:IndexSelectionEnv",
    "dbgym/QueryHints-v0": "dbgym.envs.env:QueryHintsEnv",
}


def register_envs() -> None:
    """Register every id (idempotent: ids already registered are left alone)."""
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, nondeterministic=True)
