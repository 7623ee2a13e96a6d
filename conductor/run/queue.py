"""The ready queue: tasks that may start, per pool, each pool's in the policy's order.

Walking the pools merged gives the order of the whole queue, and a pool that cannot take
another task is left out of the walk at once instead of being stepped over task by task.
Keys are unique (they end in the task's position in the file), so no two tasks tie.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator, Sequence
from typing import Any

Key = tuple[Any, ...]
SORT_AT_ONCE = 64  # a batch bigger than this (a run's first dispatch) is sorted in one go


class ReadyQueue:
    """Tasks by pool, each pool's sorted by key (keys are unique: they end in the task's
    position in the file), merged on the way out.

    The best task of a pool is the one most often taken, so taking it costs no shift of
    the list: it only moves the pool's start (``_lo``) past it; the dead front is cut off
    once it is half the list. Everything reads a pool's list from its start on."""

    def __init__(self) -> None:
        self._lists: dict[str, list[tuple[Key, str]]] = {}
        self._lo: dict[str, int] = {}
        self._where: dict[str, tuple[str, Key]] = {}

    def __contains__(self, t: object) -> bool:
        return t in self._where

    def __len__(self) -> int:
        return len(self._where)

    def add(self, items: Sequence[tuple[str, str, Key]]) -> None:
        """(task, pool, key) each; a big batch (a run's first dispatch) sorts once."""
        bulk = len(items) > SORT_AT_ONCE
        if bulk:
            for pool in self._lists:
                self._compact(pool, always=True)
        for t, pool, key in items:
            self._where[t] = (pool, key)
            lst = self._lists.setdefault(pool, [])
            lo = self._lo.setdefault(pool, 0)
            if bulk:
                lst.append((key, t))
            else:  # one better than the dead front goes in at the start: lst[lo:] is sorted
                bisect.insort(lst, (key, t), lo)
        if bulk:
            for lst in self._lists.values():
                lst.sort()

    def discard(self, t: str) -> None:
        where = self._where.pop(t, None)
        if where is None:
            return
        pool, lst = where[0], self._lists[where[0]]
        i = bisect.bisect_left(lst, (where[1], t), self._lo[pool])
        if i == self._lo[pool]:
            self._lo[pool] = i + 1
            self._compact(pool)
        else:
            del lst[i]

    def _compact(self, pool: str, always: bool = False) -> None:
        lst, lo = self._lists[pool], self._lo[pool]
        if lo and (always or 2 * lo >= len(lst)):
            del lst[:lo]
            self._lo[pool] = 0

    def key(self, t: str) -> Key:
        return self._where[t][1]

    def items(self) -> list[tuple[str, str]]:
        """(task, pool) of every task queued."""
        return [(t, pool) for t, (pool, _) in self._where.items()]

    def clear(self) -> None:
        self._lists.clear()
        self._lo.clear()
        self._where.clear()

    def merged(self, shut: set[str] | None = None) -> Iterator[str]:
        """Every queued task in key order. A pool the caller adds to ``shut`` while it
        walks yields nothing more (it cannot take another task in this dispatch)."""
        shut = set() if shut is None else shut
        heads = [(lst[self._lo[pool]][0], pool, self._lo[pool])
                 for pool, lst in self._lists.items() if len(lst) > self._lo[pool]]  # fmt: skip
        heapq.heapify(heads)
        while heads:
            _, pool, i = heapq.heappop(heads)
            if pool in shut:
                continue
            lst = self._lists[pool]
            yield lst[i][1]
            if i + 1 < len(lst) and pool not in shut:
                heapq.heappush(heads, (lst[i + 1][0], pool, i + 1))

    def rank(self, key: Key) -> int:
        """How many queued tasks come before one with ``key``."""
        return sum(bisect.bisect_left(lst, (key,), self._lo[pool]) - self._lo[pool]
                   for pool, lst in self._lists.items())  # fmt: skip
