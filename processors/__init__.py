"""Solvers and configuration. ``DPProcessor(cfg_path).run()`` trains and evaluates one YAML.

The solver is imported lazily, so ``processors.config`` stays light to import.
"""


def __getattr__(name):
    if name == "DPProcessor":
        from .dp_processor import DPProcessor
        return DPProcessor
    raise AttributeError(f"module 'processors' has no attribute '{name}'")


__all__ = ["DPProcessor"]
