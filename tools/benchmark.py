"""Every speed figure of TopPose in one command, with the targets it is held to.

    python tools/benchmark.py [--only decode pipeline inference train] [--workers 2] [--quick] [--json PATH]

Sections (each is a tool of its own, run here with its defaults; see its docstring for the method):

* ``decode``: ``tools/benchmark_decode.py``: DARK and basic heatmap decoding + back-projection against DarkPose's
  and HRNet's ``get_final_preds`` (batch 32 and 256, 1 thread and the default threads);
* ``pipeline``: ``tools/benchmark_pipeline.py --workers N``: a training sample against HRNet's ``COCODataset``,
  with each speed option of the ``data`` section, in one process and through a DataLoader of N workers;
* ``inference``: ``tools/benchmark_inference.py``: ms per person and persons/s of every config family through
  ``Predictor`` at batch 1 and 32 (flip test on);
* ``train``: ``tools/benchmark_train.py --pipeline``: training images/s of the model alone and fed by the real
  DataLoader (with and without ``data.device_targets``); on CUDA ResNet-50 256x192 at batch 128 in fp32, AMP,
  AMP + channels_last and AMP + channels_last + ``torch.compile`` with up to 16 workers, on the CPU the sample
  model in fp32.

Data: ``../shared/data/coco_mini`` when present, else a synthetic COCO-format set. Each section prints its table
and writes its JSON (``benchmarks/<section>_*.json``); this command then prints the targets with the measured
ratios and writes everything to ``--json`` (default ``benchmarks/benchmark.json``). ``--quick`` is a smoke run of
every section on tiny sizes that writes only where ``--json`` says and judges no target. The host may be shared
and noisy: the ratios are measured within one run, against the reference code timed beside TopPose.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools import benchmark_decode, benchmark_inference, benchmark_pipeline, benchmark_train  # noqa: E402
from tools.report import machine_facts, write_json  # noqa: E402

SECTIONS = ("decode", "pipeline", "inference", "train")
TOOLS = {"decode": benchmark_decode, "pipeline": benchmark_pipeline, "inference": benchmark_inference,
         "train": benchmark_train}
QUICK_CONFIGS = ("configs/sample.yaml", "configs/sample_rle.yaml")


def section_args(name, quick, workers, tmp):
    """The command line of section ``name``'s tool."""
    out = ["--quick", "--json", os.path.join(tmp, f"{name}.json")] if quick else []
    if name == "pipeline":
        return out + ["--workers", str(workers)]
    if name == "inference":
        configs = [os.path.join(ROOT, p) for p in QUICK_CONFIGS]
        return out + (["--cfg", *configs, "--batches", "1", "2"] if quick else [])
    if name == "train":
        cuda = torch.cuda.is_available()
        if quick:
            return out + ["--cfg", os.path.join(ROOT, QUICK_CONFIGS[0]), "--pipeline", "--workers", "1",
                          "--batch-size", "4", "--variants", "fp32", "--device", "cpu"]
        if cuda:
            return ["--cfg", os.path.join(ROOT, "configs", "coco", "res50_dconv_256x192.yaml"), "--pipeline",
                    "--batch-size", "128", "--workers", str(min(16, os.cpu_count() or 1))]
        return ["--cfg", os.path.join(ROOT, QUICK_CONFIGS[0]), "--pipeline", "--workers", str(workers),
                "--variants", "fp32", "--iters", "10", "--warmup", "3"]
    return out


def target_rows(results):
    """``[{target, measured, met}]`` for the sections in ``results`` (``met`` None: not judged)."""
    rows = []
    decode = results.get("decode")
    if decode:
        dark = [r for r in decode["rows"] if r["work"] == "dark"]
        basic = [r for r in decode["rows"] if r["work"] == "basic" and r["threads"] != "1" and r["batch"] == 32]
        met = decode.get("targets_met", {})
        rows.append({"target": "DARK decoding >= 20x DarkPose (batch 32 and 256, 1 and default threads)",
                     "measured": ", ".join(f"{r['speedup']:.1f}x" for r in dark), "met": met.get("dark_20x")})
        rows.append({"target": "basic decoding >= 2x HRNet (batch 32, default threads)",
                     "measured": ", ".join(f"{r['speedup']:.1f}x" for r in basic) or "-",
                     "met": met.get("basic_2x_batch32_default")})
    pipeline = results.get("pipeline")
    if pipeline:
        one = {r["pipeline"]: r for r in pipeline["rows"] if r["workers"] == 0}
        met = pipeline.get("targets_met", {}) if not pipeline["quick"] else {}
        exact, options = (one[benchmark_pipeline.TARGETS[key][0]] for key in ("exact_1.3x", "options_2x"))
        rows.append({"target": "training data pipeline >= 1.3x HRNet's, pixels and targets unchanged (one process)",
                     "measured": f"{exact['speedup']:.2f}x", "met": met.get("exact_1.3x")})
        rows.append({"target": "training data pipeline >= 2x HRNet's with documented data options (one process)",
                     "measured": f"{options['speedup']:.2f}x ({options['pipeline']})", "met": met.get("options_2x")})
    train = results.get("train")
    if train:
        if "targets_met" in train:
            best = max((r for r in train["rows"] if r["kind"] == "pipeline" and r["amp"]),
                       key=lambda r: r["images_per_s"])
            rows.append({"target": f"GPU: DataLoader within 10 % of the model alone, ResNet-50 AMP ({train['device']})",
                         "measured": f"{best['share_of_model']:.2f} of model-only ({best['variant']}, device_targets "
                                     f"{str(best['device_targets']).lower()})",
                         "met": train["targets_met"]["gpu_pipeline_within_10pct_amp"]})
        else:
            rows.append({"target": "GPU: DataLoader within 10 % of the model alone, ResNet-50 AMP",
                         "measured": f"not measured: no CUDA device ({train['device']})", "met": None})
    inference = results.get("inference")
    if inference:
        got = {(r["config"], r["batch"]) for r in inference["rows"]}
        configs = sorted({r["config"] for r in inference["rows"]})
        complete = all((c, b) in got for c in configs for b in (1, 32))
        rows.append({"target": "inference images/s and ms per person of every config family, batch 1 and 32 (CPU)",
                     "measured": f"{len(configs)} configs x batches {sorted({b for _, b in got})}",
                     "met": complete if not inference["quick"] else None})
    return rows


def markdown(rows):
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(f"| {r['target']} | {r['measured']} | {met} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the CPU pipeline rows")
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny sizes; no target judged")
    parser.add_argument("--json", help="default: benchmarks/benchmark.json for a full run, nowhere for --quick")
    args = parser.parse_args(argv)
    json_path = args.json or (None if args.quick else os.path.join(ROOT, "benchmarks", "benchmark.json"))
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="toppose-bench-") as tmp:
        for name in SECTIONS:
            if name not in args.only:
                continue
            print(f"\n## {name}\n", flush=True)
            start = time.perf_counter()
            results[name] = TOOLS[name].main(section_args(name, args.quick, args.workers, tmp))
            seconds[name] = round(time.perf_counter() - start, 1)
    rows = target_rows(results)
    print("\n## targets\n\n" + markdown(rows))
    command = " ".join(["python tools/benchmark.py"] + list(sys.argv[1:] if argv is None else argv))
    result = {"command": command, "machine": machine_facts(), "quick": args.quick, "seconds": seconds,
              "targets": rows, "sections": results}
    if json_path:
        write_json(result, json_path)
    return result


if __name__ == "__main__":
    main()
