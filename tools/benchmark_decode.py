"""CPU speed of heatmap decoding + back-projection: TopPose against the reference algorithms.

    python tools/benchmark_decode.py [--json PATH] [--quick] [--max-s 20]

Two pairs, each at batch 32 and 256 of 17x64x48 heatmaps, with 1 thread and with the default threads:

* ``dark``: ``decoders.decode_heatmaps(method="gauss_taylor", kernel=11)`` + ``decoders.to_image_coords(
  unbiased=True)`` against DarkPose's ``get_final_preds`` algorithm as published, written here in numpy + OpenCV:
  ``get_max_preds``; for every sample and joint: the map zero-padded by 5, ``cv2.GaussianBlur((11, 11), 0)``,
  cropped back and rescaled to the original maximum; ``np.log(np.maximum(hm, 1e-10))``; for every joint the
  Taylor step (finite differences at the argmax, Hessian inverse, in float32 as the reference); ``transform_preds``
  (DarkPose's affine, per joint).
* ``basic``: ``decode_heatmaps(method="basic")`` + ``to_image_coords`` against HRNet's ``get_final_preds``
  (``get_max_preds``, the per-joint quarter-offset loop, ``transform_preds``).

TopPose gets the heatmaps as a CPU float32 torch tensor (a model's output) and the boxes as torch tensors,
as ``processors.inference.decode_to_image`` does; the reference gets numpy arrays (a fresh copy each call,
made outside the timing, since DarkPose blurs its input in place). Inputs: ``datasets.targets`` Gaussians
(DarkPose's sub-pixel targets, sigma 2, joints anywhere on the map including its borders) times a random
amplitude, plus positive noise; random box centres and scales. Before timing, both sides of each pair must
give the same image coordinates to 1e-3 px (the tool stops otherwise).

Timing: warm-up, then rounds that each time the reference once and TopPose 5 times, alternating which goes
first, until 41 rounds or ``--max-s`` seconds per row; the medians are reported. "1 thread" sets
``torch.set_num_threads(1)`` and ``cv2.setNumThreads(1)``; "default" restores both libraries' defaults (TopPose's
CPU decoding is numpy, whose BLAS products are kept single-threaded). The host may be shared and noisy:
compare the ratios (measured in the same run), not absolute figures across runs. Prints a markdown table and
writes JSON (``--json``, default ``benchmarks/decode_cpu.json``). ``--quick`` is a smoke run (batches 2 and 4,
few rounds) that writes JSON only where ``--json`` says.
"""
import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.report import machine_facts, write_json  # noqa: E402
from datasets.targets import generate_heatmaps  # noqa: E402
from decoders import decode_heatmaps, to_image_coords  # noqa: E402

NUM_JOINTS, HM_W, HM_H, SIGMA, KERNEL = 17, 48, 64, 2.0, 11
PIXEL_STD = 200.0
TOLERANCE_PX = 1e-3
WORKS = {"dark": ("DARK decode + back-projection", "DarkPose get_final_preds"),
         "basic": ("basic decode + back-projection", "HRNet get_final_preds")}


# ---------------------------------------------------------------- reference algorithms (numpy + OpenCV)

def ref_get_max_preds(heatmaps):
    """Argmax of every map (first maximum), coords float32 (x, y), (0, 0) where the maximum is <= 0."""
    b, j, _, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, -1)
    idx = np.argmax(flat, 2).reshape(b, j, 1)
    maxvals = np.amax(flat, 2).reshape(b, j, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % w
    preds[:, :, 1] = np.floor(preds[:, :, 1] / w)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return preds, maxvals


def ref_affine_inv(center, scale, output_size, unbiased):
    """Heatmap -> image 2x3 matrix by the reference's three-point construction (rotation 0)."""
    src_w = scale[0] * PIXEL_STD
    dst_w, dst_h = output_size
    if unbiased:   # DarkPose: (W-1)/2 centre, (src_w - 1) <-> (dst_w - 1)
        src_dir = np.array([0, (src_w - 1) * -0.5], np.float32)
        dst_dir = np.array([0, (dst_w - 1) * -0.5], np.float32)
        dst_c = np.array([(dst_w - 1) * 0.5, (dst_h - 1) * 0.5], np.float32)
    else:          # HRNet: W/2 centre, src_w <-> dst_w
        src_dir = np.array([0, src_w * -0.5], np.float32)
        dst_dir = np.array([0, dst_w * -0.5], np.float32)
        dst_c = np.array([dst_w * 0.5, dst_h * 0.5], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0], dst[1] = dst_c, dst_c + dst_dir
    for pts in (src, dst):  # third point: the second turned 90 degrees about the first
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(dst, src)


def ref_transform_preds(coords, center, scale, output_size, unbiased):
    trans = ref_affine_inv(center, scale, output_size, unbiased)
    out = np.zeros(coords.shape)
    for p in range(coords.shape[0]):
        out[p, 0:2] = np.dot(trans, np.array([coords[p, 0], coords[p, 1], 1.0]))
    return out


def ref_hrnet_final_preds(heatmaps, center, scale):
    """HRNet ``get_final_preds`` with POST_PROCESS: image coords (B, J, 2), maxvals (B, J, 1)."""
    coords, maxvals = ref_get_max_preds(heatmaps)
    h, w = heatmaps.shape[2:]
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            hm = heatmaps[n][p]
            px, py = int(np.floor(coords[n][p][0] + 0.5)), int(np.floor(coords[n][p][1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[n][p] += np.sign(diff) * 0.25
    preds = coords.copy()
    for i in range(coords.shape[0]):
        preds[i] = ref_transform_preds(coords[i], center[i], scale[i], [w, h], unbiased=False)
    return preds, maxvals


def ref_gaussian_blur(hm, kernel):
    """DarkPose: every map zero-padded, cv2.GaussianBlur, cropped, rescaled to its original maximum (in place)."""
    border = (kernel - 1) // 2
    b, j, h, w = hm.shape
    for n in range(b):
        for p in range(j):
            origin_max = np.max(hm[n, p])
            dr = np.zeros((h + 2 * border, w + 2 * border))
            dr[border:-border, border:-border] = hm[n, p].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            hm[n, p] = dr[border:-border, border:-border].copy()
            hm[n, p] *= origin_max / np.max(hm[n, p])
    return hm


def ref_taylor(hm, coord):
    h, w = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < w - 2 and 1 < py < h - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
        if dxx * dyy - dxy ** 2 != 0:
            derivative = np.array([[dx], [dy]])
            hessian_inv = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]))
            coord += (-hessian_inv @ derivative)[:, 0]
    return coord


def ref_dark_final_preds(heatmaps, center, scale, kernel=KERNEL):
    """DarkPose ``get_final_preds`` (blurs ``heatmaps`` in place): image coords (B, J, 2), maxvals (B, J, 1)."""
    coords, maxvals = ref_get_max_preds(heatmaps)
    h, w = heatmaps.shape[2:]
    hm = ref_gaussian_blur(heatmaps, kernel)
    hm = np.log(np.maximum(hm, 1e-10))
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            coords[n, p] = ref_taylor(hm[n][p], coords[n][p])
    preds = coords.copy()
    for i in range(coords.shape[0]):
        preds[i] = ref_transform_preds(coords[i], center[i], scale[i], [w, h], unbiased=True)
    return preds, maxvals


# ---------------------------------------------------------------- TopPose

def toppose_final_preds(heatmaps, center, scale, method):
    coords, maxvals = decode_heatmaps(heatmaps, method=method, kernel=KERNEL)
    return to_image_coords(coords, center, scale, (HM_W, HM_H), unbiased=method == "gauss_taylor"), maxvals


# ---------------------------------------------------------------- inputs, agreement, timing

def make_inputs(batch, seed=0):
    """Heatmaps (B, 17, 64, 48) float32 > 0, centres and scales (B, 2) float32 like a detector's boxes."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(batch):
        joints = rng.uniform([-0.5, -0.5], [HM_W - 0.5, HM_H - 0.5], (NUM_JOINTS, 2))
        target, _ = generate_heatmaps(joints * [4, 4], np.ones(NUM_JOINTS), (4 * HM_W, 4 * HM_H),
                                      (HM_W, HM_H), SIGMA, unbiased=True)
        maps.append(target * rng.uniform(0.3, 1.0, (NUM_JOINTS, 1, 1)))
    heatmaps = np.stack(maps) + rng.uniform(0, 0.02, (batch, NUM_JOINTS, HM_H, HM_W))
    center = rng.uniform(100, 500, (batch, 2)).astype(np.float32)
    width = rng.uniform(0.5, 2.5, batch)
    scale = np.stack([width, width / 0.75], 1).astype(np.float32)
    return heatmaps.astype(np.float32), center, scale


def calls(work, heatmaps, center, scale):
    """(reference call, TopPose call) of ``work``. The reference call takes the heatmaps to decode (pass a
    copy: DarkPose blurs them in place); TopPose's decodes ``heatmaps`` as a CPU torch tensor."""
    ref = ref_dark_final_preds if work == "dark" else ref_hrnet_final_preds
    method = "gauss_taylor" if work == "dark" else "basic"
    hm_t, c_t, s_t = (torch.from_numpy(a) for a in (heatmaps, center, scale))
    return (lambda hm: ref(hm, center, scale)), (lambda: toppose_final_preds(hm_t, c_t, s_t, method))


def agreement(work, heatmaps, center, scale):
    """Max |reference - TopPose| over coordinates (image px) and maxvals; stops the tool above tolerance."""
    ref, ours = calls(work, heatmaps, center, scale)
    ref_xy, ref_max = ref(heatmaps.copy())
    xy, maxvals = ours()
    diff = float(np.abs(ref_xy - xy.numpy()).max())
    diff_max = float(np.abs(ref_max - maxvals.numpy()).max())
    if not (diff <= TOLERANCE_PX and diff_max == 0.0):
        raise AssertionError(f"{work}: TopPose and the reference disagree by {diff:.3g} px (maxvals by "
                             f"{diff_max:.3g}) at batch {len(heatmaps)}, above {TOLERANCE_PX} px")
    return diff


def time_pair(ref, ours, heatmaps, rounds, inner, warmup, max_s):
    """Median ms of the reference and of TopPose over interleaved rounds."""
    for _ in range(warmup):
        ref(heatmaps.copy())
        ours()
    ref_t, ours_t = [], []
    start = time.perf_counter()
    for r in range(rounds):
        copy = heatmaps.copy()
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            if side == 0:
                t = time.perf_counter()
                ref(copy)
                ref_t.append(time.perf_counter() - t)
            else:
                for _ in range(inner):
                    t = time.perf_counter()
                    ours()
                    ours_t.append(time.perf_counter() - t)
        if r + 1 >= 3 and time.perf_counter() - start > max_s:
            break
    return 1e3 * statistics.median(ref_t), 1e3 * statistics.median(ours_t), len(ref_t), len(ours_t)


def set_threads(threads, defaults):
    torch.set_num_threads(threads or defaults[0])
    cv2.setNumThreads(1 if threads == 1 else defaults[1])


def markdown(rows):
    lines = ["| work | batch | threads | reference | reference ms | TopPose ms | speed-up |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {WORKS[r['work']][0]} | {r['batch']} | {r['threads']} | {WORKS[r['work']][1]} | "
                     f"{r['reference_ms']:.2f} | {r['toppose_ms']:.3f} | {r['speedup']:.1f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="where to write the results (default: benchmarks/decode_cpu.json for a "
                                       "full run, nowhere for --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: batches 2 and 4, few rounds")
    parser.add_argument("--max-s", type=float, default=20.0, help="time budget per row, seconds (default 20)")
    args = parser.parse_args(argv)
    json_path = args.json or (None if args.quick else os.path.join(ROOT, "benchmarks", "decode_cpu.json"))

    batches, rounds, inner, warmup = ((2, 4), 2, 2, 1) if args.quick else ((32, 256), 41, 5, 2)
    defaults = (torch.get_num_threads(), cv2.getNumThreads())
    thread_settings = ((1, "1"), (None, f"default ({defaults[0]})"))
    load_start = os.getloadavg()
    rows, agree = [], {}
    try:
        for batch in batches:
            heatmaps, center, scale = make_inputs(batch)
            for work in WORKS:
                agree[f"{work}_batch{batch}_max_diff_px"] = agreement(work, heatmaps, center, scale)
                ref, ours = calls(work, heatmaps, center, scale)
                for threads, label in thread_settings:
                    set_threads(threads, defaults)
                    ref_ms, ours_ms, n_ref, n_ours = time_pair(ref, ours, heatmaps, rounds, inner, warmup,
                                                               args.max_s)
                    rows.append({"work": work, "batch": batch, "threads": label, "reference": WORKS[work][1],
                                 "reference_ms": round(ref_ms, 3), "toppose_ms": round(ours_ms, 4),
                                 "speedup": round(ref_ms / ours_ms, 2), "reference_reps": n_ref,
                                 "toppose_reps": n_ours})
                    print(f"  {work} batch {batch} threads {label}: reference {ref_ms:.2f} ms, "
                          f"TopPose {ours_ms:.3f} ms ({ref_ms / ours_ms:.1f}x)", file=sys.stderr, flush=True)
    finally:
        set_threads(None, defaults)
    rows.sort(key=lambda r: (r["work"] != "dark", r["batch"], r["threads"] != "1"))
    command = " ".join(["python tools/benchmark_decode.py"] + list(sys.argv[1:] if argv is None else argv))
    result = {"command": command,
              "machine": machine_facts(), "load_avg": {"start": load_start, "end": os.getloadavg()},
              "quick": args.quick, "heatmaps": [NUM_JOINTS, HM_H, HM_W], "kernel": KERNEL,
              "input": "CPU float32 torch tensor (TopPose) / numpy copy (reference)",
              "agreement": {"tolerance_px": TOLERANCE_PX, "passed": True, **agree}, "rows": rows}
    if not args.quick:   # issue 11: DARK >= 20x DarkPose in every row, basic >= 2x HRNet at batch 32 (default)
        result["targets_met"] = {
            "dark_20x": all(r["speedup"] >= 20 for r in rows if r["work"] == "dark"),
            "basic_2x_batch32_default": all(r["speedup"] >= 2 for r in rows if r["work"] == "basic"
                                            and r["batch"] == 32 and r["threads"] != "1")}
    print(markdown(rows))
    if "targets_met" in result:
        print("targets met: " + ", ".join(f"{k} {v}" for k, v in result["targets_met"].items()))
    if json_path:
        write_json(result, json_path)
    return result


if __name__ == "__main__":
    main()
