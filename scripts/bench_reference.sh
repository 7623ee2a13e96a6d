#!/usr/bin/env bash
# The reference for scripts/bench_run.py: the git and process work a "worktree per task,
# merge into an integration branch" runner cannot avoid, done by hand with no bookkeeping.
#
#   scripts/bench_reference.sh REPO TASKS CONCURRENCY [COMMAND [LAYER_SIZE...]]
#
# With LAYER_SIZEs (a DAG whose tasks are numbered level by level) the layers run one after
# another, each layer's tasks starting from the integration head once the layer before has
# merged (a barrier, so a little slower than a scheduler that starts a task as soon as its
# own dependencies merged: bench_run.py's Python reference does that).
#
# Per task, CONCURRENCY at a time (xargs -P): `git worktree add -b`, run COMMAND through
# `bash -c` in the worktree (as conductor's shell preset does), `git add -A` + `git commit`,
# then, one merge at a time (flock, like conductor's merge lock), a working-tree-free merge
# into the integration branch (`merge-tree --write-tree`, `commit-tree`, a compare-and-swap
# `update-ref`), and finally `git worktree remove`.
set -euo pipefail

if [[ "${1:-}" == "--task" ]]; then
    # One task; called by xargs below with: --task REPO BRANCH COMMAND INDEX
    repo=$2 int=$3 cmd=$4 i=$5
    trap 'echo "T$i: line $LINENO failed: $BASH_COMMAND" >&2' ERR
    wt="$repo/.ref/worktrees/T$i"
    br="$int.attempts/T$i/1"
    # Concurrent `git worktree add`s race (one may read another's half-written
    # .git/worktrees/<id>): on failure clear the debris and retry, as conductor does.
    tries=0
    until git -C "$repo" worktree add -q -b "$br" "$wt" "refs/heads/$int" 2>/dev/null ||
        { git -C "$repo" rev-parse -q --verify "refs/heads/$br" >/dev/null &&
            git -C "$repo" worktree add -q "$wt" "$br" 2>/dev/null; }; do
        tries=$((tries + 1))
        if ((tries > 5)); then
            echo "T$i: git worktree add keeps failing" >&2
            exit 1
        fi
        rm -rf "$wt"
        git -C "$repo" worktree prune
    done
    (cd "$wt" && exec bash -c "$cmd")
    git -C "$wt" add -A
    git -C "$wt" commit -q --allow-empty --no-verify -m "T$i attempt 1"
    (
        flock 9
        head=$(git -C "$repo" rev-parse "refs/heads/$int")
        tree=$(git -C "$repo" merge-tree --write-tree "$head" "$br")
        new=$(git -C "$repo" commit-tree "$tree" -p "$head" -p "$br" -m "merge T$i")
        git -C "$repo" update-ref "refs/heads/$int" "$new" "$head"
    ) 9>"$repo/.ref/merge.lock"
    # the same race as above: a remove may read a worktree another task is adding
    for _ in 1 2 3 4 5; do
        git -C "$repo" worktree remove --force "$wt" 2>/dev/null && exit 0
        sleep 0.01
    done
    git -C "$repo" worktree remove --force "$wt"
    exit 0
fi

if [[ $# -lt 3 ]]; then
    echo "usage: $0 REPO TASKS CONCURRENCY [COMMAND [LAYER_SIZE...]]" >&2
    exit 2
fi
repo=$(cd "$1" && pwd) tasks=$2 conc=$3 cmd=${4:-true}
shift $(($# < 4 ? $# : 4))
layers=("$@")
((${#layers[@]})) || layers=("$tasks")
int=bench-ref
mkdir -p "$repo/.ref/worktrees"
info="$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir)/info"
mkdir -p "$info"
echo ".ref/" >>"$info/exclude"
git -C "$repo" branch "$int" HEAD
first=0
for size in "${layers[@]}"; do
    seq "$first" $((first + size - 1)) | xargs -P "$conc" -n 1 bash "$0" --task "$repo" "$int" "$cmd"
    first=$((first + size))
done
if ((first != tasks)); then
    echo "layer sizes add up to $first, not $tasks" >&2
    exit 2
fi
