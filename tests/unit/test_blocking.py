"""Blocking SDK calls run on daemon threads: one that never returns must not hold up the exit."""

from __future__ import annotations

import subprocess
import sys

HUNG = """
import asyncio, threading
from cloudvip.blocking import run_blocking

async def main():
    try:
        await asyncio.wait_for(run_blocking(threading.Event().wait), 0.1)
    except TimeoutError:
        print("gave up")
    print(await run_blocking(sum, [1, 2]))
    try:
        await run_blocking(int, "x")
    except ValueError:
        print("raised")

asyncio.run(main())
"""


def test_a_call_that_never_returns_does_not_keep_the_process_alive() -> None:
    # with asyncio.to_thread the loop's close (and then the interpreter's exit) joins the
    # worker thread: this process would never end
    done = subprocess.run([sys.executable, "-c", HUNG], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gave", "up", "3", "raised"]
