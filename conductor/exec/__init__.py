"""The only place processes start: the local executor, tmux panes, process groups and
stopping them, a fake executor for tests, and the detached runner."""
