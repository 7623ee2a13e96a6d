"""Preparing a fresh worktree: untracked files copied in, shared directories symlinked, and
a manifest of what was placed so that it is never committed as the agent's work.

Plain file work (no git process): the manifest lives in the attempt's private git dir
(not its tree), found through the worktree's ``.git`` file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from conductor.git.repo import real
from conductor.state.layout import STATE_DIR_NAME

WORKTREEINCLUDE = ".worktreeinclude"
# What prepare() placed, so commit_all never commits a copied secret such as .env, nor a
# node_modules symlink (which a `node_modules/` ignore line does not match: a symlink is
# not a directory).
PREPARED_MANIFEST = "conductor-prepared"
_NEVER_COPY = frozenset({".git", STATE_DIR_NAME})


def prepare(root: Path, worktree: Path, copy: Sequence[str], symlink: Sequence[str]) -> None:
    """Copy untracked files from the main ``root`` into a fresh ``worktree`` and symlink
    shared directories.

    Copies ``copy`` + the lines of ``.worktreeinclude`` (root-relative paths or
    ``Path.glob`` patterns; ``#`` comments) from the main root; symlinks ``symlink``
    paths with relative links to the main root's. Missing sources are skipped, and
    nothing existing (tracked files, an earlier run's copies) is overwritten.
    """
    worktree = Path(worktree)
    placed: list[str] = []
    for rel in _copy_sources(root, copy):
        if _copy_into(root, worktree, rel):
            placed.append(rel)
    for entry in symlink:
        rel = _clean_rel(entry)
        if rel and (root / rel).exists() and _link_into(root, worktree, rel):
            placed.append(rel)
    _record_prepared(worktree, placed)


def unprepared(worktree: Path, git_dir: Path | None = None) -> list[str]:
    """Pathspec for everything but what prepare() placed (empty when it placed nothing).
    ``git_dir`` names the worktree's git directory when its `.git` cannot be trusted."""
    placed = _prepared(worktree, git_dir)
    return ["--", ":/", *(f":(top,exclude,literal){p}" for p in placed)] if placed else []


def _copy_sources(root: Path, copy: Sequence[str]) -> Iterator[str]:
    patterns = list(copy)
    include = root / WORKTREEINCLUDE
    if include.is_file():
        lines = include.read_text(encoding="utf-8").splitlines()
        patterns += [s for s in map(str.strip, lines) if s and not s.startswith(("#", "!"))]
    seen: set[str] = set()
    for rel in filter(None, map(_clean_rel, patterns)):
        if set(rel) & set("*?["):
            found = [p.relative_to(root).as_posix() for p in root.glob(rel)]
        else:
            found = [rel] if os.path.lexists(root / rel) else []
        for match in sorted(found):
            if match not in seen and match.split("/", 1)[0] not in _NEVER_COPY:
                seen.add(match)
                yield match


def _clean_rel(pattern: str) -> str:
    """A root-relative posix path, or "" for one that would leave the root."""
    parts = [p for p in pattern.strip().split("/") if p not in ("", ".")]
    return "" if ".." in parts else "/".join(parts)


def _copy_into(root: Path, worktree: Path, rel: str) -> bool:
    """Copy ``root/rel`` into the worktree unless something is there already."""
    src, dst = root / rel, worktree / rel
    if os.path.lexists(dst):  # tracked (a partly tracked dir included) or copied before
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
    return True


def _link_into(root: Path, worktree: Path, rel: str) -> bool:
    dst = worktree / rel
    if os.path.lexists(dst):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Relative to the link's real directory: the kernel resolves `..` physically.
    src = real(root / rel)
    os.symlink(os.path.relpath(src, real(dst.parent)), dst, target_is_directory=Path(src).is_dir())
    return True


def _manifest(worktree: Path) -> Path | None:
    """``<git dir>/worktrees/<id>/conductor-prepared``, found via the worktree's .git file."""
    marker = Path(worktree) / ".git"
    if not marker.is_file():
        return None
    text = marker.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        return None
    return Path(worktree) / text[len("gitdir:") :].strip() / PREPARED_MANIFEST


def _prepared(worktree: Path, git_dir: Path | None = None) -> list[str]:
    manifest = git_dir / PREPARED_MANIFEST if git_dir is not None else _manifest(worktree)
    if manifest is None or not manifest.is_file():
        return []
    return [line for line in manifest.read_text(encoding="utf-8").splitlines() if line]


def _record_prepared(worktree: Path, placed: list[str]) -> None:
    manifest = _manifest(worktree)
    if manifest is not None and placed:
        entries = dict.fromkeys([*_prepared(worktree), *placed])
        manifest.write_text("".join(f"{e}\n" for e in entries), encoding="utf-8")
