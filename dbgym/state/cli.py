"""`dbgym workload state build|list|clear`: the cache of built database states."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

state_app = typer.Typer(
    name="state", help="Cached database states (built benchmarks and dumps).", no_args_is_help=True
)

CacheDir = Annotated[
    Path | None,
    typer.Option(help="Cache root (default: $DBGYM_CACHE_DIR/states or ~/.cache/dbgym/states)"),
]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def register_state(group: typer.Typer) -> None:
    """Attach `state` under the `workload` group."""
    group.add_typer(state_app)


@state_app.command("build")
def build_cmd(
    benchmark: Annotated[
        str, typer.Argument(help="A built-in benchmark (an unknown name lists them)")
    ] = "tpch",
    scale: Annotated[
        float | None, typer.Option(help="Scale factor (default: the benchmark's)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Data seed, for benchmarks that have one (TPC-H)")
    ] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Builds a benchmark database once and stores it in the cache (no-op when cached)."""
    from dbgym.state.database_state import DatabaseState

    given = {"scale": scale, "seed": seed}
    params = {k: v for k, v in given.items() if v is not None}
    state = DatabaseState.benchmark(benchmark, cache_dir=cache_dir, **params)
    t0 = time.perf_counter()
    with state.launch() as inst:
        version = inst.server_version_num
    entry = state.cached(version)
    where = entry.path if entry is not None else "?"
    typer.echo(f"{state} ready in {time.perf_counter() - t0:.1f} s: {where}")


@state_app.command("list")
def list_cmd(cache_dir: CacheDir = None) -> None:
    """Lists cached states: key, parameters, server version, size."""
    from dbgym.state.cache import StateCache

    cache = StateCache(cache_dir)
    entries = cache.entries()
    if not entries:
        typer.echo(f"no cached states in {cache.root}")
    for e in entries:
        mb = _size(e.path) / 2**20
        typer.echo(f"{e.path.name}  {e.meta.get('params')}  {mb:.0f} MB")


@state_app.command("clear")
def clear_cmd(
    keys: Annotated[list[str] | None, typer.Argument(help="Keys to remove (see `list`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every cached state")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Removes cached states (and temp dirs of writers that died)."""
    from dbgym.errors import InvalidArgumentError
    from dbgym.state.cache import StateCache

    cache = StateCache(cache_dir)
    targets = [e.path.name for e in cache.entries()] if all_ else list(keys or [])
    if not targets and not all_:
        raise InvalidArgumentError("nothing to remove: name keys (see `list`) or pass --all")
    missing = [k for k in targets if not cache.remove(k)]
    cache.clean_stale()
    for k in targets:
        if k not in missing:
            typer.echo(f"removed {k}")
    if not targets:
        typer.echo(f"no cached states in {cache.root}")
    if missing:
        raise InvalidArgumentError(f"no such cached state: {', '.join(missing)}")
