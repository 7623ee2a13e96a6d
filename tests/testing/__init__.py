"""Helpers the tests share: real repositories, the CLI runner, fake and real agents."""
