"""``DDPProcessor``: the processor on PyTorch's DistributedDataParallel, one process per GPU, under ``torchrun``.

    torchrun --nproc_per_node 4 main.py --cfg configs/coco/res50_dconv_256x192.yaml

``main.py`` picks it when ``torchrun`` started it. The process group comes from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL with one GPU per local rank
when CUDA is there and ``gpus`` is not empty, gloo on the CPU otherwise. ``data.batch_size`` is the total over
all processes (each takes ``batch_size / WORLD_SIZE``); each rank takes its shard of the epoch's shuffle
(``EpochSampler``) with its own augmentation streams; ``optim.sync_bn`` converts BatchNorm to
``torch.nn.SyncBatchNorm``. Evaluation is sharded over the ranks and gathered on rank 0, the sampler's padding
removed, before COCOeval. Only rank 0 writes checkpoints, logs, TensorBoard and archives; every rank resumes
from ``last.pth``. The process group is shut down however the run ends.
"""
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .base import Processor
from .config import ConfigError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def started_by_torchrun(environ=os.environ):
    """Whether this process is one of a ``torchrun`` (or other ``env://``) launch."""
    return all(name in environ for name in TORCHRUN_VARIABLES)


class DDPProcessor(Processor):
    """Train / evaluate one experiment YAML as one process of a ``torchrun`` launch."""

    def __init__(self, cfg_path, opts=()):
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise RuntimeError(f"DDPProcessor runs under torchrun (missing {', '.join(missing)}): start it with "
                               f"'torchrun --nproc_per_node N main.py --cfg {cfg_path}', or use DPProcessor")
        self.rank, self.world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        super().__init__(cfg_path, opts)
        cfg = self.cfg
        if cfg.data.batch_size % self.world_size:
            raise ConfigError(f"{cfg.source}: key 'data.batch_size': the total over the {self.world_size} "
                              f"processes must divide evenly among them, got {cfg.data.batch_size}")
        self.use_cuda = bool(cfg.gpus) and torch.cuda.is_available()
        if cfg.optim.sync_bn and not self.use_cuda:
            raise ConfigError(f"{cfg.source}: key 'optim.sync_bn': torch.nn.SyncBatchNorm runs on CUDA devices "
                              f"only, and this run is on the CPU; set it to false")

    def run(self):
        """Join the process group, train (or only evaluate) as ``Processor.run``, and always leave the group."""
        backend = "nccl" if self.use_cuda else "gloo"
        if self.use_cuda:
            if self.local_rank >= torch.cuda.device_count():
                raise RuntimeError(f"local rank {self.local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                                   f"start at most that many processes per node (--nproc_per_node)")
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(backend)
        try:
            return super().run()
        finally:
            dist.destroy_process_group()

    def _setup(self):
        super()._setup()
        self.log.info(f"DistributedDataParallel: {self.world_size} processes ({dist.get_backend()}), "
                      f"rank 0 on {self.device}{', SyncBatchNorm' if self.cfg.optim.sync_bn else ''}")

    def _pick_device(self):
        return torch.device("cuda", self.local_rank) if self.use_cuda else torch.device("cpu")

    def _prepare_model(self, model):
        if self.cfg.optim.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def _wrap(self, model):
        return DistributedDataParallel(model, device_ids=[self.local_rank] if self.use_cuda else None)

    def _gather(self, pred):
        shards = [None] * self.world_size
        dist.all_gather_object(shards, pred)
        if not self.is_main:
            return None
        merged = {k: np.concatenate([s[k] for s in shards]) for k in pred}
        # EpochSampler pads the ranks to equal length by repeating indices: keep each instance once,
        # in dataset order (as one process would have predicted them).
        _, first = np.unique(merged["indices"], return_index=True)
        return {k: v[first] for k, v in merged.items()}

    def _gather_list(self, items):
        lists = [None] * self.world_size
        dist.all_gather_object(lists, items)
        return [item for part in lists for item in part]

    def _all_reduce(self, values):
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def _broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _barrier(self):
        dist.barrier()

    def _sync_for_eval(self, module):
        # Without SyncBatchNorm each rank has its own BatchNorm statistics: evaluate rank 0's, the ones saved.
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)
