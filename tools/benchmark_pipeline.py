"""CPU speed of the training data pipeline: samples per second of one process, TopPose against HRNet's.

    python tools/benchmark_pipeline.py [--data DIR] [--workers N] [--json PATH] [--quick] [--max-s 240]

One training sample at 256x192 with the reference augmentation (flip, scale 0.35, rotation 45 with
probability 0.6, half-body 0.3 above 8 visible joints), from the image file to the tensors a batch is made of:

* ``reference``: HRNet's ``COCODataset`` (``JointsDataset.__getitem__``) as published, written here:
  ``cv2.imread`` + ``cvtColor``, half-body, scale and rotation, the flip as ``image[:, ::-1]`` + ``fliplr_joints``
  (OpenCV copies the reversed view), ``get_affine_transform``, ``cv2.warpAffine``, torchvision ``ToTensor`` +
  ``Normalize``, the joints one by one through ``affine_transform`` and the per-joint ``generate_target``.
  Three changes, none of them a measurable cost: its draws come from the same per-sample generator as
  TopPose's (so both sides crop the same boxes; HRNet draws from ``np.random`` / ``random`` in the same
  order), the scale multiplier is cast to float32 as numpy 1.x did (numpy 2 would turn the scale into
  float64), and the record's centre is copied before the flip (HRNet flips it in place, in its database).
* ``TopPose exact``: ``datasets.coco.COCOKeypoints`` with the default configuration (uint8 crop, normalised
  later on the training device).
* the speed options of the ``data`` section, each adding to the one before: ``decode_rows`` (baseline JPEGs
  decoded only down to the lowest row the crop reads; pixels unchanged), ``decode_reduce`` 1 and 0.5
  (JPEGs decoded at 1/2, 1/4 or 1/8 size when the crop samples them sparsely; pixels change a little,
  joints and targets do not) and ``device_targets`` (the sample carries the crop's joints, 0.4 KB, instead of
  209 KB of heatmaps; the training loop draws the same heatmaps for the whole batch on its device: that work
  is not in this row's samples/s, the JSON gives its CPU time per batch of 32 as ``device_targets_cpu_ms``).

Records: TopPose's ground-truth instances (HRNet's rules; parity-tested) of ``--data`` (default
``../shared/data/coco_mini``; the synthetic set of ``datasets.synthetic`` at 640x480 when it is absent). Before
timing the tool checks, for two epoch seeds, that the reference and TopPose exact give the same crops (the
reference's uint8 warp) and targets, that ``decode_rows`` changes no pixel, and measures how far the
``decode_reduce`` crops are from the exact ones (mean absolute difference, grey levels); it stops if a check
fails. Timing: one warm-up pass, then rounds in which every row runs one pass over all records (the same epoch
seed for all rows of a round, a new one each round, the order of the rows rotated), until the rounds are done
or ``--max-s``; reported: the median samples/s of each row and the median over rounds of its speed-up over the
reference of the same round. One thread for OpenCV and torch (as in a DataLoader worker). ``--workers N`` adds
DataLoader rows (N worker processes, batches of 32, 8 epochs a measurement, 3 rounds). The host may be shared
and noisy: compare the ratios (measured in the same run), not absolute figures across runs. Prints a markdown
table and writes JSON (``--json``, default ``benchmarks/pipeline_cpu.json``); ``--quick`` is a smoke run (16
records, 2 rounds) that writes JSON only where ``--json`` says.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from datasets.coco import COCOKeypoints  # noqa: E402
from datasets.coco_meta import FLIP_PAIRS, UPPER_BODY_IDS  # noqa: E402
from decoders import build_codec  # noqa: E402
from processors.config import validate  # noqa: E402
from processors.loaders import init_loader_worker  # noqa: E402
from tools.report import find_data, machine_facts, write_json  # noqa: E402

INPUT_WH, HEATMAP_WH, SIGMA = (192, 256), (48, 64), 2
# (row name, data-section options, what it is)
ROWS = (("TopPose exact", {}, "default configuration: the reference's pixels and targets"),
        ("+ decode_rows", {"decode_rows": True}, "pixels unchanged"),
        ("+ decode_reduce 1", {"decode_rows": True, "decode_reduce": 1.0}, "pixels change a little"),
        ("+ decode_reduce 0.5", {"decode_rows": True, "decode_reduce": 0.5}, "pixels change more"),
        ("+ device_targets", {"decode_rows": True, "decode_reduce": 0.5, "device_targets": True},
         "as above; heatmaps drawn on the training device"))
ROWS_OPTIONS = {name: options for name, options, _ in ROWS}
REFERENCE = "reference"
# issue 11's targets: (row, least speed-up over the reference in one process); the options row is the one with
# every documented option on
TARGETS = {"exact_1.3x": ("TopPose exact", 1.3), "options_2x": ("+ device_targets", 2.0)}


# ---------------------------------------------------------------- reference (HRNet COCODataset, training)

class Draws:
    """``np.random.rand`` / ``np.random.randn`` / ``random.random`` of the reference, drawn from one generator."""

    def __init__(self, rng):
        self.rng = rng

    def rand(self):
        return self.rng.random()

    def randn(self):
        return self.rng.standard_normal()

    def random(self):
        return self.rng.random()


def ref_get_dir(src_point, rot_rad):
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]


def ref_get_3rd_point(a, b):
    direct = a - b
    return b + np.array([-direct[1], direct[0]], dtype=np.float32)


def ref_get_affine_transform(center, scale, rot, output_size):
    scale_tmp = scale * 200.0
    src_w = scale_tmp[0]
    dst_w, dst_h = output_size
    rot_rad = np.pi * rot / 180
    src_dir = ref_get_dir([0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + src_dir
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2:, :] = ref_get_3rd_point(src[0, :], src[1, :])
    dst[2:, :] = ref_get_3rd_point(dst[0, :], dst[1, :])
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def ref_affine_transform(pt, t):
    new_pt = np.array([pt[0], pt[1], 1.0]).T
    return np.dot(t, new_pt)[:2]


def ref_fliplr_joints(joints, joints_vis, width, matched_parts):
    joints[:, 0] = width - joints[:, 0] - 1
    for a, b in matched_parts:
        joints[a, :], joints[b, :] = joints[b, :], joints[a, :].copy()
        joints_vis[a, :], joints_vis[b, :] = joints_vis[b, :], joints_vis[a, :].copy()
    return joints * joints_vis, joints_vis


class ReferenceCOCO(Dataset):
    """HRNet's training sample over TopPose's records; ``ReferenceCOCO(db)[i]`` -> ``(input, target,
    target_weight, meta)`` as HRNet returns them, ``sample(i)`` also gives the uint8 crop."""

    def __init__(self, db, num_joints=17):
        self.db = [{"image": r["image"], "center": r["center"], "scale": r["scale"],
                    "joints_3d": np.concatenate([r["joints"], np.zeros((len(r["joints"]), 1))], axis=1),
                    "joints_3d_vis": np.repeat(r["joints_vis"][:, None], 3, axis=1)} for r in db]
        self.num_joints = num_joints
        self.image_size, self.heatmap_size = np.array(INPUT_WH), np.array(HEATMAP_WH)
        self.sigma, self.aspect_ratio, self.pixel_std = SIGMA, INPUT_WH[0] / INPUT_WH[1], 200
        self.scale_factor, self.rotation_factor = 0.35, 45
        self.prob_half_body, self.num_joints_half_body, self.flip = 0.3, 8, True
        self.transform = T.Compose([T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406],
                                                               std=[0.229, 0.224, 0.225])])
        self.set_epoch_seed(0)

    def set_epoch_seed(self, seed):
        self.epoch_seed = [int(v) for v in np.atleast_1d(seed)]

    def __len__(self):
        return len(self.db)

    def __getitem__(self, idx):
        return self.sample(idx)[:4]

    def half_body_transform(self, joints, joints_vis, draws):
        upper_joints, lower_joints = [], []
        for joint_id in range(self.num_joints):
            if joints_vis[joint_id][0] > 0:
                if joint_id in UPPER_BODY_IDS:
                    upper_joints.append(joints[joint_id])
                else:
                    lower_joints.append(joints[joint_id])
        if draws.randn() < 0.5 and len(upper_joints) > 2:
            selected_joints = upper_joints
        else:
            selected_joints = lower_joints if len(lower_joints) > 2 else upper_joints
        if len(selected_joints) < 2:
            return None, None
        selected_joints = np.array(selected_joints, dtype=np.float32)
        center = selected_joints.mean(axis=0)[:2]
        left_top = np.amin(selected_joints, axis=0)
        right_bottom = np.amax(selected_joints, axis=0)
        w = right_bottom[0] - left_top[0]
        h = right_bottom[1] - left_top[1]
        if w > self.aspect_ratio * h:
            h = w * 1.0 / self.aspect_ratio
        elif w < self.aspect_ratio * h:
            w = h * self.aspect_ratio
        scale = np.array([w * 1.0 / self.pixel_std, h * 1.0 / self.pixel_std], dtype=np.float32)
        return center, scale * 1.5

    def generate_target(self, joints, joints_vis):
        target_weight = np.ones((self.num_joints, 1), dtype=np.float32)
        target_weight[:, 0] = joints_vis[:, 0]
        target = np.zeros((self.num_joints, self.heatmap_size[1], self.heatmap_size[0]), dtype=np.float32)
        tmp_size = self.sigma * 3
        for joint_id in range(self.num_joints):
            feat_stride = self.image_size / self.heatmap_size
            mu_x = int(joints[joint_id][0] / feat_stride[0] + 0.5)
            mu_y = int(joints[joint_id][1] / feat_stride[1] + 0.5)
            ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
            br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
            if ul[0] >= self.heatmap_size[0] or ul[1] >= self.heatmap_size[1] or br[0] < 0 or br[1] < 0:
                target_weight[joint_id] = 0
                continue
            size = 2 * tmp_size + 1
            x = np.arange(0, size, 1, np.float32)
            y = x[:, np.newaxis]
            x0 = y0 = size // 2
            g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * self.sigma ** 2))
            g_x = max(0, -ul[0]), min(br[0], self.heatmap_size[0]) - ul[0]
            g_y = max(0, -ul[1]), min(br[1], self.heatmap_size[1]) - ul[1]
            img_x = max(0, ul[0]), min(br[0], self.heatmap_size[0])
            img_y = max(0, ul[1]), min(br[1], self.heatmap_size[1])
            if target_weight[joint_id] > 0.5:
                target[joint_id][img_y[0]:img_y[1], img_x[0]:img_x[1]] = g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
        return target, target_weight

    def sample(self, idx):
        draws = Draws(np.random.default_rng(self.epoch_seed + [idx]))
        db_rec = self.db[idx]
        image_file = db_rec["image"]
        data_numpy = cv2.imread(image_file, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        data_numpy = cv2.cvtColor(data_numpy, cv2.COLOR_BGR2RGB)
        joints = db_rec["joints_3d"].copy()
        joints_vis = db_rec["joints_3d_vis"].copy()
        c = db_rec["center"].copy()
        s = db_rec["scale"]
        if np.sum(joints_vis[:, 0]) > self.num_joints_half_body and draws.rand() < self.prob_half_body:
            c_half_body, s_half_body = self.half_body_transform(joints, joints_vis, draws)
            if c_half_body is not None and s_half_body is not None:
                c, s = c_half_body, s_half_body
        sf, rf = self.scale_factor, self.rotation_factor
        s = s * np.float32(np.clip(draws.randn() * sf + 1, 1 - sf, 1 + sf))
        r = np.clip(draws.randn() * rf, -rf * 2, rf * 2) if draws.random() <= 0.6 else 0
        if self.flip and draws.random() <= 0.5:
            data_numpy = data_numpy[:, ::-1, :]
            joints, joints_vis = ref_fliplr_joints(joints, joints_vis, data_numpy.shape[1], FLIP_PAIRS)
            c[0] = data_numpy.shape[1] - c[0] - 1
        trans = ref_get_affine_transform(c, s, r, self.image_size)
        crop = cv2.warpAffine(data_numpy, trans, (int(self.image_size[0]), int(self.image_size[1])),
                              flags=cv2.INTER_LINEAR)
        inputs = self.transform(crop)
        for i in range(self.num_joints):
            if joints_vis[i, 0] > 0.0:
                joints[i, 0:2] = ref_affine_transform(joints[i, 0:2], trans)
        target, target_weight = self.generate_target(joints, joints_vis)
        meta = {"image": image_file, "filename": "", "imgnum": 0, "joints": joints, "joints_vis": joints_vis,
                "center": c, "scale": s, "rotation": r, "score": 1}
        return inputs, torch.from_numpy(target), torch.from_numpy(target_weight), meta, crop


# ---------------------------------------------------------------- the datasets, agreement, timing

def data_config(ann, images, **options):
    """The ``data`` section at 256x192 with the default (reference) augmentation, plus speed ``options``."""
    return validate({"data": {"train_ann": ann, "train_img_root": images, "val_ann": ann, "val_img_root": images,
                              "input_size": [INPUT_WH[1], INPUT_WH[0]], "heatmap_size": [HEATMAP_WH[1], HEATMAP_WH[0]],
                              "sigma": SIGMA, **options}})


def build_rows(ann, images, limit=None):
    """``{row name: dataset}``: the reference and every TopPose row of ``ROWS``, over the same records."""
    sets = {}
    for name, options, _ in ROWS:
        cfg = data_config(ann, images, **options)
        sets[name] = COCOKeypoints(ann, images, cfg.data, train=True, codec=build_codec(cfg))
        if limit:
            sets[name].db = sets[name].db[:limit]
    return {REFERENCE: ReferenceCOCO(sets["TopPose exact"].db), **sets}


def agreement(sets, seeds=(101, 102)):
    """Check the rows against each other (stops the tool on a failure); returns what was measured."""
    ref, exact = sets[REFERENCE], sets["TopPose exact"]
    diffs = {name: [] for name, _, _ in ROWS[1:]}
    for seed in seeds:
        for ds in sets.values():
            ds.set_epoch_seed(seed)
        for i in range(len(exact)):
            _, r_target, r_weight, _, r_crop = ref.sample(i)
            crop, target, weight, _ = exact[i]
            crop = crop.numpy().transpose(1, 2, 0)
            if not (np.array_equal(crop, r_crop) and np.array_equal(target.numpy(), r_target.numpy())
                    and np.array_equal(weight.numpy(), r_weight.numpy())):
                raise AssertionError(f"TopPose exact and the reference disagree on record {i} (epoch seed {seed}): "
                                     f"crop max diff {np.abs(crop.astype(int) - r_crop).max()}")
            for name in diffs:
                o_crop, o_target, o_weight, _ = sets[name][i]
                o_target, o_weight = (t[0] for t in sets[name].codec.batch_targets(o_target[None], o_weight[None]))
                if not (np.array_equal(o_target.numpy(), target.numpy()) and
                        np.array_equal(o_weight.numpy(), weight.numpy())):
                    raise AssertionError(f"{name}: targets differ from TopPose exact on record {i} (seed {seed})")
                diffs[name].append(np.abs(o_crop.numpy().transpose(1, 2, 0).astype(np.int16) - crop).mean())
    result = {"samples_checked": len(seeds) * len(exact), "reference_equals_exact": True}
    for name, values in diffs.items():
        result[name] = {"mean_abs_diff": round(float(np.mean(values)), 4),
                        "max_mean_abs_diff": round(float(np.max(values)), 4),
                        "changed_samples": int(np.count_nonzero(values))}
        if not ROWS_OPTIONS[name].get("decode_reduce") and np.max(values) > 0:
            raise AssertionError(f"{name} changed pixels (mean abs diff up to {np.max(values):.3g})")
    return result


def one_pass(ds, seed):
    """Samples/s of one pass over every record of ``ds`` (epoch seed ``seed``)."""
    ds.set_epoch_seed(seed)
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds) / (time.perf_counter() - start)


def time_rows(sets, rounds, max_s):
    """``({row: [samples/s]}, {row: [speed-up over the reference of the same round]})``."""
    names = list(sets)
    for name in names:  # warm-up: file cache, allocations
        one_pass(sets[name], 0)
    rates = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            rates[name].append(one_pass(sets[name], 1000 + r))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names), file=sys.stderr,
              flush=True)
        if r + 1 >= 3 and time.perf_counter() - start > max_s:
            break
    ratios = {name: [v / ref for v, ref in zip(rates[name], rates[REFERENCE])] for name in names}
    return rates, ratios


def loader_rate(ds, workers, epochs, batch_size=32):
    """Samples/s through a DataLoader with ``workers`` processes over ``epochs`` epochs (after one warm-up)."""
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, worker_init_fn=init_loader_worker,
                        persistent_workers=workers > 0, shuffle=False)
    for _ in loader:  # warm-up: worker start
        pass
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            seen += len(batch[0])
    rate = seen / (time.perf_counter() - start)
    del loader
    return rate


def time_loaders(sets, workers, rounds, epochs):
    """As ``time_rows``, through DataLoaders of ``workers`` processes (a round: every row once, order rotated)."""
    names = list(sets)
    rates = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rates[name].append(loader_rate(sets[name], workers, epochs))
        print(f"  loaders round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names),
              file=sys.stderr, flush=True)
    return rates, {name: [v / ref for v, ref in zip(rates[name], rates[REFERENCE])] for name in names}


def device_targets_ms(ds, batch_size=32, reps=20):
    """Median ms of ``codec.batch_targets`` on this CPU for a batch of ``ds``'s (device_targets) samples."""
    samples = [ds[i % len(ds)] for i in range(batch_size)]
    target, weight = (torch.stack([s[k] for s in samples]) for k in (1, 2))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        ds.codec.batch_targets(target, weight)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def markdown(rows):
    lines = ["| pipeline | data options | pixels | DataLoader workers | samples/s | speed-up |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        options = ", ".join(f"{k}: {str(v).lower()}" for k, v in r["options"].items()) or "-"
        lines.append(f"| {r['pipeline']} | {options} | {r['pixels']} | {r['workers'] or '- (one process)'} | "
                     f"{r['samples_per_s']:.0f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="COCO-format folder with annotations/person_keypoints_train2017.json and "
                                       "train2017/ (default ../shared/data/coco_mini; else a synthetic set)")
    parser.add_argument("--workers", type=int, default=0, help="also time DataLoaders with this many workers")
    parser.add_argument("--json", help="where to write the results (default: benchmarks/pipeline_cpu.json for a "
                                       "full run, nowhere for --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 records, 2 rounds")
    parser.add_argument("--max-s", type=float, default=240.0, help="time budget of the one-process rounds, "
                                                                    "seconds (default 240)")
    args = parser.parse_args(argv)
    json_path = args.json or (None if args.quick else os.path.join(ROOT, "benchmarks", "pipeline_cpu.json"))
    rounds = 2 if args.quick else 31

    threads = (torch.get_num_threads(), cv2.getNumThreads())
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="toppose-bench-") as tmp:
        ann, images, source = find_data(args.data, args.quick, os.path.join(tmp, "synthetic"))
        sets = build_rows(ann, images, limit=16 if args.quick else None)
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        try:
            agree = agreement(sets)
            rates, ratios = time_rows(sets, rounds, args.max_s)
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
        pixels = {REFERENCE: "reference", **{name: what for name, _, what in ROWS}}
        rows = [{"pipeline": name, "options": ROWS_OPTIONS.get(name, {}), "pixels": pixels[name], "workers": 0,
                 "samples_per_s": round(statistics.median(rates[name]), 1),
                 "speedup": round(statistics.median(ratios[name]), 3), "rounds": len(rates[name])}
                for name in sets]
        if args.workers:
            rates, ratios = time_loaders(sets, args.workers, rounds=1 if args.quick else 3,
                                         epochs=2 if args.quick else 8)
            rows += [{"pipeline": name, "options": ROWS_OPTIONS.get(name, {}), "pixels": pixels[name],
                      "workers": args.workers, "samples_per_s": round(statistics.median(rates[name]), 1),
                      "speedup": round(statistics.median(ratios[name]), 3), "rounds": len(rates[name])}
                     for name in sets]
    command = " ".join(["python tools/benchmark_pipeline.py"] + list(sys.argv[1:] if argv is None else argv))
    result = {"command": command, "machine": machine_facts(),
              "load_avg": {"start": load_start, "end": os.getloadavg()}, "quick": args.quick, "data": source,
              "records": len(sets[REFERENCE]), "input_wh": list(INPUT_WH), "heatmap_wh": list(HEATMAP_WH),
              "augment": "flip, scale 0.35, rotation 45 (probability 0.6), half-body 0.3",
              "threads": "1 (OpenCV and torch)", "agreement": agree, "rows": rows}
    one = {r["pipeline"]: r for r in rows if r["workers"] == 0}
    result["targets_met"] = {key: one[name]["speedup"] >= need for key, (name, need) in TARGETS.items()}
    result["device_targets_cpu_ms"] = round(device_targets_ms(sets["+ device_targets"]), 3)
    print(markdown(rows))
    if not args.quick:
        print("targets met: " + ", ".join(f"{k} {v}" for k, v in result["targets_met"].items()))
    if json_path:
        write_json(result, json_path)
    return result


if __name__ == "__main__":
    main()
