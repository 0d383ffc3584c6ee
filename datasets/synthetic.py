"""Synthetic COCO person-keypoints dataset: cluttered images of articulated, frontal figures.

``make_synthetic_coco(root, ...)`` writes ``root/train/*.jpg``, ``root/val/*.jpg`` and
``root/annotations/person_keypoints_{train,val}.json`` (COCO format, 17 joints in
``coco_meta.KEYPOINT_NAMES`` order, pixel centres at integer coordinates) and reuses them while
``root/manifest.json`` matches the requested parameters. Every image is drawn from its own
``numpy.random.default_rng((seed, split, index))``, so a dataset is reproducible image by image.

Figures face the camera (their left side is on the image's right); left limbs are warm-hued and
striped, right limbs cool-hued and speckled (see ``synthetic_draw``). Visibility follows COCO:
v=2 visible, v=1 inside the image but covered by a later person or an occluder, v=0 outside the
image (x = y = 0). Each person's ``bbox`` / ``area`` come from its full drawn mask, clipped to the
image. CLI: ``python -m datasets.synthetic --root /tmp/x --num-train 8 --num-val 4 --preview p.png``.
"""
import argparse
import json
import multiprocessing
import os
import shutil

import cv2
import numpy as np
from tqdm import tqdm

from datasets.coco_meta import KEYPOINT_NAMES, NUM_JOINTS, SKELETON
from datasets.draw import draw_skeleton, tile, write_image
from datasets.synthetic_draw import draw_background, draw_clutter, draw_occluder, paint_figure, sample_figure

GENERATOR_VERSION = 1
SPLITS = ("train", "val")
_SPLIT_IDS = {"train": 0, "val": 1}
_PEOPLE_PROBS = np.array([0.35, 0.3, 0.2, 0.15])


def render_scene(rng, image_size, max_people=4):
    """Draw one image and return ``(image, people)``.

    image_size: (width, height) in pixels. image: uint8 BGR (height, width, 3). people: list, in
    drawing (depth) order, of dicts with ``keypoints`` (17 x 3 float64: x, y, v) and ``mask``
    (bool (height, width), the person's full drawn pixels, also where later drawn over).
    Every returned person has at least one labelled (v > 0) joint.
    """
    width, height = image_size
    image = draw_background(rng, image_size)
    draw_clutter(image, rng, int(rng.integers(3, 13)), scale=0.3 * min(width, height))
    probs = _PEOPLE_PROBS[:max_people] / _PEOPLE_PROBS[:max_people].sum()
    figures = []
    for _ in range(1 + rng.choice(len(probs), p=probs)):
        for _attempt in range(10):
            frac = rng.uniform(0.4, 0.9) if rng.random() < 0.75 else rng.uniform(0.22, 0.4)
            h_px = frac * height
            y_lo, y_hi = 0.42 * h_px, height - 0.42 * h_px
            if y_lo > y_hi:
                y_lo = y_hi = height / 2.0
            pelvis = (rng.uniform(-0.05, 1.05) * width,
                      rng.uniform(y_lo - 0.12 * h_px, y_hi + 0.12 * h_px))
            fig = sample_figure(rng, h_px, pelvis)
            j = fig["joints"]
            inside = (j[:, 0] >= 0) & (j[:, 0] <= width - 1) & (j[:, 1] >= 0) & (j[:, 1] <= height - 1)
            apart = all(np.linalg.norm(f["pelvis"] - fig["pelvis"]) > 0.3 * min(f["height"], h_px)
                        for f in figures)
            if inside.sum() >= 5 and apart:
                figures.append(fig)
                break
    figures.sort(key=lambda f: f["height"])            # nearer (taller) people occlude farther ones
    owner = np.full((height, width), -1, np.int16)
    masks = []
    for k, fig in enumerate(figures):
        mask = np.zeros((height, width), bool)
        paint_figure(image, fig, rng, mask)
        owner[mask] = k
        masks.append(mask)
    occluded = np.zeros((height, width), bool)
    for _ in range(rng.poisson(0.8)):
        fig = figures[rng.integers(len(figures))]
        centre = fig["joints"][rng.integers(NUM_JOINTS)] + rng.normal(0, 0.08 * fig["height"], 2)
        draw_occluder(image, rng, centre, rng.uniform(0.12, 0.3) * fig["height"], layers=(occluded,))
    owner[occluded] = -1
    people = []
    for k, (fig, mask) in enumerate(zip(figures, masks)):
        kps = np.zeros((NUM_JOINTS, 3))
        for i, (x, y) in enumerate(fig["joints"]):
            if 0 <= x <= width - 1 and 0 <= y <= height - 1:
                kps[i] = x, y, 2 if owner[int(round(y)), int(round(x))] == k else 1
        people.append({"keypoints": kps, "mask": mask})
    return image, people


def person_annotation(person, ann_id, image_id):
    """COCO annotation dict of one ``render_scene`` person. bbox [x, y, w, h] covers the drawn
    pixel columns x..x+w-1 and rows y..y+h-1; area is the drawn pixel count (both image-clipped)."""
    ys, xs = np.nonzero(person["mask"])
    kps = person["keypoints"]
    flat = []
    for x, y, v in kps:
        flat += [round(float(x), 2), round(float(y), 2), int(v)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat,
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                     float(ys.max() - ys.min() + 1)],
            "area": float(len(xs)), "iscrowd": 0}


def _categories():
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
             "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}]


def _file_name(image_id):
    return f"{image_id:012d}.jpg"


def _init_worker():
    cv2.setNumThreads(1)        # one rendering process per core; no nested OpenCV thread pools


def _render_encoded(job):
    """Worker: render image ``index`` of ``split`` -> (JPEG bytes, annotations without ids)."""
    split, index, params = job
    rng = np.random.default_rng([params["seed"], _SPLIT_IDS[split], index])
    image, people = render_scene(rng, tuple(params["image_size"]), params["max_people"])
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, params["jpeg_quality"],
                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise RuntimeError(f"cv2 could not encode synthetic image {index + 1} of split {split}")
    return buf.tobytes(), [person_annotation(p, 0, index + 1) for p in people]


def _write_split(split, count, folder, ann_path, params, progress, workers):
    """Render ``count`` images of ``split`` into ``folder`` (``workers`` processes) and write
    their COCO json. Images do not depend on the order or process they are rendered in."""
    width, height = params["image_size"]
    os.makedirs(folder, exist_ok=True)
    jobs = [(split, index, params) for index in range(count)]
    # spawn, not fork: a forked child of a process that already runs torch/OpenMP threads can deadlock
    parallel = workers > 1 and count >= 32 and not multiprocessing.current_process().daemon
    pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker) if parallel else None
    try:
        results = pool.imap(_render_encoded, jobs, chunksize=8) if pool else map(_render_encoded, jobs)
        images, anns = [], []
        for index, (jpeg, image_anns) in enumerate(tqdm(results, total=count, desc=f"synthetic {split}",
                                                        disable=not progress, unit="img")):
            image_id = index + 1
            with open(os.path.join(folder, _file_name(image_id)), "wb") as f:
                f.write(jpeg)
            images.append({"id": image_id, "file_name": _file_name(image_id), "width": width, "height": height})
            for ann in image_anns:
                ann["id"] = len(anns) + 1
                anns.append(ann)
    finally:
        if pool:
            pool.close()
            pool.join()
    coco = {"info": {"description": f"TopPose synthetic persons ({split})", "version": GENERATOR_VERSION},
            "images": images, "annotations": anns, "categories": _categories()}
    with open(ann_path, "w") as f:
        json.dump(coco, f, separators=(",", ":"))


def _paths(root):
    return {"train_ann": os.path.join(root, "annotations", "person_keypoints_train.json"),
            "train_images": os.path.join(root, "train"),
            "val_ann": os.path.join(root, "annotations", "person_keypoints_val.json"),
            "val_images": os.path.join(root, "val")}


def _is_complete(root, params):
    """True when ``root/manifest.json`` holds ``params`` and every listed file exists."""
    try:
        with open(os.path.join(root, "manifest.json")) as f:
            if json.load(f) != params:
                return False
    except (OSError, ValueError):
        return False
    paths = _paths(root)
    for split in SPLITS:
        if not os.path.isfile(paths[f"{split}_ann"]):
            return False
        names = set(os.listdir(paths[f"{split}_images"])) if os.path.isdir(paths[f"{split}_images"]) else set()
        if any(_file_name(i + 1) not in names for i in range(params[f"num_{split}"])):
            return False
    return True


def _remove_stale_temp_dirs(root):
    """Delete ``root/.tmp-<pid>`` folders left by generations whose process no longer runs."""
    for name in os.listdir(root):
        if name.startswith(".tmp-") and name[5:].isdigit():
            pid = int(name[5:])
            try:
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            if not alive:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def make_synthetic_coco(root, num_train=2000, num_val=200, image_size=(320, 256), seed=0,
                        max_people=4, jpeg_quality=90, progress=True, workers=None):
    """Generate (or reuse) the synthetic COCO person-keypoints dataset under ``root``.

    num_train / num_val: image counts (>= 0). image_size: (width, height) in pixels, each >= 64.
    seed: int; the same parameters give byte-identical json and identical images. max_people:
    1..4 people per image. jpeg_quality: 1..100 (4:4:4 chroma). progress: show a tqdm bar.
    workers: rendering processes (default: the CPU count, at most 8); does not change the output.
    The data is rebuilt only when ``root/manifest.json`` differs from these parameters or a file
    is missing; a new dataset is written to ``root/.tmp-<pid>`` and moved in, and the manifest
    is written last, so an interrupted run never looks complete.
    Returns {"train_ann", "train_images", "val_ann", "val_images"} (paths).
    """
    for name, value, low in (("num_train", num_train, 0), ("num_val", num_val, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"make_synthetic_coco: {name} must be an integer >= {low}, got {value!r}")
    if len(image_size) != 2 or min(int(v) for v in image_size) < 64:
        raise ValueError(f"make_synthetic_coco: image_size must be (width, height) with both sides >= 64 "
                         f"pixels, got {image_size!r}")
    if not 1 <= int(max_people) <= len(_PEOPLE_PROBS):
        raise ValueError(f"make_synthetic_coco: max_people must be 1..{len(_PEOPLE_PROBS)}, got {max_people!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"make_synthetic_coco: jpeg_quality must be 1..100, got {jpeg_quality!r}")
    params = {"generator_version": GENERATOR_VERSION, "num_train": int(num_train), "num_val": int(num_val),
              "image_size": [int(image_size[0]), int(image_size[1])], "seed": int(seed),
              "max_people": int(max_people), "jpeg_quality": int(jpeg_quality)}
    workers = min(os.cpu_count() or 1, 8) if workers is None else int(workers)
    root = os.path.abspath(os.fspath(root))
    if _is_complete(root, params):
        return _paths(root)
    os.makedirs(root, exist_ok=True)
    _remove_stale_temp_dirs(root)
    tmp = os.path.join(root, f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp_paths = _paths(tmp)
    os.makedirs(os.path.join(tmp, "annotations"))
    for split in SPLITS:
        _write_split(split, params[f"num_{split}"], tmp_paths[f"{split}_images"], tmp_paths[f"{split}_ann"],
                     params, progress, workers)
    manifest = os.path.join(root, "manifest.json")
    if os.path.exists(manifest):
        os.remove(manifest)
    for sub in ("train", "val", "annotations"):
        shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
        os.replace(os.path.join(tmp, sub), os.path.join(root, sub))
    os.rmdir(tmp)
    with open(manifest + ".tmp", "w") as f:
        json.dump(params, f, indent=1)
    os.replace(manifest + ".tmp", manifest)
    return _paths(root)


def write_preview(ann_path, image_dir, out_path, max_images=8, columns=4, scale=2):
    """Write a grid PNG of the first ``max_images`` images of a split with their annotations drawn
    (left joints green, right magenta, occluded ones hollow; shown ``scale`` times larger)."""
    with open(ann_path) as f:
        coco = json.load(f)
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    tiles = []
    for info in coco["images"][:max_images]:
        image = cv2.imread(os.path.join(image_dir, info["file_name"]))
        if image is None:
            raise FileNotFoundError(f"preview: cannot read {os.path.join(image_dir, info['file_name'])}")
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        for ann in by_image.get(info["id"], []):
            draw_skeleton(image, np.reshape(ann["keypoints"], (-1, 3)), scale=scale, box=ann["bbox"])
        tiles.append(image)
    if not tiles:
        raise ValueError(f"preview: {ann_path} has no images")
    write_image(out_path, tile(tiles, columns))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate the TopPose synthetic COCO keypoint dataset.")
    parser.add_argument("--root", required=True, help="output / cache folder")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preview", help="write a PNG grid of annotated training images here")
    parser.add_argument("--preview-count", type=int, default=8)
    args = parser.parse_args(argv)
    paths = make_synthetic_coco(args.root, args.num_train, args.num_val, (args.width, args.height), args.seed)
    print(json.dumps(paths, indent=1))
    if args.preview:
        write_preview(paths["train_ann"], paths["train_images"], args.preview, args.preview_count)
        print(f"preview written to {args.preview}")


if __name__ == "__main__":
    main()
