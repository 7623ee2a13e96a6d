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
    position in the file), merged on the way out."""

    def __init__(self) -> None:
        self._lists: dict[str, list[tuple[Key, str]]] = {}
        self._where: dict[str, tuple[str, Key]] = {}

    def __contains__(self, t: object) -> bool:
        return t in self._where

    def __len__(self) -> int:
        return len(self._where)

    def add(self, items: Sequence[tuple[str, str, Key]]) -> None:
        """(task, pool, key) each; a big batch (a run's first dispatch) sorts once."""
        for t, pool, key in items:
            self._where[t] = (pool, key)
            lst = self._lists.setdefault(pool, [])
            if len(items) > SORT_AT_ONCE:
                lst.append((key, t))
            else:
                bisect.insort(lst, (key, t))
        if len(items) > SORT_AT_ONCE:
            for lst in self._lists.values():
                lst.sort()

    def discard(self, t: str) -> None:
        where = self._where.pop(t, None)
        if where is not None:
            lst = self._lists[where[0]]
            del lst[bisect.bisect_left(lst, (where[1], t))]

    def key(self, t: str) -> Key:
        return self._where[t][1]

    def items(self) -> list[tuple[str, str]]:
        """(task, pool) of every task queued."""
        return [(t, pool) for t, (pool, _) in self._where.items()]

    def clear(self) -> None:
        self._lists.clear()
        self._where.clear()

    def merged(self, shut: set[str] | None = None) -> Iterator[str]:
        """Every queued task in key order. A pool the caller adds to ``shut`` while it
        walks yields nothing more (it cannot take another task in this dispatch)."""
        shut = set() if shut is None else shut
        heads = [(lst[0][0], pool, 0) for pool, lst in self._lists.items() if lst]
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
        return sum(bisect.bisect_left(lst, (key,)) for lst in self._lists.values())
