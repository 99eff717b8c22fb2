"""Default locations (kept apart so that light commands need not import the config package)."""

from pathlib import Path

DEFAULT_PATH = Path("/etc/keepalived/keepalived.conf")
