"""House rules of the conductor/ package, checked on the source with `ast` (nothing imported).

Each rule is one checker that takes the directory holding `conductor/` and returns its
violations as `path:line: import-or-call` lines, so a failure names exactly what to move.
The checkers take a root so the tests at the bottom can prove each rule fails on a temp
copy of the tree with one throwaway module added (never a file in conductor/ itself).
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# Modules that start processes: only conductor/exec/ and the git runner may import them.
PROCESS_MODULES = ("subprocess", "pty", "multiprocessing")
PROCESS_STARTERS = ("conductor/exec/", "conductor/git/cmd.py")
# os functions that start a process (os.exec* replaces this one, os.fork* copies it).
OS_STARTS = re.compile(r"(fork|forkpty|exec\w*|spawn\w*|posix_spawn\w*|system|popen)")
OS_SIGNALS = ("kill", "killpg")
SIGNAL_SENDERS = ("conductor/exec/", "conductor/run/faults.py")  # faults.py: chaos-test crashes


@dataclass(frozen=True)
class Module:
    path: str  # relative to the root, e.g. "conductor/run/engine.py"
    name: str  # dotted, e.g. "conductor.run.engine"
    tree: ast.Module
    lines: int

    @property
    def room(self) -> str | None:
        """The first package below `conductor`; None for errors.py, __init__ and __main__."""
        parts = self.path.split("/")
        return parts[1] if len(parts) > 2 else None

    @property
    def package(self) -> str:
        """The package a relative import in this module starts from."""
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    module: Module
    line: int
    text: str  # the statement as written, e.g. "from conductor.git.cmd import clean_env"
    target: str  # the module it loads, e.g. "conductor.git.cmd"
    type_checking: bool  # under `if TYPE_CHECKING:`: never executed
    in_function: bool  # a lazy import, executed when the function first runs

    def __str__(self) -> str:
        return f"{self.module.path}:{self.line}: {self.text}"


def load(root: Path) -> list[Module]:
    modules: list[Module] = []
    for file in sorted((root / "conductor").rglob("*.py")):
        rel = file.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        text = file.read_text(encoding="utf-8")
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        tree = _parse(text, rel.as_posix())
        modules.append(Module(rel.as_posix(), ".".join(parts), tree, len(text.splitlines())))
    return modules


@cache
def _parse(text: str, rel: str) -> ast.Module:
    """Parsed once per content: the temp trees of the tests below share the real modules."""
    return ast.parse(text, filename=rel)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, type_checking: bool = False, in_function: bool = False
) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every node below `node`, with whether it sits under `if TYPE_CHECKING:` / in a function."""
    for child in ast.iter_child_nodes(node):
        yield child, type_checking, in_function
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True, in_function
                yield from _walk(stmt, True, in_function)
            for stmt in child.orelse:
                yield stmt, type_checking, in_function
                yield from _walk(stmt, type_checking, in_function)
        else:
            func = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _walk(child, type_checking, in_function or func)


@cache
def _nodes(tree: ast.Module) -> list[tuple[ast.AST, bool, bool]]:
    return list(_walk(tree))


@cache
def _nodes_only(tree: ast.Module) -> list[ast.AST]:
    return list(ast.walk(tree))


def imports(modules: list[Module]) -> list[Import]:
    """Every import statement, one record per module it loads, relative ones resolved."""
    known = {m.name for m in modules}
    found: list[Import] = []
    for mod in modules:
        for node, tc, fn in _nodes(mod.tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.package.split(".")
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join([*pkg, base] if base else pkg)
                # `from pkg import name` loads pkg.name when that is a module, else pkg.
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in known else base)
            else:
                continue
            text = ast.unparse(node)
            for target in dict.fromkeys(targets):
                found.append(Import(mod, node.lineno, text, target, tc, fn))
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _by_place(violations: list[str]) -> list[str]:
    """Sorted by module, then line number."""

    def key(v: str) -> tuple[str, int]:
        path, line, _ = v.split(":", 2)
        return path, int(line)

    return sorted(violations, key=key)


def _room_of(name: str, modules: list[Module]) -> str | None:
    rooms = {m.room for m in modules} - {None}
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "conductor" and parts[1] in rooms else None


# -- the rules ------------------------------------------------------------------------------


def process_starts(root: Path) -> list[str]:
    """Rule 1: process-starting imports and os calls outside exec/ (and git/cmd.py)."""
    modules = load(root)
    bad: list[str] = []
    for imp in imports(modules):
        if any(_within(imp.target, m) for m in PROCESS_MODULES) and not imp.module.path.startswith(
            PROCESS_STARTERS
        ):
            bad.append(str(imp))
    for mod in modules:
        starter = mod.path.startswith(PROCESS_STARTERS)
        signaller = mod.path.startswith(SIGNAL_SENDERS)
        os_names = {"os"}  # names bound to the os module in this module
        for node in _nodes_only(mod.tree):
            if isinstance(node, ast.Import):
                os_names |= {a.asname or "os" for a in node.names if a.name in ("os", "os.path")}
        for node in _nodes_only(mod.tree):
            names: list[str] = []  # os functions this node names (imports or uses)
            if isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in os_names:
                    names = [node.attr]
                elif node.value.id == "asyncio" and node.attr.startswith("create_subprocess_"):
                    names = ["spawn"]  # asyncio's way to start a process: the same rule
            starts = any(OS_STARTS.fullmatch(name) for name in names)
            signals = any(name in OS_SIGNALS for name in names)
            if (starts and not starter) or (signals and not signaller):
                assert isinstance(node, (ast.ImportFrom, ast.Attribute))  # names come from those
                bad.append(f"{mod.path}:{node.lineno}: {ast.unparse(node)}")
    return _by_place(bad)


def git_runners(root: Path) -> list[str]:
    """Rule 2: conductor.git.cmd imported outside git/, or a ["git", ...] argv outside git/."""
    modules = load(root)
    bad = [
        str(imp)
        for imp in imports(modules)
        if _within(imp.target, "conductor.git.cmd")
        and not _within(imp.module.name, "conductor.git")
    ]
    for mod in modules:
        if _within(mod.name, "conductor.git"):
            continue
        for node in _nodes_only(mod.tree):
            if (
                isinstance(node, (ast.List, ast.Tuple))
                and node.elts
                and isinstance(node.elts[0], ast.Constant)
                and node.elts[0].value == "git"
            ):
                bad.append(f"{mod.path}:{node.lineno}: {ast.unparse(node)[:80]}")
    return _by_place(bad)


LOWER_ROOMS = {
    "conductor.spec": ("conductor.spec", "conductor.errors"),
    "conductor.plan": ("conductor.spec", "conductor.plan", "conductor.errors"),
}


def pure_layers(root: Path) -> list[str]:
    """Rule 3: spec/ and plan/ import nothing above them, even lazily or for type checking."""
    bad: list[str] = []
    for imp in imports(load(root)):
        for room, allowed in LOWER_ROOMS.items():
            if (
                _within(imp.module.name, room)
                and _within(imp.target, "conductor")
                and not any(_within(imp.target, ok) for ok in allowed)
            ):
                bad.append(str(imp))
    return bad


def cli_importers(root: Path) -> list[str]:
    """Rule 4: only conductor/__main__.py and cli/ itself import conductor.cli."""
    return [
        str(imp)
        for imp in imports(load(root))
        if _within(imp.target, "conductor.cli")
        and not _within(imp.module.name, "conductor.cli")
        and imp.module.name != "conductor.__main__"
    ]


def room_graph(root: Path) -> dict[tuple[str, str], Import]:
    """{(room, room it imports): one example import}.

    Imports under `if TYPE_CHECKING:` are left out: they never run, and they are how a lower
    room names a type of a higher one without depending on it. Lazy imports inside functions
    are counted: they run as soon as the function does, so they are a real dependency that
    only hides the cycle from import time (and are the usual way one gets smuggled in).
    """
    modules = load(root)
    edges: dict[tuple[str, str], Import] = {}
    for imp in imports(modules):
        src, dst = imp.module.room, _room_of(imp.target, modules)
        if imp.type_checking or src is None or dst is None or src == dst:
            continue
        edges.setdefault((src, dst), imp)
    return edges


def room_cycles(root: Path) -> list[str]:
    """Rule 5: one cycle per tangle of rooms, as `a -> b -> a` with an example import per edge."""
    edges = room_graph(root)
    succ: dict[str, list[str]] = {}
    for src, dst in sorted(edges):
        succ.setdefault(src, []).append(dst)
        succ.setdefault(dst, [])
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(succ):
        cycle = _shortest_cycle(start, succ)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            cycles.append(cycle)
    bad: list[str] = []
    for cycle in cycles:
        loop = [*cycle, cycle[0]]
        via = "; ".join(
            f"{a} -> {b}: {edges[a, b]}{' (in a function)' if edges[a, b].in_function else ''}"
            for a, b in itertools.pairwise(loop)
        )
        bad.append(f"{' -> '.join(loop)}  ({via})")
    return bad


def _shortest_cycle(start: str, succ: dict[str, list[str]]) -> list[str] | None:
    """The shortest path start -> ... -> start (breadth first), without the repeated start."""
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in succ[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return path[::-1]
            if nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    return None


def long_modules(root: Path) -> list[str]:
    """Rule 6: no module over ~400 lines."""
    return [f"{m.path}: {m.lines} lines" for m in load(root) if m.lines > MAX_LINES]


def _fail(rule: str, violations: list[str]) -> str:
    return f"{rule}: {len(violations)} violation(s):\n  " + "\n  ".join(violations)


# -- the rules on the real tree -------------------------------------------------------------


def test_only_exec_starts_processes() -> None:
    bad = process_starts(ROOT)
    assert not bad, _fail("only conductor/exec/ (and git/cmd.py) starts processes", bad)


def test_only_git_room_runs_git() -> None:
    bad = git_runners(ROOT)
    assert not bad, _fail("only conductor/git/ runs git", bad)


def test_spec_and_plan_import_nothing_above_them() -> None:
    bad = pure_layers(ROOT)
    assert not bad, _fail("spec/ and plan/ import only spec/, plan/ and errors", bad)


def test_cli_is_imported_only_by_main() -> None:
    bad = cli_importers(ROOT)
    assert not bad, _fail("cli/ is imported only by conductor/__main__.py and cli/", bad)


def test_rooms_import_each_other_without_cycles() -> None:
    bad = room_cycles(ROOT)
    assert not bad, _fail("rooms import each other without cycles", bad)


def test_no_module_over_400_lines() -> None:
    bad = long_modules(ROOT)
    assert not bad, _fail(f"no module over {MAX_LINES} lines", bad)


# -- every rule can fail: a throwaway module in a temp copy of the tree ---------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "conductor", tmp_path / "conductor", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def _add(tree: Path, rel: str, source: str) -> None:
    (tree / rel).write_text(source, encoding="utf-8")


def _hits(violations: list[str], rel: str) -> list[str]:
    return [v for v in violations if rel in v]


def test_rule_1_catches_process_imports_and_os_starts(tree: Path) -> None:
    _add(
        tree,
        "conductor/report/zz_throwaway.py",
        "import os as _os\nfrom os import execvp\n\n\ndef f() -> None:\n"
        "    import subprocess\n    from multiprocessing import Process\n"
        "    _os.fork()\n    _os.posix_spawnp('x', [], {})\n    _os.kill(1, 9)\n"
        "    asyncio.create_subprocess_exec('x')\n",
    )
    _add(tree, "conductor/exec/zz_throwaway.py", "import os, pty\nos.fork()\nos.kill(1, 9)\n")
    _add(tree, "conductor/git/zz_throwaway.py", "import os\nos.kill(1, 9)\n")
    bad = process_starts(tree)
    hits = _hits(bad, "conductor/report/zz_throwaway.py")
    assert [h.split(": ", 1)[1] for h in hits] == [
        "from os import execvp",
        "import subprocess",
        "from multiprocessing import Process",
        "_os.fork",
        "_os.posix_spawnp",
        "_os.kill",
        "asyncio.create_subprocess_exec",
    ], hits
    assert _hits(bad, "conductor/git/zz_throwaway.py") == [
        "conductor/git/zz_throwaway.py:2: os.kill"
    ]
    assert not _hits(bad, "conductor/exec/")


def test_rule_2_catches_git_cmd_imports_and_git_argvs(tree: Path) -> None:
    _add(
        tree,
        "conductor/ops/zz_throwaway.py",
        "from ..git import cmd\nargv = ('git', 'status')\nok = ['tmux', 'git']\n",
    )
    _add(tree, "conductor/git/zz_throwaway.py", "from . import cmd\nargv = ['git', 'log']\n")
    bad = git_runners(tree)
    assert _hits(bad, "zz_throwaway") == [
        "conductor/ops/zz_throwaway.py:1: from ..git import cmd",
        "conductor/ops/zz_throwaway.py:2: ('git', 'status')",
    ]


def test_rule_3_catches_lazy_and_type_checking_imports_from_above(tree: Path) -> None:
    _add(
        tree,
        "conductor/spec/zz_throwaway.py",
        "from typing import TYPE_CHECKING\nimport yaml\nfrom conductor import errors\n"
        "from . import model\nif TYPE_CHECKING:\n    from conductor.plan import graph\n",
    )
    _add(
        tree,
        "conductor/plan/zz_throwaway.py",
        "from conductor.spec import model\n\n\ndef f() -> None:\n    import conductor.state.store\n",
    )
    bad = pure_layers(tree)
    assert _hits(bad, "zz_throwaway") == [
        "conductor/plan/zz_throwaway.py:5: import conductor.state.store",
        "conductor/spec/zz_throwaway.py:6: from conductor.plan import graph",
    ]


def test_rule_4_catches_an_import_of_cli(tree: Path) -> None:
    _add(tree, "conductor/ops/zz_throwaway.py", "from conductor.cli.app import app\n")
    _add(tree, "conductor/cli/zz_throwaway.py", "from conductor.cli import app\n")
    assert _hits(cli_importers(tree), "zz_throwaway") == [
        "conductor/ops/zz_throwaway.py:1: from conductor.cli.app import app"
    ]


def test_rule_5_catches_a_lazy_cycle_but_not_a_type_checking_one(tree: Path) -> None:
    # spec -> cli would be a cycle with every room that imports spec and is below cli.
    _add(
        tree,
        "conductor/spec/zz_throwaway.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from conductor.cli import app\n",
    )
    assert room_cycles(tree) == room_cycles(ROOT)
    _add(tree, "conductor/spec/zz_throwaway.py", "def f() -> None:\n    from ..cli import app\n")
    new = set(room_cycles(tree)) - set(room_cycles(ROOT))
    assert new
    assert any(
        re.search(r"spec -> cli: conductor/spec/zz_throwaway.py:2: from \.\.cli import app", c)
        for c in new
    ), new
    for cycle in new:
        rooms = cycle.split("  (")[0].split(" -> ")
        assert rooms[0] == rooms[-1] and len(rooms) > 2, cycle


def test_rule_6_catches_a_long_module(tree: Path) -> None:
    _add(tree, "conductor/state/zz_throwaway.py", "x = 1\n" * (MAX_LINES + 1))
    _add(tree, "conductor/state/zz_throwaway_ok.py", "x = 1\n" * MAX_LINES)
    assert _hits(long_modules(tree), "zz_throwaway") == [
        f"conductor/state/zz_throwaway.py: {MAX_LINES + 1} lines"
    ]
