#!/usr/bin/env bash
# Builds dbgym's PostgreSQL image (default dbgym/postgres:15) offline, from Debian packages:
# debootstrap a minimal bookworm root with postgresql-15 and postgresql-15-hypopg, trim it,
# `docker import` it. The recipe is dbgym/dbms/image_build.py (shipped with the package, so an
# installed `dbgym docker build-image` works without this checkout); this is a shortcut for it.
# Usage: docker/build-image.sh [--tag NAME:TAG] [--force] [--mirror URL]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${DBGYM:-.venv/bin/dbgym}" docker build-image "$@"
