"""Delay and jitter for a lab namespace's outgoing packets, as tc netem would add them: this kind
of machine's kernel has no netem, but it has NFQUEUE. nftables queues the packets to this
process (run inside the namespace), which gives each its verdict after `delay` +- `jitter`
milliseconds (uniform, so packets may be reordered, as with netem's jitter).

    python -m cloudvip_lab.delayer --queue 7 --delay 50 --jitter 20
"""

from __future__ import annotations

import argparse
import heapq
import random
import signal
import sys
import threading
import time
from typing import Any


def run(queue: int, delay_ms: float, jitter_ms: float, seed: int | None) -> None:
    import fnfqueue  # lab/test dependency only

    rng = random.Random(seed)
    conn = fnfqueue.Connection()
    q = conn.bind(queue)
    q.set_mode(0xFFFF, fnfqueue.COPY_META)  # the verdict needs the id only, not the payload
    held: list[tuple[float, int, Any]] = []
    cond = threading.Condition()

    def release() -> None:
        """Accept each held packet when its time comes (a thread: the reader blocks in recv)."""
        while True:
            with cond:
                while not held or held[0][0] > time.monotonic():
                    cond.wait(None if not held else max(0.0, held[0][0] - time.monotonic()))
                _, _, packet = heapq.heappop(held)
            packet.accept()

    threading.Thread(target=release, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("delayer: ready", flush=True)
    for n, packet in enumerate(conn):
        wait = max(0.0, delay_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000
        with cond:
            heapq.heappush(held, (time.monotonic() + wait, n, packet))
            cond.notify()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue", type=int, required=True)
    p.add_argument("--delay", type=float, required=True, help="milliseconds")
    p.add_argument("--jitter", type=float, default=0.0, help="+- milliseconds, uniform")
    p.add_argument("--seed", type=int)
    a = p.parse_args(argv)
    run(a.queue, a.delay, a.jitter, a.seed)


if __name__ == "__main__":
    main()
