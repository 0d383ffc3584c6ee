"""Training throughput of an experiment's model, in images per second: the model alone and fed by its DataLoader.

    python tools/benchmark_train.py --cfg configs/coco/res50_dconv_256x192.yaml [--variants fp32 amp amp_cl
        amp_cl_compile] [--pipeline] [--device-targets both] [--batch-size 128] [--workers 16] [--data DIR]
        [--iters 30] [--warmup 10] [--json PATH] [--quick]

Every row times the training loop's step as ``processors.base`` runs it — uint8 crops normalised on the device,
``codec.batch_targets``, forward + loss under ``torch.autocast``, backward (with a GradScaler for float16),
Adam step — over ``--iters`` steps after ``--warmup`` (compilation and cuDNN autotuning happen there):

* variants: ``fp32``; ``amp`` (``optim.amp``: float16 + GradScaler on CUDA, bfloat16 on the CPU); ``amp_cl``
  (+ ``optim.channels_last``); ``amp_cl_compile`` (+ ``optim.compile``, ``torch.compile`` of the model);
* ``model`` rows feed one fixed batch from the device (random crops and the targets of random joints): what the
  GPU alone can do; ``pipeline`` rows feed batches from the real DataLoader (``--workers`` processes, pinned
  memory on CUDA) of the config's augmentation over ``--data`` (default ``../shared/data/coco_mini``, else a
  synthetic set), sampled with replacement so that any batch size has enough; with ``--device-targets both``
  once as configured and once with ``data.device_targets`` (the heatmaps drawn on the device).

Prints a markdown table (images/s and pipeline / model) and writes JSON (``--json``; default
``benchmarks/train_<device>.json`` unless ``--quick``). On CUDA, ``targets_met`` says whether the pipeline keeps
within 10 % of the model alone with AMP (issue 11's GPU target). ``--quick``: a smoke run (few steps).
"""
import argparse
import copy
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from datasets.coco import COCOKeypoints  # noqa: E402
from datasets.preprocess import Preprocess  # noqa: E402
from decoders import build_codec  # noqa: E402
from nets import build_model  # noqa: E402
from processors.config import ConfigError, load_config, with_overrides  # noqa: E402
from processors.loaders import init_loader_worker  # noqa: E402
from processors.optim import amp_dtype, grad_scaler  # noqa: E402
from tools.report import find_data, machine_facts, write_json  # noqa: E402

# variant -> (amp, channels_last, compile)
VARIANTS = {"fp32": (False, False, False), "amp": (True, False, False), "amp_cl": (True, True, False),
            "amp_cl_compile": (True, True, True)}
GPU_TARGET = 0.9  # the pipeline's images/s at least this share of the model's alone (AMP)


def bench_config(path, ann, images, batch_size, workers):
    """The experiment at ``path`` over the benchmark data (its augmentation and model kept; no initial weights)."""
    cfg = load_config(path, check_paths=False)
    data = {"train_ann": ann, "train_img_root": images, "val_ann": ann, "val_img_root": images,
            "use_synthetic": False, "boxes": "gt", "det_file": ""}
    if batch_size:
        data["batch_size"] = batch_size
    if workers is not None:
        data["num_workers"] = workers
    model = {**cfg.model.to_dict(), "pretrained": "", "init_backbone": "", "init_weights": ""}
    return with_overrides(cfg, data={**cfg.data.to_dict(), **data}, model=model)


class Step:
    """The training loop's step for one variant: ``step(images_uint8, target, weight)`` on ``device``."""

    def __init__(self, cfg, codec, device, amp, channels_last, compiled):
        self.device, self.codec = device, codec
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model(cfg.model, cfg.loss).to(device, memory_format=self.memory_format).train()
        self.net = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.scaler = grad_scaler(device, amp)
        self.autocast = {"device_type": device.type, "dtype": amp_dtype(device), "enabled": amp}
        self.normalize = Preprocess.from_config(cfg.data).normalize

    def __call__(self, images, target, weight):
        target, weight = self.codec.batch_targets(target.to(self.device, non_blocking=True),
                                                  weight.to(self.device, non_blocking=True))
        images = self.normalize(images.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)
        with torch.autocast(**self.autocast):
            loss = self.net(images, target, weight)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def images_per_s(step, batches, iters, warmup):
    """Images/s of ``step`` over ``iters`` batches of ``batches`` after ``warmup`` of them."""
    sync = torch.cuda.synchronize if step.device.type == "cuda" else (lambda: None)
    seen, start = 0, None
    for i, (images, target, weight) in enumerate(batches):
        if i == warmup:
            sync()
            start, seen = time.perf_counter(), 0
        step(images, target, weight)
        seen += len(images)
        if i + 1 == warmup + iters:
            break
    sync()
    return seen / (time.perf_counter() - start)


def fixed_batches(cfg, codec, device):
    """One batch on the device, again and again: random crops and the targets of random joints in the crop."""
    (w, h), j, b = cfg.data.input_wh, cfg.model.num_joints, cfg.data.batch_size
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (b, 3, h, w), dtype=np.uint8)).to(device)
    encoded = [codec.encode(rng.uniform(0, 1, (j, 2)) * [w - 1, h - 1], np.ones(j)) for _ in range(b)]
    target, weight = (torch.from_numpy(np.stack(t)).to(device) for t in zip(*encoded))
    while True:
        yield images, target, weight


def loader_batches(cfg, codec, device, steps):
    """Batches of the real training DataLoader, ``steps`` of them, sampled with replacement."""
    dataset = COCOKeypoints(cfg.data.train_ann, cfg.data.train_img_root, cfg.data, train=True, codec=codec)
    b, workers = cfg.data.batch_size, cfg.data.num_workers
    loader = DataLoader(dataset, batch_size=b, sampler=RandomSampler(dataset, replacement=True, num_samples=b * steps),
                        num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
                        worker_init_fn=init_loader_worker, prefetch_factor=4 if workers else None)
    for images, target, weight, _ in loader:
        yield images, target, weight


def run(cfg, variants, pipeline, device_targets, device, iters, warmup):
    """Rows of images/s for every variant: model alone, and through the DataLoader if ``pipeline``."""
    rows = []
    for variant in variants:
        amp, channels_last, compiled = VARIANTS[variant]
        feeds = [("model", cfg.data.device_targets)]
        if pipeline:
            feeds += [("pipeline", on) for on in device_targets]
        step = None
        for kind, on in feeds:
            run_cfg = with_overrides(cfg, data={**cfg.data.to_dict(), "device_targets": on})
            codec = build_codec(run_cfg)
            if step is None:
                step = Step(run_cfg, codec, device, amp, channels_last, compiled)
                weights = copy.deepcopy(step.model.state_dict())
            step.codec = codec
            step.model.load_state_dict(weights)  # every row starts from the same weights
            batches = (fixed_batches(run_cfg, codec, device) if kind == "model"
                       else loader_batches(run_cfg, codec, device, iters + warmup))
            rate = images_per_s(step, batches, iters, warmup)
            rows.append({"variant": variant, "amp": amp, "channels_last": channels_last, "compile": compiled,
                         "kind": kind, "device_targets": on, "images_per_s": round(rate, 1),
                         "workers": cfg.data.num_workers if kind == "pipeline" else None})
            print(f"  {variant:15} {kind:8} device_targets {str(on):5} {rate:9.1f} img/s", file=sys.stderr,
                  flush=True)
        del step
    for r in rows:
        model = next(m for m in rows if m["variant"] == r["variant"] and m["kind"] == "model")
        r["share_of_model"] = round(r["images_per_s"] / model["images_per_s"], 3)
    return rows


def markdown(rows, cfg, device_name):
    header = (f"{cfg.model.type}/{cfg.model.name} {cfg.data.input_size[0]}x{cfg.data.input_size[1]}, batch "
              f"{cfg.data.batch_size}, {device_name}")
    lines = [f"| variant ({header}) | feed | device_targets | images/s | share of model only |",
             "| --- | --- | --- | ---: | ---: |"]
    for r in rows:
        feed = "model only" if r["kind"] == "model" else f"DataLoader, {r['workers']} workers"
        lines.append(f"| {r['variant']} | {feed} | {str(r['device_targets']).lower()} | {r['images_per_s']:.0f} | "
                     f"{r['share_of_model']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfg", default="configs/coco/res50_dconv_256x192.yaml")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=None,
                        help="default: all on CUDA, fp32 and amp on the CPU")
    parser.add_argument("--pipeline", action="store_true", help="also time the real DataLoader")
    parser.add_argument("--device-targets", choices=("config", "on", "both"), default="both",
                        help="pipeline rows with the config's data.device_targets, with it on, or both")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--workers", type=int, default=None, help="default: the config's data.num_workers")
    parser.add_argument("--data", help="COCO-format folder (default ../shared/data/coco_mini, else synthetic)")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps after 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.warmup = 2, 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix="toppose-train-bench-") as tmp:
        ann, images, source = find_data(args.data, args.quick, os.path.join(tmp, "synthetic"))
        try:
            cfg = bench_config(args.cfg, ann, images, args.batch_size, args.workers)
        except ConfigError as e:
            parser.error(str(e))
        variants = args.variants or (list(VARIANTS) if device.type == "cuda" else ["fp32", "amp"])
        device_targets = {"config": [cfg.data.device_targets], "on": [True],
                          "both": sorted({cfg.data.device_targets, True})}[args.device_targets]
        load_start = os.getloadavg()
        rows = run(cfg, variants, args.pipeline, device_targets, device, args.iters, args.warmup)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    command = " ".join(["python tools/benchmark_train.py"] + list(sys.argv[1:] if argv is None else argv))
    result = {"command": command, "machine": machine_facts(), "device": device_name, "data": source,
              "load_avg": {"start": load_start, "end": os.getloadavg()}, "config": args.cfg,
              "model": f"{cfg.model.type}/{cfg.model.name}", "input_size": cfg.data.input_size,
              "batch": cfg.data.batch_size, "iters": args.iters, "warmup": args.warmup, "quick": args.quick,
              "rows": rows}
    amp_pipeline = [r for r in rows if r["kind"] == "pipeline" and r["amp"]]
    if device.type == "cuda" and amp_pipeline:
        best = max(amp_pipeline, key=lambda r: r["images_per_s"])
        result["targets_met"] = {"gpu_pipeline_within_10pct_amp": best["share_of_model"] >= GPU_TARGET}
    print(markdown(rows, cfg, device_name))
    json_path = args.json or (None if args.quick else os.path.join(ROOT, "benchmarks", f"train_{device.type}.json"))
    if json_path:
        write_json(result, json_path)
    return result


if __name__ == "__main__":
    main()
