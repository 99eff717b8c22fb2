"""Logging for a daemon under systemd: one line per event on stderr, optionally JSON."""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 6), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def worth_logging(count: int) -> bool:
    """For repeated events (drops, send errors): log the 1st, 10th, 100th, 1000th, then every
    10,000th, so a flood cannot flood the journal."""
    return count in (1, 10, 100, 1000) or count % 10000 == 0


def setup(level: str = "info", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pyroute2", "botocore", "boto3", "urllib3", "hcloud", "azure", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
