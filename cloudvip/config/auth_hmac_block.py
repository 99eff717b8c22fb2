"""Reading keepalived 2.4's `auth_hmac { ... }` block (and cloudvip's older `auth_key_file`,
now a deprecated spelling of the same authentication).

    auth_hmac {
        key 1 hex:000102...1f          # 32..64 bytes: hex:, file:PATH (owner-only), or the text itself
        key 2 file:/etc/keepalived/keys/vrrp10
        active_key 2                   # the key adverts are signed with; every key is accepted
        anti_replay time               # time (default: a freshness window) | monotonic
        time_window 5                  # seconds, 1..300 (default: 3 advert intervals, at least 5)
        mode enforce                   # enforce (default) | permissive | receive-only
    }

keepalived logs a problem in this block and runs on, in places without authentication (an
active_key that is not defined disables it); cloudvip refuses the file instead, on the line:
`keepalived -t` rejects such a file too.
"""

from __future__ import annotations

from ..auth_hmac import KEY_MAX, KEY_MIN, WINDOW_MAX, WINDOW_MIN, AuthHmac, Mode
from ..private_files import PrivateFileError, read_private
from .diagnostics import Diagnostics
from .syntax import Node
from .values import Values

_MODES = {m.value: m for m in Mode}


def _key_bytes(raw: str) -> bytes | None:
    """keepalived's decoding: a hex: prefix carries raw bytes, anything else is the text itself."""
    if raw.startswith("hex:"):
        try:
            return bytes.fromhex(raw[4:])
        except ValueError:
            return None
    return raw.encode()


def parse_auth_hmac(node: Node, values: Values, diags: Diagnostics) -> AuthHmac | None:
    keys: dict[int, bytes] = {}
    active: int | None = None
    fields: dict[str, object] = {}
    errors_before = len(diags.errors)
    for child in values.block(node):
        k = child.keyword
        if k == "key":
            if len(child.args) < 2:
                diags.error(child.loc, "auth_hmac key needs an id and a value", "key ID hex:...|file:PATH|TEXT")
                continue
            key_id = values.integer(child, 1, 255)
            raw = child.args[1].text
            data = _key_bytes(raw) if not raw.startswith("file:") else _key_file(raw[5:], child, diags)
            if data is None or key_id is None:
                if data is None and not raw.startswith("file:"):
                    diags.error(child.loc, f"auth_hmac key {child.args[0].text}: {raw[:12]!r}... is not hex",
                                "hex: followed by hex digits")
                continue
            if not KEY_MIN <= len(data) <= KEY_MAX:
                diags.error(child.loc, f"auth_hmac key {key_id} is {len(data)} bytes long",
                            f"{KEY_MIN}..{KEY_MAX} bytes")
            elif key_id in keys:
                diags.error(child.loc, f"duplicate auth_hmac key id {key_id}", "one key per id")
            else:
                keys[key_id] = data
        elif k == "active_key":
            active = values.integer(child, 1, 255)
        elif k == "time_window":
            if (window := values.integer(child, WINDOW_MIN, WINDOW_MAX)) is not None:
                fields["time_window"] = window
        elif k == "anti_replay":
            choice = values.text(child, "time or monotonic")
            if choice not in ("time", "monotonic"):
                diags.error(child.loc, f"auth_hmac anti_replay {choice!r} is not valid", "time or monotonic")
            else:
                fields["anti_replay_time"] = choice == "time"
        elif k == "mode":
            choice = values.text(child, "enforce, permissive or receive-only")
            if choice not in _MODES:
                diags.error(child.loc, f"auth_hmac mode {choice!r} is not valid", "enforce, permissive or receive-only")
            else:
                fields["mode"] = _MODES[choice]
        else:
            diags.warning(child.loc, f"unknown keyword '{k}' in auth_hmac, ignored")
    if active is None or active not in keys:
        if len(diags.errors) == errors_before:
            diags.error(node.loc, f"auth_hmac active_key {active if active is not None else '(none)'} is not "
                                  "defined: keepalived would run this instance without authentication",
                        "active_key ID naming one of the keys")
        return None
    if len(diags.errors) > errors_before:
        return None
    return AuthHmac(tuple(sorted(keys.items())), active, **fields)  # type: ignore[arg-type]


def _key_file(path: str, node: Node, diags: Diagnostics) -> bytes | None:
    try:
        text = read_private(path)
    except PrivateFileError as exc:
        diags.error(node.loc, f"auth_hmac key file {exc}", "an owner-only file (0600/0400) holding the key")
        return None
    return _key_bytes(text.rstrip("\r\n"))


def parse_key_file(node: Node, values: Values, diags: Diagnostics) -> AuthHmac | None:
    """`auth_key_file PATH` (one `ID HEX` per line, the first signs): auth_hmac with these keys."""
    path = values.text(node, "an absolute path to a key file")
    if path is None:
        return None
    diags.warning(node.loc, "auth_key_file is deprecated: it is keepalived 2.4's auth_hmac now (write "
                            "auth_hmac { key ID file:PATH ... active_key ID })")
    try:
        text = read_private(path, encoding="ascii")
    except PrivateFileError as exc:
        diags.error(node.loc, f"auth_key_file {exc}", "an owner-only file of `ID HEX` lines")
        return None
    keys: list[tuple[int, bytes]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        try:
            key_id, key = int(line[0]), bytes.fromhex(line[1]) if len(line) == 2 else b""
        except ValueError:
            key_id, key = 0, b""
        if not 1 <= key_id <= 255 or not KEY_MIN <= len(key) <= KEY_MAX or key_id in dict(keys):
            diags.error(node.loc, f"auth_key_file {path}:{n}: not a new `ID HEX` line",
                        f"an id 1..255 and {KEY_MIN}..{KEY_MAX} bytes of key in hex")
            return None
        keys.append((key_id, key))
    if not keys:
        diags.error(node.loc, f"auth_key_file {path}: no key", "`ID HEX` lines")
        return None
    return AuthHmac(tuple(sorted(keys)), keys[0][0])
