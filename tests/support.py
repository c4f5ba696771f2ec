"""Helpers for async unit tests: a runner (the project has no pytest async plugin) and a wait."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh loop, failing it after two minutes rather than hanging."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 120))

    return wrapper


async def until(
    condition: Callable[[], object], timeout: float = 5.0, what: str = "condition", every: float = 0.001
) -> None:
    """Poll `condition` (a plain or an async callable) until it holds; fail after `timeout` seconds.

    The only sleep the async tests have: an interval between looks, never a wait for "long enough"."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        await asyncio.sleep(every)
