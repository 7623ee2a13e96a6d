"""The worktree pool: finished attempts' worktrees, reset for the next attempt instead of
removed and added again (issue 16).

A fresh `git worktree add` checks out every file and the first `add -A` in it re-reads
them all (they were written in the same second); on a 7,000-file repository that is most
of a no-op task. A pooled worktree is reset with `checkout -f -B` and `clean -ffdx`,
which touch only what the previous attempt changed.

Where things are: a slot at rest is ``.conductor/worktrees/.pool/<id>`` with a detached
HEAD (so no branch is checked out there: `branch -D`, `clean` and resume may use any
attempt branch). Taking one claims it with an atomic rename (several runners may share a
repository), resets it in the pool, and renames it to the attempt's own path, so an
attempt's worktree is where DESIGN §4 says whether it was pooled or fresh. Moving a
worktree is two renames and one file git keeps (``<admin>/gitdir``). A slot is
``locked`` (as `git worktree list` shows) while it waits in the pool and while it moves,
so that no `git worktree prune` drops it half way; files git keeps are rewritten in
place (``smallfiles.rewrite``), not replaced, since every new inode costs.

A reused worktree must look fresh to the agent: the admin dir loses everything a
previous attempt may have left (locks, per-worktree config, sparse patterns, rebase and
merge state, per-worktree refs, the reflog), an index whose entries carry flags
(assume-unchanged, skip-worktree, intent-to-add) is dropped and rebuilt, and the tree is
cleaned of untracked and ignored files — except the directories ``workspace.reuse.keep``
names, while the ``key`` files' contents match what they were when `setup` made them.
Whatever cannot be reset (a file `clean` cannot delete, a broken admin dir) makes the
slot discarded and the attempt gets a fresh worktree: never a wrong one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from conductor.errors import ConductorError
from conductor.git import refs
from conductor.git.guard import ADMIN_DIR, Guarding
from conductor.git.guard import read_stripped as _read
from conductor.git.smallfiles import rewrite

POOL_DIR = ".pool"  # under .conductor/worktrees/, beside the run dirs (run ids never start with .)
CLAIM = ".taking-"  # a slot being taken: .taking-<pid>-<id>
REUSE_FILE = "conductor-reuse"  # <admin>/conductor-reuse: the key its kept dirs were made for
# What a fresh `git worktree add` leaves in the admin dir (plus the kept-dirs key).
_ADMIN_KEEP = frozenset({"commondir", "gitdir", "HEAD", "index", "ORIG_HEAD", REUSE_FILE})
_LOCK_REASON = "conductor: a pooled worktree, reset for the next attempt\n"
_local = threading.Lock()  # the runner's attempt threads: one count of the slots at a time


def index_is_plain(index: Path) -> bool:
    """True when the index can be reset in place: version 2 or 3 and no entry with a flag
    that makes git skip its file (assume-unchanged, skip-worktree, intent-to-add), which
    `checkout -f` would honour and so leave a previous attempt's file behind. Missing
    is fine (git builds one); version 4 (prefix-compressed paths) is not read here."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if len(data) < 12 or data[:4] != b"DIRC":
        return False
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3):
        return False
    pos = 12
    for _ in range(count):
        if pos + 62 > len(data):
            return False
        (flags,) = struct.unpack_from(">H", data, pos + 60)
        if flags & 0xC000:  # assume-valid, or extended flags (skip-worktree, intent-to-add)
            return False
        size = 62 + (flags & 0x0FFF)
        if flags & 0x0FFF == 0x0FFF:  # a path too long for the length field
            size = 62 + data.index(b"\0", pos + 62) - (pos + 62)
        pos += (size + 8) & ~7  # NUL-padded to a multiple of 8
    return True


def reuse_key(tree: Path, key_files: Sequence[str], salt: str) -> str:
    """What decides whether kept directories are still good: the setup commands and the
    contents of the key files, as they are in the freshly reset tree."""
    h = hashlib.sha256(salt.encode())
    for rel in key_files:
        h.update(b"\0" + rel.encode() + b"\0")
        try:
            h.update(hashlib.sha256((tree / rel).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


class Pooling(Guarding):
    """The worktree pool, as part of ``Workspace``."""

    pool_slots = 0  # how many worktrees may wait in the pool; 0: none (set per run)

    @property
    def pool_dir(self) -> Path:
        return self.state_dir / "worktrees" / POOL_DIR

    # ---- taking ---------------------------------------------------------------------

    def _from_pool(
        self,
        path: Path,
        branch: str,
        start: str,
        keep: Sequence[str],
        key: tuple[Sequence[str], str],
    ) -> bool | None:
        """Reset a pooled worktree onto ``branch`` at ``start`` and move it to ``path``.
        None when no slot could be had; else whether its kept directories still match."""
        for slot in self._slots():
            claim = slot.with_name(f"{CLAIM}{os.getpid()}-{slot.name}")
            try:
                os.rename(slot, claim)  # atomic: another runner cannot take it too
            except OSError:
                continue
            try:
                reset = self._reset(claim, branch, start, keep, key)
                if reset is not None:
                    self._move(claim, path, reset[0])
                    return reset[1]
            except (OSError, ConductorError):
                pass
            self._discard(claim)
        return None

    def _reset(
        self,
        tree: Path,
        branch: str,
        start: str,
        keep: Sequence[str],
        key: tuple[Sequence[str], str],
    ) -> tuple[Path, bool] | None:
        """The slot reset in place: (its admin dir, whether its kept directories still
        match); None when it cannot be."""
        admin = self._admin_of(tree, repair=True)  # it names the slot's old place
        if admin is None:
            return None
        rewrite(admin / "locked", _LOCK_REASON)  # slots rest locked; this one stays so
        for entry in admin.iterdir():
            if entry.name == "logs" and entry.is_dir() and not entry.is_symlink():
                _clear_logs(entry)
            elif entry.name not in _ADMIN_KEEP | {"locked"}:
                _remove(entry)
        if not index_is_plain(admin / "index"):
            (admin / "index").unlink(missing_ok=True)  # rebuilt by the checkout below
        where = ["--git-dir", str(admin), "--work-tree", str(tree)]
        self._git([*where, "checkout", "-f", "-q", "--no-recurse-submodules", "-B", branch, start],
                  tree)  # fmt: skip
        rewrite(admin / "ORIG_HEAD", start + "\n")  # as `worktree add`
        made_for = _read(admin / REUSE_FILE)
        new_key = reuse_key(tree, key[0], key[1]) if keep else None
        kept = bool(keep) and made_for == new_key and all((tree / k).is_dir() for k in keep)
        spare = [a for k in keep for a in ("-e", "/" + k.strip("/"))] if kept else []
        res = self._run([*where, "clean", "-ffdxq", *spare], tree, c_locale=True)
        if not res.ok or res.stderr.strip():  # "failed to remove": a file it cannot delete
            return None
        if not kept:
            (admin / REUSE_FILE).unlink(missing_ok=True)
        return admin, kept

    def _made(self, path: Path, key_files: Sequence[str], salt: str) -> None:
        """`setup` succeeded in ``path``: what it made is good while the key is unchanged."""
        admin = self._admin_of(path)
        if admin is not None:
            rewrite(admin / REUSE_FILE, reuse_key(path, key_files, salt) + "\n")

    # ---- giving back ----------------------------------------------------------------

    def _to_pool(self, path: Path, head: str | None) -> bool:
        """Park a finished attempt's worktree in the pool with a detached HEAD; False when
        the pool is full or the worktree cannot be trusted (then the caller removes it)."""
        admin = self._admin_of(path)
        if admin is None or self.pool_slots <= 0:
            return False
        head = head or self._head_sha(admin)
        if head is None:
            return False
        with _local:
            if len(self._slots()) >= self.pool_slots:
                return False
            dest = self.pool_dir / admin.name
            if os.path.lexists(dest):
                return False
            rewrite(admin / "HEAD", head + "\n")  # detached
            self.pool_dir.mkdir(parents=True, exist_ok=True)
            self._move(path, dest, admin, into_pool=True)
        return True

    def _head_sha(self, admin: Path) -> str | None:
        """The sha a worktree's HEAD is at, from files: its branch (maybe deleted since
        by `tidy`), else the last entry of its reflog (also when HEAD itself was left
        empty or garbled)."""
        head = _read(admin / "HEAD") or ""
        if head.startswith("ref: "):
            head = self._ref_now(head[5:]) or ""
        if not refs.is_sha(head):
            lines = (_read(admin / "logs" / "HEAD") or "").splitlines()
            head = lines[-1].split(" ", 2)[1] if lines and " " in lines[-1] else ""
        return head if refs.is_sha(head) else None

    # ---- the pool as a whole --------------------------------------------------------

    def _slots(self) -> list[Path]:
        try:
            entries = sorted(self.pool_dir.iterdir())
        except OSError:
            return []
        return [e for e in entries if not e.name.startswith(".") and e.is_dir()]

    def open_pool(self, slots: int) -> list[str]:
        """Size the pool for this run and repair what a crash left: a slot whose move was
        cut short gets its admin dir pointed back at it, a claimed one whose runner died is
        discarded, one that is not a sound worktree is discarded, and slots beyond
        ``slots`` (an earlier run's larger pool) are deleted. Names discarded."""
        self.pool_slots = slots
        dropped = []
        for entry in sorted(self.pool_dir.iterdir()) if self.pool_dir.is_dir() else []:
            if entry.name.startswith(CLAIM) and _alive(entry.name):
                continue  # another runner is taking it right now
            admin = None if entry.name.startswith(".") else self._admin_of(entry, repair=True)
            if admin is None or self._head_sha(admin) is None:
                self._discard(entry)
                dropped.append(entry.name)
                continue
            rewrite(admin / "HEAD", f"{self._head_sha(admin)}\n")
            rewrite(admin / "locked", _LOCK_REASON)
        for extra in self._slots()[max(slots, 0) :]:  # an earlier run's larger pool
            claim = extra.with_name(f"{CLAIM}{os.getpid()}-{extra.name}")
            with contextlib.suppress(OSError):  # taken meanwhile by another runner
                os.rename(extra, claim)
                self._discard(claim)
                dropped.append(extra.name)
        return dropped

    def _admin_of(self, tree: Path, repair: bool = False) -> Path | None:
        """The admin dir a worktree's `.git` file names, when it is one of this
        repository's and names this tree (or, with ``repair``, is made to)."""
        if Path(tree).is_symlink():  # an agent swapped its worktree for a link elsewhere:
            return None  # resetting "it" would clean whatever the link points at
        text = _read(tree / ".git") or ""
        if not text.startswith("gitdir:") or (tree / ".git").is_symlink():
            return None
        admin = Path(text[len("gitdir:") :].strip())
        home = self.common_dir / ADMIN_DIR
        if admin.parent != home or not all((admin / f).is_file() for f in ("commondir", "HEAD")):
            return None
        want = str(Path(tree).absolute() / ".git")
        was = _read(admin / "gitdir") or ""
        if was != want:
            # only a record of one of conductor's own worktrees is ever rewritten: a `.git`
            # file naming the admin dir of one of the user's worktrees must not capture it
            if not repair or not was.startswith(self._home()):
                return None
            rewrite(admin / "gitdir", want + "\n")
        return admin

    def _move(self, src: Path, dst: Path, admin: Path, into_pool: bool = False) -> None:
        """Move a worktree whose admin dir the caller found with ``_admin_of``: the
        directory, then git's record of where it is."""
        rewrite(admin / "locked", _LOCK_REASON)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
        rewrite(admin / "gitdir", f"{Path(dst).absolute() / '.git'}\n")
        if not into_pool:  # a slot at rest stays locked: no `git worktree prune` drops it
            (admin / "locked").unlink(missing_ok=True)

    def _discard(self, tree: Path) -> None:
        """Delete a pooled worktree and git's record of it, without asking git (which
        may be what is broken)."""
        text = "" if Path(tree).is_symlink() else (_read(tree / ".git") or "")
        home = self.common_dir / ADMIN_DIR
        if text.startswith("gitdir:"):
            admin = Path(text[len("gitdir:") :].strip())
        else:  # its `.git` is gone: a slot is named after its admin dir (see _to_pool)
            name = tree.name.split("-", 2)[2] if tree.name.startswith(CLAIM) else tree.name
            admin = home / name
            if Path(_read(admin / "gitdir") or "/").parent.name not in (tree.name, name):
                admin = None  # that record is another worktree's
        _remove(tree)
        # only the record of one of conductor's own worktrees, never one of the user's
        if admin is not None and admin.parent == home and self._records_ours(admin):
            _remove(admin)

    def _records_ours(self, admin: Path) -> bool:
        return (_read(admin / "gitdir") or "").startswith(self._home())

    def _home(self) -> str:
        """Where conductor's worktrees live: the only ones whose git records it touches."""
        return str(Path(self.state_dir).absolute() / "worktrees") + os.sep


def _alive(claim_name: str) -> bool:
    """Whether the runner that claimed a slot still runs (read from /proc: signalling
    processes is the exec room's business, and Linux is what conductor supports)."""
    pid = claim_name[len(CLAIM) :].split("-", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").is_dir()


def _clear_logs(logs: Path) -> None:
    """A previous attempt's reflogs go; ``logs/HEAD`` is emptied rather than deleted (git
    appends the checkout's entry to it next, as to a fresh worktree's): one inode kept."""
    for entry in logs.iterdir():
        if entry.name != "HEAD" or not entry.is_file() or entry.is_symlink():
            _remove(entry)
    with contextlib.suppress(FileNotFoundError):
        os.truncate(logs / "HEAD", 0)


def _remove(path: Path) -> None:
    """Delete a file or a tree, read-only directories included."""
    if path.is_dir() and not path.is_symlink():

        def unlock(func: object, p: str, exc: object) -> None:
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(p), 0o700)
                os.chmod(p, 0o700)
                (os.rmdir if os.path.isdir(p) and not os.path.islink(p) else os.unlink)(p)

        shutil.rmtree(path, onerror=unlock)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
