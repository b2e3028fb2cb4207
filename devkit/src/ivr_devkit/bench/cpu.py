"""CPU time of the processes under test, read from /proc (per process, children included).

A process's CPU is ``utime + stime`` of ``/proc/<pid>/stat`` plus ``cutime + cstime`` (the
children it has reaped) plus the live children's own: PostgreSQL's backends and workers come
and go, and their time counts for the cluster. Threads are inside their process's figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """CPU seconds so far of each named process tree."""

    seconds: Mapping[str, float]

    def minus(self, before: Sample) -> dict[str, float]:
        return {k: self.seconds[k] - before.seconds.get(k, 0.0) for k in self.seconds}


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: the fields after it follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, (utime + stime) / TICKS, (cutime + cstime) / TICKS


def tree_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children and its live children (one level)."""
    own = _stat(pid)
    if own is None:
        return 0.0
    total = own[1] + own[2]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == pid:
            continue
        child = _stat(int(entry.name))
        if child is not None and child[0] == pid:
            total += child[1]
    return total


def children_by_name(pid: int, kind: Callable[[str], str]) -> dict[str, float]:
    """CPU seconds of ``pid`` and its live children, summed by ``kind(command line)``;
    what its reaped children used is under ``"exited"``."""
    found: dict[str, float] = {}
    own = _stat(pid)
    if own is None:
        return found
    found["exited"] = own[2]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        child = _stat(int(entry.name))
        if child is None or (child[0] != pid and int(entry.name) != pid):
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        name = kind(argv.replace(b"\0", b" ").decode(errors="replace").strip())
        found[name] = found.get(name, 0.0) + child[1]
    return found


def sample(pids: Mapping[str, int | None]) -> Sample:
    return Sample({name: tree_seconds(pid) if pid else 0.0 for name, pid in pids.items()})


def open_files_limit(pid: int) -> str:
    """The soft limit of open files of ``pid`` ("Max open files" of /proc/<pid>/limits)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    except OSError:
        pass
    return "?"
