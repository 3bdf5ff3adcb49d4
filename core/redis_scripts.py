"""Lua scripts registered once per process and Redis client.

`register_script` hashes the source (SHA1) and builds a `Script` each time; the callers
here run on every request, so each (client, source) pair keeps its `Script`.
"""

from __future__ import annotations

from typing import Any

_SCRIPTS: dict[tuple[int, str], Any] = {}


def redis_script(client: Any, source: str) -> Any:
    """The `Script` for `source` on `client`, registered on first use."""
    key = (id(client), source)
    script = _SCRIPTS.get(key)
    if script is None or script.registered_client is not client:
        script = _SCRIPTS[key] = client.register_script(source)
    return script
