"""Git bundles: how an attempt's commits travel to a machine that shares no filesystem
with the runner, and back (the Ray executor: ``conductor/remote/`` and ``run/remote_*``).

Out: the runner bundles the commit an attempt starts from (its ``pre`` ref) minus every
commit the worker says it already has (``--not``), so a warm worker receives only what
was merged since its last task. A worker that has the commit already receives nothing.

The worker's cache (:class:`Cache`) is one repository per worker directory, shared by the
attempts that run there at once and by every repository it ever worked for (unrelated
histories live side by side in one object store). What it holds is named by
``refs/conductor/have/<sha>`` refs, newest first, at most ``KEEP_HAVES`` of them, so the
list it sends back stays short.

Back: the worker bundles the attempt branch minus the commit it started from; the runner
fetches it into the attempt branch of its own repository, where it is checked and merged
like any local attempt's commit.
"""

from __future__ import annotations

import fcntl
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from conductor.errors import GitError, InfraError
from conductor.git import cmd as gitcmd
from conductor.git import refs
from conductor.git.prepare import _copy_sources
from conductor.git.workspace import Workspace

HAVE_PREFIX = "refs/conductor/have/"
KEEP_HAVES = 64  # cache refs a worker keeps (and reports): its most recent tips
SENT_HAVES = 32  # of those, how many it offers as the basis of an incremental bundle
PRUNE_EVERY = 8
# no background gc or maintenance started by a fetch: the worker's process is short-lived
_QUIET = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "fetch.writeCommitGraph=false")


_RACE_PAUSES = (0.01, 0.05, 0.1, 0.2)


def _git(git_dir: Path, args: Sequence[str], cwd: Path) -> gitcmd.GitResult:
    argv = [*gitcmd.NO_HOOKS, "--git-dir", str(git_dir), *args]
    result = gitcmd.run(argv, cwd, c_locale=True)
    for pause in _RACE_PAUSES:
        if result.ok or "worktrees/" not in result.stderr:
            break
        # another attempt's worktree being added or removed meanwhile: read half-written
        time.sleep(pause)
        result = gitcmd.run(argv, cwd, c_locale=True)
    return result


def create(git_dir: Path, path: Path, tip_ref: str, exclude: Sequence[str]) -> bool:
    """Write ``path``: the bundle of ``tip_ref`` without what ``exclude`` (shas) reaches.
    False, and nothing written, when ``exclude`` already reaches all of it."""
    args = ["bundle", "create", "-q", str(path), tip_ref, *(f"^{sha}" for sha in exclude)]
    res = _git(git_dir, args, git_dir)
    if res.ok:
        return True
    if "empty bundle" in res.stderr:
        return False
    raise res.error()


def fetch(git_dir: Path, path: Path, src_ref: str, dst_ref: str) -> str:
    """Store the objects of the bundle at ``path`` and point ``dst_ref`` at its ``src_ref``
    (moved whatever it held before); return that sha. ``unbundle`` + ``update-ref``, not
    ``fetch``: a fetch walks every ref and worktree HEAD of the repository, which other
    attempts add and remove meanwhile."""
    res = _git(git_dir, [*_QUIET, "bundle", "unbundle", str(path), src_ref], git_dir)
    if not res.ok:
        raise res.error()
    sha = next((line.split()[0] for line in res.stdout.splitlines()
                if line.split()[-1:] == [src_ref]), "")  # fmt: skip
    if not sha:
        raise GitError(["bundle", "unbundle", str(path)], 1, f"the bundle has no {src_ref}")
    done = _git(git_dir, ["update-ref", dst_ref, sha], git_dir)
    if not done.ok:
        raise done.error()
    return sha


def known(git_dir: Path, shas: Sequence[str]) -> list[str]:
    """The commits of ``shas`` this repository has (a worker's list may name others')."""
    if not shas:
        return []
    lines = "".join(f"{sha}^{{commit}}\n" for sha in shas)
    res = gitcmd.run(
        [*gitcmd.NO_HOOKS, "--git-dir", str(git_dir), "cat-file", "--batch-check"],
        git_dir, input=lines, c_locale=True,
    )  # fmt: skip
    out = res.stdout.splitlines()
    return [sha for sha, line in zip(shas, out, strict=False) if not line.endswith(" missing")]


class Cache(Workspace):
    """A worker's repository: attempts' worktrees are added to it as to a runner's.

    Its main worktree stays empty (nothing is ever checked out there); ``.conductor/``
    inside it holds the worktrees and logs of the attempts that run on this worker."""

    @classmethod
    def open(cls, directory: Path) -> Cache:
        """The cache in ``directory`` (created on first use; safe for concurrent callers)."""
        root = Path(directory).absolute() / "repo"
        with _locked(Path(directory)):
            if not (root / ".git").is_dir():
                root.mkdir(parents=True, exist_ok=True)
                cls.init(root, "conductor-cache")
            cache = cls(root, common_dir=root / ".git")
            cache.ensure_state_dir()
        return cache

    def haves(self, limit: int = SENT_HAVES) -> list[str]:
        """The newest commits this cache holds whole histories of."""
        fmt = "--format=%(objectname)"
        out = self._git(["for-each-ref", "--sort=-committerdate", f"--count={limit}", fmt,
                         HAVE_PREFIX], c_locale=True)  # fmt: skip
        return [line for line in out.splitlines() if line]

    def take(self, bundle: Path | None, src_ref: str, sha: str) -> None:
        """Make ``sha`` available: fetched from ``bundle`` (None when the runner found that
        this cache has it already), then remembered as a have."""
        if bundle is not None:
            fetch(self.common_dir, bundle, src_ref, HAVE_PREFIX + sha)  # a have already
        elif self.rev(sha) is None:
            raise GitError(["bundle"], 1, f"commit {sha} is neither sent nor cached")
        else:
            self.remember(sha)

    def remember(self, sha: str) -> None:
        """Record ``sha`` as a have; now and then, forget the oldest beyond ``KEEP_HAVES``
        (one in ``PRUNE_EVERY`` calls: a task's path is a few git calls shorter)."""
        self._git(["update-ref", HAVE_PREFIX + sha, sha])
        if random.randrange(PRUNE_EVERY):
            return
        stale = self.haves(limit=KEEP_HAVES + 16)[KEEP_HAVES:]
        if stale:
            self._git(["update-ref", "--stdin"],
                      input="".join(f"delete {HAVE_PREFIX}{s}\n" for s in stale))  # fmt: skip

    def ship(self, path: Path, branch: str, start: str) -> None:
        """Bundle the attempt ``branch`` without what ``start`` reaches (the runner has it)."""
        if not create(self.common_dir, path, refs.branch_ref(branch), [start]):
            # the agent reset its branch into what the runner has: still say where it is
            create(self.common_dir, path, refs.branch_ref(branch), [])


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


MAX_SHIPPED_BYTES = 16 * 1024 * 1024  # workspace copies sent to a worker, all together


def shipped_copies(root: Path, copy: Sequence[str]) -> dict[str, bytes]:
    """The untracked files ``workspace.copy`` (and ``.worktreeinclude``) would copy into a
    local worktree, read so they can be sent to a worker: regular files only (directories
    walked, symlinks skipped: their targets are this machine's), up to
    ``MAX_SHIPPED_BYTES`` in all (an ``InfraError`` beyond that)."""
    found: dict[str, bytes] = {}
    total = 0
    for rel in _copy_sources(root, copy):
        src = root / rel
        files = [src] if not src.is_dir() else sorted(p for p in src.rglob("*") if p.is_file())
        for path in files:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_SHIPPED_BYTES:
                raise InfraError(f"workspace.copy sends over {MAX_SHIPPED_BYTES >> 20} MiB to "
                                 "a remote worker: copy less, or make it in `setup`")  # fmt: skip
            found[path.relative_to(root).as_posix()] = data
    return found
