"""conductor: a declarative DAG workflow runner for AI coding agents."""

__version__ = "0.1.0"
