"""The faster training data pipeline: the exact path gives the samples of the code before it, ``data.decode_rows``
changes no pixel, ``data.decode_reduce`` keeps the joints and targets and stays within a stated distance of
the exact crops, and the pieces (row-limited decoding, the 4-channel warp, the pasted HRNet targets) equal what
they replace."""
import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets.coco import COCOKeypoints
from datasets.image_io import ImageError, decode_image, jpeg_header, read_image, read_image_bytes
from datasets.targets import generate_heatmaps
from datasets.transforms import warp_footprint, warp_rgb
from decoders import build_codec
from processors.config import validate

# sha256 (first 16 hex digits) of every coco_mini training sample (crop, target, weight bytes, index order) of
# three epoch seeds, made by the code before the speed work (OpenCV 5.0.0, numpy 2.4): warpAffine's output
# depends on OpenCV's version, so other versions skip this and rely on the reference comparison.
BEFORE = {"opencv": "5.0.0", "numpy": "2.4",
          "hrnet": ("fc6ca1c5a1169e94", "b4725cb0c61e6d79", "5cf57e5658069e52"),
          "dark": ("27d050324ec1347b", "0f4d0b6b85038866", "9349d8fcf83d3f41"),
          "jitter_perspective": ("11aa067325ebba7f", "29910b0000ffbdd4", "5214626cb7d13be7")}
CONFIGS = {"hrnet": {}, "dark": {"unbiased": True},
           "jitter_perspective": {"augment": {"color_jitter": True, "perspective_prob": 0.5}}}
# decode_reduce: mean absolute difference to the exact crops (grey levels) over all samples, and on any one crop
REDUCE_TOLERANCE = {1.0: (0.5, 8.0), 0.5: (2.5, 15.0)}
SAMPLINGS = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
             "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440, "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
             "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}


def dataset(ann, root, train=True, data=None, **options):
    """``COCOKeypoints`` at 256x192 with the default augmentation, ``data`` keys and speed ``options``."""
    cfg = validate({"data": {"train_ann": str(ann), "train_img_root": str(root), "val_ann": str(ann),
                             "val_img_root": str(root), **(data or {}), **options}})
    return COCOKeypoints(str(ann), str(root), cfg.data, train=train, codec=build_codec(cfg))


def samples(ds, seed):
    ds.set_epoch_seed(seed)
    return [tuple(np.asarray(t) for t in ds[i][:3]) for i in range(len(ds))]


def assert_same_samples(a, b):
    for (crop, target, weight), (crop_b, target_b, weight_b) in zip(a, b):
        np.testing.assert_array_equal(crop, crop_b)
        np.testing.assert_array_equal(target, target_b)
        np.testing.assert_array_equal(weight, weight_b)


@pytest.fixture(scope="module")
def coco_mini(shared_data_dir):
    root = shared_data_dir / "coco_mini"
    return root / "annotations" / "person_keypoints_train2017.json", root / "train2017"


def textured(rng, height, width):
    """A JPEG-worthy picture: smoothed noise in colour, with sharp edges."""
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2.0)
    for _ in range(6):
        x, y = rng.integers(0, width), rng.integers(0, height)
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 40, int(y) + 30), rng.integers(0, 256, 3).tolist(), -1)
    return image


@pytest.fixture(scope="module")
def jpeg_set(tmp_path_factory):
    """A COCO-format set over JPEGs of every chroma subsampling (odd sizes too), one with restart markers, a
    progressive JPEG and a PNG, two people each, one near the bottom of the picture (their crops reach past it)."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(11)
    files = [(f"s{name}.jpg", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, flag]) for name, flag in SAMPLINGS.items()]
    files += [("restarts.jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 3]),
              ("progressive.jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), ("plain.png", [])]
    images, annotations = [], []
    for k, (name, params) in enumerate(files):
        height, width = (480, 640) if k % 2 == 0 else (333, 517)
        cv2.imwrite(str(root / name), textured(rng, height, width), params)
        images.append({"id": k + 1, "file_name": name, "width": width, "height": height})
        for p, (cy, size) in enumerate(((0.35, 0.5), (0.85, 0.3))):
            h = size * height
            w = 0.5 * h
            x, y = rng.uniform(0, width - w), cy * height - h / 2
            kps = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), np.full(17, 2.0)], 1)
            annotations.append({"id": 100 * k + p, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                                "bbox": [x, y, w, h], "area": w * h, "keypoints": kps.reshape(-1).tolist(),
                                "num_keypoints": 17})
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "person"}]}))
    return ann, root


def load_tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "benchmark_pipeline.py"
    spec = importlib.util.spec_from_file_location("benchmark_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- exact path

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_exact_samples_are_those_of_the_code_before(coco_mini, name):
    if cv2.__version__ != BEFORE["opencv"] or not np.__version__.startswith(BEFORE["numpy"]):
        pytest.skip(f"digests recorded with OpenCV {BEFORE['opencv']} / numpy {BEFORE['numpy']}")
    ds = dataset(*coco_mini, data=CONFIGS[name])
    for seed, expected in enumerate(BEFORE[name]):
        digest = hashlib.sha256()
        for arrays in samples(ds, seed):
            for a in arrays:
                digest.update(np.ascontiguousarray(a).tobytes())
        assert digest.hexdigest()[:16] == expected, f"{name}, epoch seed {seed}"


def test_hrnet_targets_equal_the_reference_loop():
    """The window pasted by slices is HRNet's per-joint ``generate_target``, off-map and half-visible joints,
    several sigmas and sizes included."""
    reference = load_tool().ReferenceCOCO([])
    rng = np.random.default_rng(3)
    for sigma, image_wh, heatmap_wh in ((2, (192, 256), (48, 64)), (3, (288, 384), (72, 96)),
                                        (1.5, (192, 256), (96, 128)), (2, (64, 32), (16, 8))):
        reference.sigma, reference.image_size, reference.heatmap_size = sigma, np.array(image_wh), np.array(heatmap_wh)
        for trial in range(100):
            joints = rng.uniform(-0.3, 1.3, (17, 2)) * image_wh
            if trial % 3 == 0:
                joints = np.round(joints)
            vis = (rng.random(17) < 0.8).astype(np.float64)
            ref_target, ref_weight = reference.generate_target(joints, np.repeat(vis[:, None], 3, 1))
            target, weight = generate_heatmaps(joints, vis, image_wh, heatmap_wh, sigma)
            np.testing.assert_array_equal(target, ref_target)
            np.testing.assert_array_equal(weight, ref_weight)


def test_warp_rgb_is_the_3_channel_warp():
    """4 channels, only the region read widened, mirrored in place of a flipped image: OpenCV's 3-channel warp
    of the (flipped) image, crops partly or wholly outside the picture and unbounded perspectives included."""
    rng = np.random.default_rng(5)
    image = textured(rng, 240, 320)
    for trial in range(200):
        m = cv2.getRotationMatrix2D((float(rng.uniform(-50, 370)), float(rng.uniform(-50, 290))),
                                    float(rng.uniform(-90, 90)), float(rng.uniform(0.2, 4)))
        m[:, 2] += rng.uniform(-150, 150, 2)
        if trial % 3 == 2:
            m = np.vstack([m, [*rng.uniform(-2e-3, 2e-3, 2), 1.0]])
        mirror = trial % 2 == 1
        source = cv2.flip(image, 1) if mirror else image
        warp = cv2.warpAffine if m.shape == (2, 3) else cv2.warpPerspective
        expected = warp(source, m, (96, 128), flags=cv2.INTER_LINEAR)
        got = warp_rgb(image, m, (96, 128), warp_footprint(m, (96, 128)), mirror=mirror)
        np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- decode_rows: pixels unchanged

def test_decoded_rows_are_those_of_the_full_decode(jpeg_set, capfd):
    _, root = jpeg_set
    for path in sorted(root.iterdir()):
        if path.suffix not in (".jpg", ".png"):
            continue
        data = read_image_bytes(str(path))
        full = read_image(str(path))
        header = jpeg_header(data)
        assert header is None if path.suffix == ".png" else (header.width, header.height) == full.shape[1::-1]
        for reduce in (1, 2, 4, 8):
            whole = decode_image(data, reduce=reduce)
            for rows in (1, 8, 9, 17, 100, 250, 479, 5000):
                part = decode_image(data, rows=rows, reduce=reduce, header=header)
                need = min(-(-rows // reduce), whole.shape[0]) if header else min(rows, whole.shape[0])
                assert need <= part.shape[0] <= whole.shape[0]
                np.testing.assert_array_equal(part[:need], whole[:need], err_msg=f"{path.name} rows {rows} / {reduce}")
            if header is not None and header.baseline:
                assert decode_image(data, rows=9, header=header).shape[0] < full.shape[0]  # it did stop early
    out = capfd.readouterr()
    assert "extraneous" not in out.err and "Corrupt" not in out.err  # libjpeg's warning kept off stderr
    print("stderr still works")
    assert "stderr still works" in capfd.readouterr().out


def test_decode_rows_changes_no_pixel(jpeg_set):
    ann, root = jpeg_set
    for train, data in ((True, {"augment": {"perspective_prob": 0.5}}), (True, {"unbiased": True}),
                        (False, {})):
        exact = dataset(ann, root, train=train, data=data)
        rows = dataset(ann, root, train=train, data=data, decode_rows=True)
        for seed in range(8 if train else 1):
            assert_same_samples(samples(rows, seed), samples(exact, seed))


def test_decode_rows_changes_no_pixel_on_coco(coco_mini):
    exact = dataset(*coco_mini, data={"augment": {"perspective_prob": 0.3}})
    rows = dataset(*coco_mini, data={"augment": {"perspective_prob": 0.3}}, decode_rows=True)
    for seed in (0, 1):
        assert_same_samples(samples(rows, seed), samples(exact, seed))


def test_speed_options_are_off_by_default_and_bad_images_are_still_found(jpeg_set, tmp_path):
    ann, root = jpeg_set
    plain = dataset(ann, root)
    assert plain.decode_rows is False and plain.decode_reduce == 0.0
    data = (root / "s420.jpg").read_bytes()
    (tmp_path / "s420.jpg").write_bytes(data[:len(data) // 2])  # truncated: no end-of-image marker
    for other in root.iterdir():
        if other.name != "s420.jpg":
            (tmp_path / other.name).write_bytes(other.read_bytes())
    ds = dataset(ann, tmp_path, decode_rows=True, decode_reduce=1.0)
    broken = [i for i, r in enumerate(ds.db) if r["image"].endswith("s420.jpg")]
    with pytest.raises(ImageError, match="truncated JPEG"):
        ds._sample(broken[0])
    _, _, _, meta = ds[broken[0]]
    assert "truncated JPEG" in meta["bad_image"]  # training takes the next usable person instead


# ---------------------------------------------------------------- decode_reduce: pixels change a little

@pytest.mark.parametrize("reduce", sorted(REDUCE_TOLERANCE))
def test_decode_reduce_stays_close_to_the_exact_crops(coco_mini, reduce):
    mean_limit, one_limit = REDUCE_TOLERANCE[reduce]
    exact = dataset(*coco_mini)
    fast = dataset(*coco_mini, decode_rows=True, decode_reduce=reduce)
    diffs = []
    for seed in (0, 1):
        for (crop, target, weight), (crop_f, target_f, weight_f) in zip(samples(exact, seed), samples(fast, seed)):
            np.testing.assert_array_equal(target_f, target)  # the same joints, so the same targets
            np.testing.assert_array_equal(weight_f, weight)
            diffs.append(np.abs(crop_f.astype(np.int16) - crop).mean())
    diffs = np.array(diffs)
    assert (diffs > 0).sum() >= 5  # reduced decoding did happen
    assert diffs.mean() < mean_limit and diffs.max() < one_limit, (diffs.mean(), diffs.max())


def test_decode_reduce_keeps_the_crop_geometry(tmp_path, monkeypatch):
    """A bright spot lands at the same crop position (within 0.15 px) from the 1/2, 1/4 and 1/8 decodes as
    from the full one, flipped and rotated crops included."""
    height, width = 960, 1280
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 30, np.uint8)
    image[..., 0] = (30 + 200 * np.exp(-((xx - 640) ** 2 + (yy - 420) ** 2) / (2 * 14.0 ** 2))).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "spot.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    kps = np.stack([np.linspace(400, 880, 17), np.linspace(200, 760, 17), np.full(17, 2.0)], 1)
    (tmp_path / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "spot.jpg", "width": width, "height": height}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [400, 200, 480, 560],
                         "area": 480 * 560.0, "keypoints": kps.reshape(-1).tolist(), "num_keypoints": 17}],
        "categories": [{"id": 1, "name": "person"}]}))
    import datasets.coco as coco_module
    used = []
    real = coco_module.decode_image
    monkeypatch.setattr(coco_module, "decode_image", lambda *a, **k: used.append(k.get("reduce")) or real(*a, **k))
    augment = {"half_body_prob": 0.0}
    exact = dataset(tmp_path / "ann.json", tmp_path, data={"augment": augment})
    # image pixels per crop pixel 1.8 .. 3.7 (the box 525 px wide, scaled by 0.65 .. 1.35): 1/2, 1/4, 1/8
    fast = [dataset(tmp_path / "ann.json", tmp_path, data={"augment": augment}, decode_reduce=r)
            for r in (1.0, 0.5, 0.25)]

    def spot(crop):
        red = crop[0].astype(np.float64) - 30
        red[red < 60] = 0
        total = red.sum()
        return None if total == 0 else np.array([(red.sum(0) * np.arange(red.shape[1])).sum(),
                                                 (red.sum(1) * np.arange(red.shape[0])).sum()]) / total

    checked = 0
    for seed in range(16):
        a = spot(samples(exact, seed)[0][0])
        if a is None or min(a) < 20 or a[0] > 172 or a[1] > 236:  # off the crop or at its border
            continue
        for ds in fast:
            b = spot(samples(ds, seed)[0][0])
            assert np.abs(a - b).max() < 0.15, (seed, a, b, used[-1])
            checked += 1
    assert checked >= 30 and {2, 4, 8} <= set(used)


def test_decode_reduce_is_for_training_only(jpeg_set):
    ann, root = jpeg_set
    exact = dataset(ann, root, train=False)
    fast = dataset(ann, root, train=False, decode_rows=True, decode_reduce=0.25)
    assert_same_samples(samples(fast, 0), samples(exact, 0))
