"""Fake agent CLIs (claude, codex, gemini, aider) and helpers to drive them from tests."""
