"""Is the system clock synchronised? The kernel knows (adjtimex(2): an NTP daemon, chrony or
systemd-timesyncd keeps it updated); no daemon has to be asked."""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

TIME_ERROR = 5  # adjtimex's answer while the clock is not synchronised
_TIMEX_SIZE = 512  # struct timex is 208 bytes on 64-bit Linux; room to spare


@dataclass(frozen=True, slots=True)
class ClockState:
    synchronised: bool
    max_error_us: int  # the kernel's maximum error estimate


def kernel_clock() -> ClockState | None:
    """The kernel's view (None where adjtimex is not available)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    max_error = struct.unpack_from("q", buf.raw, 24)[0]  # after modes (int, padded), offset, freq
    return ClockState(state != TIME_ERROR, max_error)
