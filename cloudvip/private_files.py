"""Reading a secret from a file (an API token, advert keys) only when nobody else could have read
or replaced it: the owner is root or the agent's own user, and group and others have no access.
Checked on the opened file, so what was checked is what is read."""

from __future__ import annotations

import os
import stat


class PrivateFileError(Exception):
    pass


def read_private(path: str, encoding: str = "utf-8") -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise PrivateFileError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding=encoding) as fh:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()):
            raise PrivateFileError(f"{path} is owned by uid {st.st_uid}, who could replace it: chown root {path}")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PrivateFileError(f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
                                   f"chmod 600 {path}")
        try:
            return fh.read()
        except UnicodeDecodeError:
            raise PrivateFileError(f"{path}: not text") from None
        except OSError as exc:
            raise PrivateFileError(f"{path}: {exc.strerror}") from None
