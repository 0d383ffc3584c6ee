"""Size, compute and CPU latency of the COCO pose models, beside the published figures.

    python tools/model_facts.py [--cfg configs/coco/A.yaml ...] [--reps 5] [--threads N]
        [--out benchmarks/model_facts.json]

For every config (default: all of ``configs/coco/``) the model is built as the config says (random
weights; ``model.pretrained`` is not read) and measured at the config's input size, batch 1:

- parameters of the network (RLE's training-only flow left out), in millions;
- GFLOPs as the HRNet / SimpleBaseline tables count them: multiply-accumulates of the convolutions,
  transposed convolutions and linear layers, i.e. ``torch.utils.flop_counter.FlopCounterMode``'s total
  divided by 2 (FlopCounterMode counts a multiply-add as 2 FLOPs; the JSON keeps both);
- CPU latency: median of ``--reps`` forwards (after one warm-up) under ``torch.inference_mode``, in ms,
  with ``--threads`` torch threads (default: torch's).

Prints a markdown table (with the published parameters, GFLOPs and AP where there are some) and writes
the rows and the machine's facts to JSON. The host may be shared: the JSON keeps its load averages.
"""
import argparse
import datetime
import glob
import os
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.report import write_json  # noqa: E402
from nets import build_model  # noqa: E402
from processors.config import load_config  # noqa: E402

# config name -> published (parameters M, GFLOPs as multiply-accumulates, COCO val2017 AP); None = unpublished.
# HRNet / SimpleBaseline: the official README (AP-56 detections, flip test); DUC / SE: the seed tool's table.
PUBLISHED = {
    "res50_dconv_256x192": (34.0, 8.9, 70.4),
    "res101_dconv_256x192": (53.0, 12.4, 71.4),
    "res152_dconv_256x192": (68.6, 15.7, 72.0),
    "hrnet_w32_256x192": (28.5, 7.1, 74.4),
    "hrnet_w32_384x288": (28.5, 16.0, 75.8),
    "hrnet_w48_256x192": (63.6, 14.6, 75.1),
    "res50_duc_256x192": (None, None, 70.9),
    "se_res50_dconv_256x192": (None, None, 71.7),
    "se_res50_duc_256x192": (None, None, 71.8),
}


def config_facts(path, reps):
    """One row of facts for the config at ``path``."""
    cfg = load_config(path, check_paths=False)
    model = build_model(cfg.model, initialise=False).eval()
    h, w = cfg.data.input_size
    images = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    params = sum(p.numel() for n, p in model.named_parameters() if ".loss_module." not in n)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode():
        with counter:
            model(images)
        model(images)  # warm-up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    flops = counter.get_total_flops()
    name = os.path.splitext(os.path.basename(path))[0]
    published = PUBLISHED.get(name, (None, None, None))
    return {"config": name, "model": f"{cfg.model.type} {('se-' if cfg.model.se else '')}{cfg.model.name}",
            "input_hw": [h, w], "params": params, "params_m": round(params / 1e6, 2),
            "flops_counter": flops, "gflops_mac": round(flops / 2e9, 2),
            "cpu_ms_batch1": round(1e3 * statistics.median(times), 1), "reps": reps,
            "published_params_m": published[0], "published_gflops": published[1], "published_ap": published[2]}


def cpu_name():
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return names[0]
    return platform.processor() or platform.machine()


def markdown(rows):
    def cell(value):
        return "–" if value is None else f"{value}"
    lines = ["| config | model | input | params (M) | GFLOPs (MACs) | CPU ms, batch 1 | "
             "published params / GFLOPs / AP |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['model']} | {r['input_hw'][0]}x{r['input_hw'][1]} | "
                     f"{r['params_m']:.2f} | {r['gflops_mac']:.2f} | {r['cpu_ms_batch1']:.0f} | "
                     f"{cell(r['published_params_m'])} / {cell(r['published_gflops'])} / {cell(r['published_ap'])} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfg", nargs="+", help="config files (default: every configs/coco/*.yaml)",
                        default=sorted(glob.glob(os.path.join(ROOT, "configs", "coco", "*.yaml"))))
    parser.add_argument("--reps", type=int, default=5, help="timed forwards per model (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "model_facts.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    rows = []
    for path in args.cfg:
        rows.append(config_facts(path, args.reps))
        r = rows[-1]
        print(f"  {r['config']}: {r['params_m']} M, {r['gflops_mac']} GFLOPs, {r['cpu_ms_batch1']} ms",
              flush=True)
    print(markdown(rows))
    facts = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                         "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")},
             "load_avg": {"start": load_start, "end": os.getloadavg()},
             "gflops": "multiply-accumulates of conv / deconv / linear layers = FlopCounterMode total / 2",
             "rows": rows}
    write_json(facts, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
