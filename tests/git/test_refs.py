"""Every ref and branch name conductor builds, and reading them back (DESIGN §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.git import refs
from conductor.spec.names import ref_problem, task_component

TASK_IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
INTEGRATIONS = st.from_regex(r"\A(conductor/)?[a-z0-9][a-z0-9._-]{0,15}(/[a-z0-9]{1,5})?\Z")


RUN = "20260101-120000-ab12"
RUN_IDS = st.from_regex(r"\A\d{8}-\d{6}-[0-9a-f]{4}\Z")


def test_attempt_branch_is_named_beside_the_integration_branch_not_under_it() -> None:
    branch = refs.attempt_branch("conductor/phase-1", RUN, "T1", 2)
    assert branch == f"conductor/phase-1.attempts/{RUN}/T1/2"
    assert refs.branch_ref(branch) == f"refs/heads/conductor/phase-1.attempts/{RUN}/T1/2"
    assert refs.branch_ref(branch).startswith(refs.attempts_prefix("conductor/phase-1"))
    assert not refs.branch_ref(branch).startswith(refs.branch_ref("conductor/phase-1") + "/")


@given(INTEGRATIONS, RUN_IDS, TASK_IDS, st.integers(min_value=1, max_value=10_000))
def test_attempt_branch_round_trips(integration: str, run: str, task: str, n: int) -> None:
    parsed = refs.parse_attempt_branch(refs.attempt_branch(integration, run, task, n))
    # the task's branch-safe name: itself for every id spec accepts (not `0.`, say)
    assert parsed == refs.AttemptBranch(integration, run, task_component(task), n)


def test_a_fan_out_task_gets_a_branch_safe_name_in_branches_and_refs() -> None:
    branch = refs.attempt_branch("conductor/x", RUN, "T5[module=auth,py=3.12]", 1)
    assert branch == f"conductor/x.attempts/{RUN}/T5-module-auth-py-3.12/1"
    assert ref_problem(branch) is None
    assert refs.pre_ref(RUN, "T5[m=a b]", 2).startswith(f"refs/conductor/{RUN}/T5-m-a-b-")
    parsed = refs.parse_attempt_branch(branch)
    assert parsed is not None and parsed.task_id == "T5-module-auth-py-3.12"


def test_two_runs_never_share_an_attempt_branch() -> None:
    first = refs.attempt_branch("conductor/x", "20260101-120000-aaaa", "T1", 1)
    again = refs.attempt_branch("conductor/x", "20260101-130000-bbbb", "T1", 1)
    assert first != again


def test_branches_of_older_conductors_without_a_run_still_parse_for_clean() -> None:
    old = refs.parse_attempt_branch("conductor/x.attempts/T1/3")
    assert old == refs.AttemptBranch("conductor/x", None, "T1", 3)


@pytest.mark.parametrize(
    "branch",
    [
        "main",
        "conductor/phase-1",
        "conductor/phase-1.attempts/",
        "conductor/phase-1.attempts/T1",
        "conductor/phase-1.attempts/T1/",
        "conductor/phase-1.attempts/T1/two",
        "conductor/phase-1.attempts//1",
        "conductor/phase-1.attempts/r/T1/x",
        "conductor/phase-1.attempts/a/b/c/1",
    ],
)
def test_other_branches_are_not_attempts(branch: str) -> None:
    assert refs.parse_attempt_branch(branch) is None


def test_branch_ref_and_back() -> None:
    assert refs.branch_ref("conductor/x") == "refs/heads/conductor/x"
    assert refs.branch_of("refs/heads/conductor/x") == "conductor/x"
    assert refs.branch_of("refs/conductor/r1/T1/1/pre") is None


def test_pre_ref_sits_under_its_attempt_and_its_run() -> None:
    pre = refs.pre_ref("r1", "T1", 3)
    assert pre == "refs/conductor/r1/T1/3/pre"
    assert pre.startswith(refs.attempt_refs("r1", "T1", 3))
    assert pre.startswith(refs.run_prefix("r1"))
    assert refs.run_of(pre) == "r1"
    # whole components: run r1 never claims the refs of r10, nor attempt 1 those of 10
    assert not refs.pre_ref("r10", "T1", 1).startswith(refs.run_prefix("r1"))
    assert not refs.pre_ref("r1", "T1", 10).startswith(refs.attempt_refs("r1", "T1", 1))


def test_rollback_refs_live_in_their_own_namespace() -> None:
    first = refs.rollback_ref("r1", "20240101T000000")
    assert first == "refs/conductor/rollback/r1/20240101T000000"
    assert refs.rollback_ref("r1", "20240101T000000", 2) == first + "-2"
    assert refs.is_rollback_ref(first)
    assert not refs.is_rollback_ref(refs.pre_ref("r1", "T1", 1))
    assert refs.run_of(first) == "rollback"  # clean asks is_rollback_ref first
    assert refs.run_of("refs/heads/main") is None


def test_deletion_stays_inside_conductors_namespaces() -> None:
    assert refs.may_delete_prefix(refs.run_prefix("r1"))
    assert refs.may_delete_prefix(refs.ROLLBACK_NS)
    assert refs.may_delete_prefix(refs.attempts_prefix("conductor/x"))
    assert not refs.may_delete_prefix("refs/heads/main")
    assert not refs.may_delete_prefix(refs.HEADS)
    assert not refs.may_delete_prefix("refs/tags/")
    # one named ref, checked against its sha: an attempt of a user-named integration branch
    assert refs.may_delete_ref(refs.branch_ref(refs.attempt_branch("release", RUN, "T1", 1)))
    assert refs.may_delete_ref(refs.pre_ref("r1", "T1", 1))
    assert not refs.may_delete_ref("refs/tags/v1")
