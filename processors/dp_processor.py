"""``DPProcessor``: the processor in this one process — CPU, one GPU, or several through DataParallel.

``DPProcessor(cfg_path).run()`` trains and evaluates one YAML (see ``processors.base``); ``gpus`` picks the
devices. For several GPUs ``DDPProcessor`` under ``torchrun`` is faster and the one to use.
"""
import torch

from .base import Processor
from .config import ConfigError


class DPProcessor(Processor):
    """Train / evaluate one experiment YAML in this process (DataParallel over ``gpus``)."""

    def __init__(self, cfg_path, opts=()):
        super().__init__(cfg_path, opts)
        if self.cfg.optim.sync_bn:
            raise ConfigError(f"{cfg_path}: key 'optim.sync_bn': torch.nn.SyncBatchNorm synchronises the "
                              f"processes of a distributed run; start it with torchrun (DDPProcessor), or set "
                              f"optim.sync_bn to false")
        if self.cfg.optim.compile and len(self.cfg.gpus) > 1 and torch.cuda.is_available():
            raise ConfigError(f"{cfg_path}: key 'optim.compile': torch.compile does not speed up DataParallel "
                              f"(gpus {self.cfg.gpus}); start the run with torchrun (DDPProcessor), or train on "
                              f"one GPU")

    def _pick_device(self):
        gpus = self.cfg.gpus
        if gpus and torch.cuda.is_available():
            if max(gpus) >= torch.cuda.device_count():
                raise ConfigError(f"{self.cfg.source}: key 'gpus': GPU {max(gpus)} requested, "
                                  f"{torch.cuda.device_count()} visible")
            return torch.device("cuda", gpus[0])
        if gpus:
            self.log.info(f"gpus {gpus} requested but CUDA is not available: running on the CPU")
        return torch.device("cpu")

    @property
    def _data_parallel(self):
        return self.device.type == "cuda" and len(self.cfg.gpus) > 1

    def _wrap(self, model):
        if not self._data_parallel:
            return model
        self.log.info(f"DataParallel over GPUs {self.cfg.gpus}")
        return torch.nn.DataParallel(model, device_ids=self.cfg.gpus)

    def _eval_module(self, model):
        return torch.nn.DataParallel(model, device_ids=self.cfg.gpus) if self._data_parallel else model
