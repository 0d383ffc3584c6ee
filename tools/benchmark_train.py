"""Training throughput of an experiment's model, in images per second.

    python tools/benchmark_train.py --cfg configs/coco/res50_dconv_256x192.yaml --amp both --pipeline

``model`` rows time forward + loss + backward + optimiser step on random inputs of the config's
input size (no data loading); ``pipeline`` rows time the same through the real DataLoader on the
synthetic dataset (data.num_workers workers), which shows whether loading keeps up. Data paths
of the config are not needed. Prints a table and writes JSON with ``--json``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.coco import COCOKeypoints  # noqa: E402
from datasets.preprocess import Preprocess  # noqa: E402
from datasets.synthetic import make_synthetic_coco  # noqa: E402
from decoders import build_codec  # noqa: E402
from nets import build_model  # noqa: E402
from processors.config import ConfigError, validate  # noqa: E402
from processors.loaders import init_loader_worker  # noqa: E402


def load_without_data(path, synthetic_root):
    """The config with its data paths replaced by the synthetic dataset (so no COCO is needed)."""
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    data = raw.setdefault("data", {})
    for key in ("train_ann", "train_img_root", "val_ann", "val_img_root", "det_file"):
        data.pop(key, None)
    data.update({"use_synthetic": True, "boxes": "gt"})
    data.setdefault("synthetic", {})["root"] = synthetic_root
    raw.setdefault("model", {})["pretrained"] = ""
    raw.pop("val", None)
    return validate(raw, path)


def time_steps(model, batches, device, amp, iters, warmup):
    """Images/s over ``iters`` steps after ``warmup``; ``batches`` yields (images, target, weight)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    normalize = Preprocess((1, 1)).normalize  # ImageNet mean / std, as the training loop's default
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    model.train()
    seen, start = 0, None
    for step, (images, target, weight) in enumerate(batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        images, target, weight = (t.to(device, non_blocking=True) for t in (images, target, weight))
        images = normalize(images)
        with torch.autocast(device_type=device.type, enabled=amp):
            loss = model(images, target, weight)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        seen += len(images)
        if step + 1 == warmup + iters:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def random_batches(cfg, codec, batch_size, device):
    """Random images with the targets ``codec`` makes of random joints inside the crop."""
    h, w = cfg.data.input_size
    j = cfg.model.num_joints
    rng = np.random.default_rng(0)
    images = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, device=device)
    samples = [codec.encode(rng.uniform(0, 1, (j, 2)) * [w - 1, h - 1], np.ones(j)) for _ in range(batch_size)]
    target, weight = (torch.from_numpy(np.stack(t)).to(device) for t in zip(*samples))
    while True:
        yield images, target, weight


def pipeline_batches(loader):
    while True:
        for images, target, weight, _ in loader:
            yield images, target, weight


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfg", default="configs/sample.yaml")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", choices=("config", "on", "off", "both"), default="config")
    parser.add_argument("--pipeline", action="store_true", help="also time the real data pipeline")
    parser.add_argument("--synthetic-root", default="data/synthetic_bench")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--opencv-threads", action="store_true",
                        help="keep OpenCV's thread pool in loader workers (as a comparison)")
    args = parser.parse_args(argv)
    try:
        cfg = load_without_data(args.cfg, args.synthetic_root)
    except ConfigError as e:
        parser.error(str(e))
    device = torch.device("cuda", cfg.gpus[0]) if cfg.gpus and torch.cuda.is_available() else torch.device("cpu")
    torch.backends.cudnn.benchmark = True
    batch_size = args.batch_size or cfg.data.batch_size
    amps = {"config": [cfg.optim.amp], "on": [True], "off": [False], "both": [False, True]}[args.amp]
    amps = [a for a in amps if not a or device.type == "cuda"] or [False]
    model = build_model(cfg.model, cfg.loss).to(device)
    codec = build_codec(cfg)
    loader = None
    if args.pipeline:
        syn = cfg.data.synthetic
        paths = make_synthetic_coco(syn.root, num_train=syn.num_train, num_val=syn.num_val,
                                    image_size=tuple(syn.image_size[::-1]), seed=syn.seed)
        dataset = COCOKeypoints(paths["train_ann"], paths["train_images"], cfg.data, train=True, codec=codec)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                                             persistent_workers=cfg.data.num_workers > 0,
                                             worker_init_fn=None if args.opencv_threads else init_loader_worker)
    rows = []
    for amp in amps:
        sources = [("model", random_batches(cfg, codec, batch_size, device))]
        if loader is not None:
            sources.append(("pipeline", pipeline_batches(loader)))
        for kind, batches in sources:
            ips = time_steps(model, batches, device, amp, args.iters, args.warmup)
            rows.append({"config": args.cfg, "model": f"{cfg.model.type}/{cfg.model.name}",
                         "input": cfg.data.input_size, "batch": batch_size, "amp": amp, "kind": kind,
                         "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                         "workers": cfg.data.num_workers if kind == "pipeline" else None,
                         "opencv_threads_in_workers": args.opencv_threads if kind == "pipeline" else None,
                         "images_per_s": round(ips, 1)})
            print(f"{rows[-1]['model']:>18} {str(cfg.data.input_size):>10} batch {batch_size:4d} "
                  f"amp {str(amp):5} {kind:8} {ips:9.1f} img/s  ({rows[-1]['device']})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
