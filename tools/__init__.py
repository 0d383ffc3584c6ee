"""Command-line tools (benchmarks, model facts, pictures); each also importable as ``tools.<name>``."""
