"""Lua scripts registered once per process and Redis client.

`register_script` hashes the source (SHA1) and builds a `Script` each time; the callers
here run on every request, so each (client, source) pair keeps its `Script`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

_SCRIPTS: dict[tuple[int, str], Any] = {}


def redis_script(client: Any, source: str) -> Any:
    """The `Script` for `source` on `client`, registered on first use."""
    key = (id(client), source)
    script = _SCRIPTS.get(key)
    if script is None or script.registered_client is not client:
        script = _SCRIPTS[key] = client.register_script(source)
    return script


def script_queue(
    pipe: Any, script: Any, keys: Sequence[Any], args: Sequence[Any]
) -> Callable[[Any], Any]:
    """Queue `script` as one command of the caller's pipeline, and return the function
    that turns that command's reply (or the exception in its place) into the script's.

    An EVALSHA, not `script(..., client=pipe)`: a pipeline that runs a script first asks
    Redis whether it is loaded, a round trip more. A reply NOSCRIPT (Redis restarted or
    flushed its scripts) runs the script once more on its own, which loads it; any other
    error is raised."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)

    def reply_of(reply: Any) -> Any:
        if isinstance(reply, NoScriptError):
            return script(keys=keys, args=args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return reply_of
