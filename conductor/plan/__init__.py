"""The task graph: cycles, waves, critical path, selection and file scopes. Pure."""
