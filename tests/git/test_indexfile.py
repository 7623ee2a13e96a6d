"""The index file read without git: its cache tree in every index version git writes, and
the mark that tells an attempt's index was left alone (or only refreshed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conductor.git import indexfile
from tests.testing.repos import git, make_repo, write

FILES = {"a.txt": "a\n", "dir/b.txt": "b\n", "dir/sub/c.txt": "c\n", "z" * 200: "long\n"}
LONG = "/".join(["d" * 200] * 21)  # 4,220 bytes: past the 12 bits an entry's flags hold


def touch(path: Path) -> None:
    """New times, same content: an entry `git status` must refresh."""
    when = path.stat().st_mtime + 5
    os.utime(path, (when, when))


def tree_of_index(repo: Path, hash_len: int = 20) -> str | None:
    return indexfile.cache_tree((repo / ".git" / "index").read_bytes(), hash_len)


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_the_cache_tree_is_read_in_every_index_version(tmp_path: Path, version: str) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    blob = git(repo, "hash-object", "-w", "a.txt")  # a name too long for the disk: index only
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{LONG}")
    git(repo, "config", "index.version", version)
    git(repo, "update-index", "--index-version", version)
    tree = git(repo, "write-tree")  # and writes the cache tree back into the index
    assert LONG in git(repo, "ls-tree", "-r", "--name-only", tree).splitlines()
    assert tree_of_index(repo) == tree


def test_extended_entries_are_walked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    git(repo, "update-index", "--skip-worktree", "a.txt")  # an extended flag: version 3
    git(repo, "write-tree")
    assert (repo / ".git" / "index").read_bytes()[4:8] == b"\0\0\0\3"
    assert tree_of_index(repo) == git(repo, "rev-parse", "HEAD^{tree}")


def test_a_staged_change_drops_the_tree_and_a_split_index_is_not_read(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    git(repo, "write-tree")
    write(repo / "dir" / "b.txt", "changed\n")
    git(repo, "add", "dir/b.txt")
    assert tree_of_index(repo) is None
    git(repo, "reset", "-q", "--hard")
    assert tree_of_index(repo) == git(repo, "rev-parse", "HEAD^{tree}")
    git(repo, "update-index", "--split-index")
    assert tree_of_index(repo) is None
    for junk in (b"", b"DIRC", b"XXXX" + bytes(40), (repo / ".git" / "index").read_bytes()[:50]):
        assert indexfile.cache_tree(junk, 20) is None


def test_sha256_repositories(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    res = subprocess.run(["git", "init", "-q", "--object-format=sha256"], cwd=repo, check=False)
    if res.returncode != 0:
        pytest.skip("this git makes no SHA-256 repositories")
    write(repo / "a.txt", "a\n")
    git(repo, "add", "a.txt")
    git(repo, "write-tree")
    tree = git(repo, "write-tree")
    assert len(tree) == 64 and tree_of_index(repo, 32) == tree


def test_the_mark_sees_staging_but_not_a_refresh(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    git(repo, "reset", "-q", "--hard")
    index = repo / ".git" / "index"
    mark = indexfile.mark(index, 20)
    assert mark is not None and mark.checksum is not None and mark.tree is not None
    assert indexfile.unchanged(mark, index, 20)
    touch(repo / "a.txt")  # same content, new times: `status` rewrites the index
    before = index.read_bytes()
    git(repo, "status", "--porcelain")
    assert index.read_bytes() != before and indexfile.unchanged(mark, index, 20)
    write(repo / "a.txt", "new\n")
    git(repo, "add", "a.txt")
    assert not indexfile.unchanged(mark, index, 20)
    index.unlink()
    assert not indexfile.unchanged(mark, index, 20) and indexfile.mark(index, 20) is None


def test_a_big_index_is_compared_by_its_checksum_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    git(repo, "reset", "-q", "--hard")
    index = repo / ".git" / "index"
    monkeypatch.setattr(indexfile, "PARSE_LIMIT", 64)
    mark = indexfile.mark(index, 20)
    assert mark is not None and mark.tree is None and mark.checksum is not None
    assert indexfile.unchanged(mark, index, 20)
    touch(repo / "a.txt")
    before = index.read_bytes()
    git(repo, "status", "--porcelain")  # a refresh: same tree, other bytes, not parsed
    assert index.read_bytes() != before
    assert not indexfile.unchanged(mark, index, 20)


def test_a_zero_checksum_is_no_identity(tmp_path: Path) -> None:
    path = tmp_path / "index"
    path.write_bytes(b"DIRC" + (2).to_bytes(4, "big") + bytes(4) + bytes(20))
    mark = indexfile.mark(path, 20)
    assert mark is not None and mark.checksum is None and mark.tree is None
    assert not indexfile.unchanged(mark, path, 20)
