"""Running a workflow: starting a run, the engine loop, the scheduler, each attempt's
lifecycle, validators and gates, recovery after a crash, and hooks."""
