"""The only place git runs: the integration branch, a worktree per attempt, commits,
merges without a working tree, and the names of conductor's refs and branches."""
