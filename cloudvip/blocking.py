"""Blocking SDK calls (boto3, hcloud, urllib) off the event loop, each on a daemon thread.

asyncio.to_thread's pool is joined when the loop closes and again at interpreter exit, so one
call that never returns (a DNS lookup with no answer, an API that accepts and never replies)
would hold a SIGTERM up for as long as it hangs. A caller here gives up on a call through its
deadline (asyncio.timeout, cancellation); the thread then runs to its own end in the
background, or dies with the process.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the caller gave up (cancelled) before the call returned
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


async def run_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) on a daemon thread; cancelling the await abandons the call."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            result, exc = fn(*args, **kwargs), None
        except BaseException as e:  # handed to the caller, whatever it is
            result, exc = None, e
        try:
            loop.call_soon_threadsafe(_resolve, future, result, exc)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=work, name=f"blocking-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future
