"""One attempt of one task, driven directly: worktree, pre ref, commit, merge, conflict.

No runner and no scheduler: each test records a run, builds an ``Attempt`` on its
context and calls ``run()``, with the agent faked and git and the store real.
"""

from __future__ import annotations

from pathlib import Path

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.run.attempt import Attempt
from conductor.run.outcome import Outcome, Prior
from tests.testing.engine import BRANCH, Harness, start, task, task_of, workflow
from tests.testing.repos import git


def trailers(repo: Path, rev: str) -> dict[str, str]:
    out = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if line)


def parents(repo: Path, rev: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n1", rev).split()[1:]


def attempt(h: Harness, task_id: str, n: int = 1) -> Outcome:
    return Attempt(h.ctx, h.wf.tasks[task_id], n, Prior()).run()


def test_an_attempt_works_on_its_own_branch_and_merges_its_commit(repo: Path) -> None:
    seen: dict[str, object] = {}

    def agent(req: Request) -> Reply:
        seen["cwd"] = req.cwd
        seen["branch"] = git(req.cwd, "rev-parse", "--abbrev-ref", "HEAD")
        seen["head"] = git(req.cwd, "rev-parse", "HEAD")
        return Reply(files={"src/feature.py": "FEATURE = True\n"})

    with start(workflow(repo, task("T", title="Add the feature")), agent) as h:
        start_head = git(repo, "rev-parse", BRANCH)
        out = attempt(h, "T")
        row = h.store.attempts(h.run_id, "T")[0]

    worktree = repo / ".conductor" / "worktrees" / h.run_id / "T-1"
    branch = f"{BRANCH}.attempts/{h.run_id}/T/1"
    assert out.ok, out.error
    # the agent ran in the layout's worktree, on the attempt branch, at the integration head
    assert seen == {"cwd": worktree, "branch": branch, "head": start_head}
    assert git(repo, "rev-parse", f"refs/conductor/{h.run_id}/T/1/pre") == start_head

    # its files are committed on the attempt branch, with the Conductor-* trailers
    post = git(repo, "rev-parse", branch)
    assert out.result_commit == post
    assert parents(repo, post) == [start_head]
    assert git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", post) == "src/feature.py"
    assert trailers(repo, post) == {
        "Conductor-Run": h.run_id,
        "Conductor-Task": "T",
        "Conductor-Attempt": "1",
        "Conductor-Agent": "fake",
        "Conductor-Status": "ok",
        "Conductor-Duration": trailers(repo, post)["Conductor-Duration"],
    }

    # and merged into the integration branch by a two-parent commit that names the task
    assert out.merge_commit == git(repo, "rev-parse", BRANCH)
    assert parents(repo, BRANCH) == [start_head, post]
    assert trailers(repo, BRANCH) == {"Conductor-Run": h.run_id, "Conductor-Task": "T"}
    assert git(repo, "log", "-1", "--format=%s", BRANCH) == "conductor: merge T (Add the feature)"
    assert git(repo, "show", f"{BRANCH}:src/feature.py") == "FEATURE = True"

    assert (row["state"], row["branch"], row["worktree"]) == ("succeeded", branch, str(worktree))
    assert (row["pre_commit"], row["post_commit"]) == (start_head, post)
    assert row["files_changed"] == 1


def test_commits_the_agent_made_itself_are_kept_under_conductors_commit(repo: Path) -> None:
    def agent(req: Request) -> Reply:
        (req.cwd / "mine.txt").write_text("committed by the agent\n")
        git(req.cwd, "add", "mine.txt")
        git(req.cwd, "commit", "-q", "-m", "agent: my own commit")
        return Reply(files={"left.txt": "left uncommitted\n"})

    with start(workflow(repo, task("T")), agent) as h:
        out = attempt(h, "T")

    assert out.ok, out.error
    subjects = git(repo, "log", "--format=%s", f"{BRANCH}^2").splitlines()
    assert subjects[:3] == ["conductor: T attempt 1", "agent: my own commit", "initial"]
    assert git(repo, "show", f"{BRANCH}:mine.txt") == "committed by the agent"
    assert git(repo, "show", f"{BRANCH}:left.txt") == "left uncommitted"


def test_a_merge_conflict_fails_the_attempt_with_the_conflicting_paths(repo: Path) -> None:
    results: dict[str, Outcome] = {}

    def agent(req: Request) -> Reply:
        tid = task_of(req)
        if tid == "T2":
            # T1 starts, works and merges while T2's agent is still busy: both began
            # from the same head and changed the same line
            results["T1"] = attempt(h, "T1")
        return Reply(files={"README.md": f"hello from {tid}\n"})

    with start(workflow(repo, task("T1"), task("T2")), agent) as h:
        results["T2"] = attempt(h, "T2")
        t2_row = h.store.attempts(h.run_id, "T2")[0]
        events = [e for e in h.store.events(h.run_id) if e["kind"] == "conflict"]

    first, second = results["T1"], results["T2"]
    assert first.ok
    assert not second.ok
    assert second.conflict
    assert second.output == "README.md"
    assert second.error == "merge conflict in README.md"
    assert second.merge_commit is None
    # the integration branch holds T1's merge and nothing of T2
    assert git(repo, "rev-parse", BRANCH) == first.merge_commit
    assert git(repo, "show", f"{BRANCH}:README.md") == "hello from T1"
    # T2's work is kept on its attempt branch for the retry (or a human) to use
    assert second.result_commit == git(repo, "rev-parse", f"{BRANCH}.attempts/{h.run_id}/T2/1")
    assert git(repo, "show", f"{second.result_commit}:README.md") == "hello from T2"
    assert (t2_row["state"], t2_row["error"]) == ("failed", "merge conflict in README.md")
    assert [(e["task_id"], e["data"]["paths"]) for e in events] == [("T2", ["README.md"])]


def test_a_cancelled_attempt_is_interrupted_and_keeps_its_work(repo: Path) -> None:
    def agent(req: Request) -> Reply:
        h.ctx.cancel_task("T")  # `conductor cancel --task T` while the agent works
        return Reply(exit_code=None, reason="cancelled", files={"wip.txt": "half\n"})

    with start(workflow(repo, task("T")), agent) as h:
        head = git(repo, "rev-parse", BRANCH)
        out = attempt(h, "T")
        row = h.store.attempts(h.run_id, "T")[0]

    assert not out.ok and out.interrupted
    assert out.merge_commit is None
    assert git(repo, "rev-parse", BRANCH) == head  # nothing merged
    assert git(repo, "show", f"{out.result_commit}:wip.txt") == "half"
    assert trailers(repo, f"{BRANCH}.attempts/{h.run_id}/T/1")["Conductor-Status"] == "cancelled"
    assert row["state"] == "interrupted"


def test_the_instructions_name_the_attempt_branch_the_agent_is_on(repo: Path) -> None:
    prompts: list[str] = []

    def agent(req: Request) -> Reply:
        prompts.append(Path(req.argv[2]).read_text())
        return Reply()

    with start(workflow(repo, task("T")), agent) as h:
        assert attempt(h, "T").ok

    assert f"`{BRANCH}.attempts/{h.run_id}/T/1`" in prompts[0]
