"""Commands that steer runs after the fact: rollback, clean, export."""

from __future__ import annotations
