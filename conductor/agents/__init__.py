"""Agent profiles: a task becomes argv, environment and an instructions file; parsers
read what each agent CLI prints."""
