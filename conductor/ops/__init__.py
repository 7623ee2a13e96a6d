"""Care of runs after the fact: cancel, progress, follow, rollback, clean, export, demo."""
