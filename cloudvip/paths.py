"""Default locations (kept apart so that light commands need not import the config package)."""

from pathlib import Path

DEFAULT_PATH = Path("/etc/keepalived/keepalived.conf")
#: the companion's own file: the cloud blocks, and which keepalived.conf they complete
COMPANION_PATH = Path("/etc/cloudvip/companion.conf")
