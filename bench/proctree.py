"""CPU and memory of a process tree, read from /proc: the processes started and all their
descendants, found again at every reading since workers may restart.

- CPU is utime + stime of every process of the tree seen so far. A process that exits keeps
  the last value read, so a worker that restarts during a window still counts; what it spent
  between that reading and its exit is lost, hence readings every second or so within a window.
  A process is known by its PID and start time, so a reused PID is a new process.
- Memory is read from /proc/PID/smaps_rollup: the unique set size (USS, Private_Clean +
  Private_Dirty: what the process alone holds, freed when it exits) summed over the tree, which
  is what N processes really cost; the sums of RSS (pages shared by several processes counted
  in each) and of PSS (shared pages split between their users) are kept for comparison.
  A program's library pages count in the USS of its only process, and leave it once a second
  process maps them: the USS per camera of one camera overstates what each further camera costs.
  A worker forked from a fork server shares its pages until it writes them.
- The parts of a tree: the processes started (for the gateway, its supervisor), the descendants
  with children of their own (a fork server), and the other descendants, the workers.

A descendant whose parent exits is adopted by init and leaves the tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

_PROC = "/proc"


@dataclass(frozen=True, slots=True)
class Stat:
    """What the tree needs of /proc/PID/stat."""

    ppid: int
    ticks: int
    """utime + stime of all its threads, in clock ticks."""
    start: int
    """Start time after boot, in clock ticks: with the PID, names the process."""


def stat(pid: int) -> Stat | None:
    """The stat of a process, or None if it is gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces and parentheses itself.
    fields = data[data.rindex(b")") + 2 :].split()
    return Stat(int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))


def all_stats() -> dict[int, Stat]:
    """Every process of the box."""
    stats = {}
    for entry in os.scandir(_PROC):
        if entry.name.isdigit() and (s := stat(int(entry.name))) is not None:
            stats[int(entry.name)] = s
    return stats


@dataclass(frozen=True, slots=True)
class Memory:
    """Memory of one process, in bytes."""

    rss: int
    pss: int
    uss: int
    """Private_Clean + Private_Dirty."""


def memory(pid: int) -> Memory:
    """The memory of a process from its smaps_rollup; zeros if it is gone (or a zombie)."""
    values = {}
    try:
        with open(f"{_PROC}/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                    values[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return Memory(
        values.get("Rss", 0),
        values.get("Pss", 0),
        values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    )


@dataclass(frozen=True, slots=True)
class TreeMemory:
    """The memory of a tree at one reading, in bytes."""

    processes: int
    rss: int
    pss: int
    uss: int
    uss_started: int
    """USS of the processes started."""
    uss_parents: int
    """USS of the descendants that have children of their own (a fork server)."""
    workers: int
    """Descendants without children."""

    @property
    def uss_workers(self) -> int:
        return self.uss - self.uss_started - self.uss_parents


class ProcessTree:
    """The processes started (``roots``) and every descendant of theirs."""

    def __init__(self, roots: Iterable[int]) -> None:
        self._roots = {pid: s.start for pid in roots if (s := stat(pid)) is not None}
        self._ticks: dict[tuple[int, int], int] = {}
        """(PID, start time) -> utime + stime at its last reading."""

    def members(self, stats: dict[int, Stat] | None = None) -> dict[int, Stat]:
        """The processes of the tree now: the roots still running, then their descendants."""
        stats = all_stats() if stats is None else stats
        children: dict[int, list[int]] = {}
        for pid, s in stats.items():
            children.setdefault(s.ppid, []).append(pid)
        found = {p: stats[p] for p, start in self._roots.items() if p in stats}
        found = {p: s for p, s in found.items() if s.start == self._roots[p]}
        queue = list(found)
        while queue:
            for child in children.get(queue.pop(), ()):
                if child not in found:
                    found[child] = stats[child]
                    queue.append(child)
        return found

    def cpu_ticks(self) -> int:
        """utime + stime of every process of the tree seen so far, in clock ticks, the ones
        that exited with the value of their last reading. Differences between two readings
        are the CPU the tree spent in between."""
        for pid, s in self.members().items():
            self._ticks[pid, s.start] = s.ticks
        return sum(self._ticks.values())

    def memory(self) -> TreeMemory:
        """The memory of the tree now (reading the CPU too, since it finds the tree anyway)."""
        members = self.members()
        for pid, s in members.items():
            self._ticks[pid, s.start] = s.ticks
        parents = {s.ppid for s in members.values()}
        rss = pss = uss = uss_started = uss_parents = workers = 0
        for pid in members:
            m = memory(pid)
            rss, pss, uss = rss + m.rss, pss + m.pss, uss + m.uss
            if pid in self._roots:
                uss_started += m.uss
            elif pid in parents:
                uss_parents += m.uss
            else:
                workers += 1
        return TreeMemory(len(members), rss, pss, uss, uss_started, uss_parents, workers)
