"""Commands for people: demo, config."""

from __future__ import annotations
