"""What the figures came from: the machine, the versions, and the sandbox's limits."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import aiohttp

from ivr_devkit.bench.cpu import open_files_limit
from ivr_devkit.sandbox import SandboxInfo


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else "?"


def _memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemTotal:\s*(\d+) kB", text, re.M)
    return round(int(found.group(1)) / 2**20, 1) if found else None


def _conf_value(info: SandboxInfo, name: str, key: str) -> str:
    try:
        text = (info.root / "etc" / "asterisk" / name).read_text()
    except OSError:
        return "?"
    found = re.search(rf"^\s*{key}\s*=\s*(\S+)", text, re.M)
    return found.group(1) if found else "?"


async def describe(
    info: SandboxInfo, asterisk_pid: int, http: aiohttp.ClientSession, ari: dict[str, str]
) -> Any:
    async with http.get(f"{info.ari_url}/asterisk/info", headers=ari) as resp:
        asterisk = (await resp.json()).get("system", {}).get("version", "?")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "asterisk": asterisk,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "sandbox": {
            "rtp_ports": f"{_conf_value(info, 'rtp.conf', 'rtpstart')}-"
            f"{_conf_value(info, 'rtp.conf', 'rtpend')}",
            "http_sessionlimit": _conf_value(info, "http.conf", "sessionlimit"),
            "asterisk_open_files": open_files_limit(asterisk_pid),
        },
    }
