"""What advert authentication remembers across restarts: the last counter this node sent and the
last one accepted from each peer, in a root-only file per config and instance.

Without it a restarted receiver would take an advert captured within the freshness window as
new, and a restarted sender whose clock was stepped back would have its adverts dropped as
replays. Saved at most once a second (and at shutdown): what a crash can lose is the last
second, whose adverts replayed say what the real master says anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from ipaddress import ip_address
from pathlib import Path

from .auth_hmac import IPAddress

log = logging.getLogger("cloudvip")
STATE_DIR = Path("/var/lib/cloudvip")
SAVE_EVERY = 1.0  # seconds


def state_path(config: Path | str, instance: str, state_dir: Path = STATE_DIR) -> Path:
    key = f"{os.path.realpath(config)}\0{instance}"
    return state_dir / f"auth-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def load(path: Path) -> tuple[int, dict[IPAddress, int]]:
    """(last sent, last accepted per peer); nothing remembered if the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
        return int(data["sent"]), {ip_address(k): int(v) for k, v in data["heard"].items()}
    except FileNotFoundError:
        return 0, {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: advert authentication state unreadable (%s): starting without it", path, exc)
        return 0, {}


def save(path: Path, sent: int, heard: dict[IPAddress, int]) -> None:
    """Atomically (a new file renamed over the old), owner-only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"sent": sent, "heard": {str(k): v for k, v in heard.items()}}, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
