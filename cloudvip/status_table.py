"""`cloudvip status` as a table for people (the JSON has everything)."""

from __future__ import annotations

import time
from typing import Any


def render(reply: dict[str, Any]) -> str:
    if not reply.get("ok"):
        return f"error: {reply.get('error')}"
    lines = []
    for inst in reply["instances"]:
        prio = inst["priority"]
        tracked = ", ".join(f"{k} {v}" for k, v in prio["tracked"].items()) or "nothing tracked"
        master = inst["master"]
        who = f"{master['address']} ({master['priority']})" if master["address"] else "unknown"
        prov = inst["provider"]
        check = (f"checked {prov['last_reconcile_ago']:g} s ago" if prov["last_reconcile_ago"] is not None
                 else "not checked yet")
        override = f"  OVERRIDE: {inst['override']}" if inst["override"] else ""
        lines.append(f"{inst['name']}: {inst['state']}  priority {prio['effective']} (base {prio['base']}; "
                     f"{tracked})  master {who}{override}")
        lines.append(f"  cloud ({prov['name']}): holder {prov['holder']}, {check}, split brains "
                     f"{prov['split_brain']}, re-asserts {prov['reasserts']}, last error {prov['last_error'] or '-'}")
        c = inst["counters"]
        lines.append(f"  adverts sent {c.get('adverts_sent', 0)}, received {c.get('adverts_received', 0)}, "
                     f"transitions {c.get('transitions', 0)}")
        for t in inst["transitions"][-5:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(t["at"]))
            lines.append(f"    {stamp} {t['from']} -> {t['to']} ({t['reason']})")
    for waiting in reply.get("waiting", []):
        lines.append(f"{waiting['name']}: FAULT  out of the election, its provider has not started "
                     f"(attempt {waiting['attempts']}): {waiting['reason']}")
    proc = reply.get("process")
    if proc:
        lines.append(f"process {proc['pid']}: {proc['tasks']} tasks, {proc['fds']} fds, {proc['threads']} threads, "
                     f"RSS {proc['rss_kib']} KiB")
    return "\n".join(lines)
