"""The Redis gate's Lua scripts, one `.lua` file each, read from the installed package."""

from __future__ import annotations

from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def register(redis: Redis, name: str) -> AsyncScript:
    """`<name>.lua` as a redis-py Script: sent by hash, loaded into Redis on first use."""
    return redis.register_script(files(__package__).joinpath(f"{name}.lua").read_text())
