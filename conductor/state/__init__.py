"""Durable state: the SQLite store, the event emitter, run liveness and the
`.conductor/` layout. Everything above reads the truth from here."""
