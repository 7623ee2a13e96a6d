"""The workflow file: YAML with locations, the JSON Schema, semantic checks, config
layers, secrets and durations. Pure: no git, no processes, no clock."""
