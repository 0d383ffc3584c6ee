"""Data set-up shared by the processors and tools: the synthetic dataset's paths and the loader workers."""
import math
import signal

import cv2
import torch
from torch.utils.data import Sampler

from .config import with_overrides


def with_synthetic_paths(cfg, progress=True):
    """``cfg`` itself, or (``data.use_synthetic``) a copy whose data paths point at the generated
    synthetic COCO-format dataset, generated first when it is not there yet."""
    if not cfg.data.use_synthetic:
        return cfg
    from datasets.synthetic import make_synthetic_coco
    syn = cfg.data.synthetic
    paths = make_synthetic_coco(syn.root, num_train=syn.num_train, num_val=syn.num_val,
                                image_size=tuple(syn.image_size[::-1]), seed=syn.seed, progress=progress)
    return with_overrides(cfg, data={"train_ann": paths["train_ann"], "train_img_root": paths["train_images"],
                                     "val_ann": paths["val_ann"], "val_img_root": paths["val_images"]})


def init_loader_worker(_):
    """DataLoader worker: no OpenCV thread pool (one per worker process already fills the cores; nested pools
    oversubscribe them), and Ctrl-C left to the main process, which saves a checkpoint before it stops.
    Augmentation needs no per-worker seed: each sample draws from its own (epoch seed, index) stream."""
    cv2.setNumThreads(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class EpochSampler(Sampler):
    """The dataset indices one process takes in one epoch.

    A permutation of ``range(size)`` drawn from ``(seed, epoch)`` (or the identity, ``shuffle=False``), padded by
    repeating its start to a multiple of ``world_size``, of which rank ``rank`` takes every ``world_size``-th
    (what ``DistributedSampler`` does; with one process it is a plain shuffle). ``set_epoch(epoch, start)``
    picks the epoch and skips its first ``start`` indices of this rank: a run resumed inside an epoch sees the
    rest of the same order.
    """

    def __init__(self, size, seed=0, rank=0, world_size=1, shuffle=True):
        self.size, self.seed, self.rank, self.world_size, self.shuffle = size, seed, rank, world_size, shuffle
        self.per_rank = math.ceil(size / world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        self.epoch, self.start = epoch, start

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        order += order[:self.per_rank * self.world_size - self.size]
        return iter(order[self.rank::self.world_size][self.start:])

    def __len__(self):
        return self.per_rank - self.start
