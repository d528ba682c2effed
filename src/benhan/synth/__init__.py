"""A synthetic province for demos, tests and benchmarks."""

__all__: list[str] = []
