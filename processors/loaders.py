"""Data set-up shared by the processors and tools: the synthetic dataset's paths and the loader workers."""
import cv2
from torch.utils.data import get_worker_info

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
    """DataLoader worker: its own augmentation stream (from the loader's seed, so per epoch and per
    rank), and no OpenCV thread pool (one per worker process already fills the cores; nested pools
    oversubscribe them)."""
    cv2.setNumThreads(0)
    info = get_worker_info()
    info.dataset.set_epoch_seed(info.seed % 2 ** 63)
