"""The benchmarks' own databases: a PostgreSQL database made anew (or copied from a
migrated template) and a Redis prefix emptied, so that each run starts from nothing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import redis


def recreate_database(database_url: str) -> None:
    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # our own bench DB
        conn.execute(f'CREATE DATABASE "{name}"')


def _migrations_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def database_from_template(database_url: str, env: dict[str, str]) -> None:
    """Recreate the bench database as a copy of a migrated template (`<name>_tpl`).

    The template is made once per set of migrations (`manage.py bootstrap` on it, its
    digest kept as the database's comment): copying it takes a second, where migrating a
    fresh database took most of a quick run's start on loaded cores.
    """

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    template = f"{name}_tpl"
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # not made yet
    admin = parsed._replace(path="/postgres").geturl()
    digest = _migrations_digest()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [template],
        ).fetchone()
        if found is None or found[0] != digest:
            recreate_database(parsed._replace(path=f"/{template}").geturl())
            made = subprocess.run(
                [sys.executable, "manage.py", "bootstrap"],
                cwd=Path(__file__).resolve().parent.parent,
                env={**env, "DATABASE_URL": parsed._replace(path=f"/{template}").geturl()},
                check=False,
                capture_output=True,
                timeout=600,
            )
            if made.returncode != 0:
                raise RuntimeError(f"bootstrap of {template} failed:\n{made.stderr[-3000:]!r}")
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS '{digest}'")  # hex digest
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # our own bench DB
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
