"""Solvers and configuration. ``DPProcessor(cfg_path).run()`` trains and evaluates one YAML in this process;
``DDPProcessor(cfg_path).run()`` does it as one process of a ``torchrun`` launch.

The solvers are imported lazily, so ``processors.config`` stays light to import.
"""


def __getattr__(name):
    if name == "DPProcessor":
        from .dp_processor import DPProcessor
        return DPProcessor
    if name == "DDPProcessor":
        from .ddp_processor import DDPProcessor
        return DDPProcessor
    raise AttributeError(f"module 'processors' has no attribute '{name}'")


__all__ = ["DPProcessor", "DDPProcessor"]
