"""`dbgym docker ...` commands: thin wrappers over dbgym.dbms.image_build."""

from __future__ import annotations

import typer

from dbgym.dbms.images import DEFAULT_IMAGE

docker_app = typer.Typer(help="The Docker backend's image.", no_args_is_help=True)


@docker_app.command("build-image")
def build_image_cmd(
    tag: str = typer.Option(DEFAULT_IMAGE, help="Image name:tag to create."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the image exists."),
    mirror: str = typer.Option(
        "", help="Debian mirror URL (default: apt's configured mirror, else deb.debian.org)."
    ),
) -> None:
    """Build the PostgreSQL 15 image offline from Debian packages (needs root and debootstrap)."""
    from dbgym.dbms.image_build import build_image

    result = build_image(tag, force=force, mirror=mirror or None)
    if result.built:
        how = "downloaded packages" if result.downloaded else "cached packages"
        typer.echo(f"built {result.tag} ({result.image_id[:19]}) in {result.seconds:.1f} s ({how})")
    else:
        typer.echo(f"{result.tag} exists ({result.image_id[:19]}); --force rebuilds it")


def register_docker(app: typer.Typer) -> None:
    """Attach `dbgym docker ...` to the top-level app (called from dbgym/dbms/cli.py)."""
    app.add_typer(docker_app, name="docker")
