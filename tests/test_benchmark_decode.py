"""``tools/benchmark_decode.py``: its reference decoders are the published HRNet / DarkPose algorithms (they
reproduce the reference vectors), TopPose agrees with them (borders and the log floor included, for the numpy
and the torch code path), and a quick run writes every row with the agreement check passed (not timed)."""
import json

import numpy as np
import pytest
import torch

from decoders import decode_heatmaps, heatmap_decode, to_image_coords


@pytest.fixture(scope="module")
def tool():
    from tools import benchmark_decode
    return benchmark_decode


def test_reference_decoders_reproduce_the_reference_vectors(tool, vectors_dir):
    with np.load(vectors_dir / "decode.npz") as data:
        dec = {k: data[k] for k in data.files}
    preds, maxvals = tool.ref_hrnet_final_preds(dec["heatmaps"].copy(), dec["center"], dec["scale"])
    np.testing.assert_array_equal(preds, dec["hrnet_preds"])
    np.testing.assert_array_equal(maxvals, dec["hrnet_maxvals"])
    with np.errstate(all="ignore"):   # DarkPose's 0/0 on all-zero maps
        preds, maxvals = tool.ref_dark_final_preds(dec["heatmaps"].copy(), dec["center"], dec["scale"])
    well_conditioned = dec["dark_f32_f64_absdiff"] < 1e-3
    np.testing.assert_allclose(preds[well_conditioned], dec["dark_preds"][well_conditioned], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(maxvals, dec["dark_maxvals"])


def border_heatmaps(rng):
    """Sigma-2 blobs on, near and just off every border and corner of 64x48 maps; some shifted down so
    that the blurred map is below the log floor next to the peak."""
    xs = [0, 0.4, 1, 1.6, 2, 2.5, 3.3, 5, 6.5, 8, 23.7, 40.2, 42, 43.5, 44.6, 45, 45.6, 46, 46.6, 47]
    ys = [0, 0.6, 1, 2, 2.4, 3, 4.5, 7, 31.2, 55, 57.5, 60, 60.6, 61, 61.5, 62, 63]
    centres = np.array([(x, y) for x in xs for y in ys])
    rng.shuffle(centres)
    yy, xx = np.mgrid[0:64, 0:48]
    maps = np.exp(-((xx - centres[:, 0, None, None]) ** 2 + (yy - centres[:, 1, None, None]) ** 2) / 8)
    maps *= rng.uniform(0.3, 1.0, (len(maps), 1, 1))
    maps += rng.uniform(0, 0.01, maps.shape)
    low = rng.random(len(maps)) < 0.25
    maps[low] -= 0.4 * maps[low].max(axis=(1, 2), keepdims=True)   # negative two pixels from the peak
    return maps.reshape(-1, 17, 64, 48).astype(np.float32)


def test_dark_agrees_with_darkpose_at_borders_and_the_log_floor(tool):
    rng = np.random.default_rng(5)
    heatmaps = border_heatmaps(rng)
    center = rng.uniform(100, 500, (len(heatmaps), 2)).astype(np.float32)
    scale = np.full((len(heatmaps), 2), [1.2, 1.6], np.float32)
    ref, _ = tool.ref_dark_final_preds(heatmaps.copy(), center, scale)
    ref_hm = (ref - center[:, None]) * 47 / (1.2 * 200 - 1) + [23.5, 31.5]   # back to heatmap pixels

    coords, _ = decode_heatmaps(heatmaps)
    assert np.abs(coords - ref_hm).max() < 1e-3
    preds = to_image_coords(coords, center, scale, (48, 64), unbiased=True)
    np.testing.assert_allclose(preds, ref, rtol=0, atol=1e-3)
    # The torch code (what CUDA tensors run) on the CPU gives the same, through both of its paths.
    flat = torch.from_numpy(heatmaps).reshape(-1, 64 * 48)
    maxvals, px, py = heatmap_decode._max_preds(flat, 48, torch)
    taps = heatmap_decode._blurred_taps(flat, px.clamp(2, 45), py.clamp(2, 61), 64, 48, 11, torch)
    assert (taps.amin(1) < heatmap_decode._FLOOR_SAFE).sum() > 20          # the exact full-map path is used
    torch_coords = heatmap_decode._dark_refine(flat, maxvals, px, py, 64, 48, 11, torch)
    np.testing.assert_allclose(torch_coords.numpy().reshape(coords.shape), coords, rtol=0, atol=1e-9)


def test_basic_is_hrnet_on_the_benchmark_inputs(tool):
    heatmaps, center, scale = tool.make_inputs(3, seed=2)
    ref, ref_max = tool.ref_hrnet_final_preds(heatmaps.copy(), center, scale)
    coords, maxvals = decode_heatmaps(torch.from_numpy(heatmaps), method="basic")
    np.testing.assert_allclose(to_image_coords(coords, center, scale, (48, 64)).numpy(), ref, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(maxvals.numpy(), ref_max)


def test_quick_run_writes_every_row(tool, tmp_path):
    out = tmp_path / "decode.json"
    tool.main(["--quick", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["agreement"]["passed"] is True
    diffs = [v for k, v in result["agreement"].items() if k.endswith("_max_diff_px")]
    assert len(diffs) == 4 and max(diffs) <= 1e-3
    rows = {(r["work"], r["batch"], r["threads"]): r for r in result["rows"]}
    default = f"default ({torch.get_num_threads()})"
    assert set(rows) == {(w, b, t) for w in ("dark", "basic") for b in (2, 4) for t in ("1", default)}
    for r in rows.values():
        assert r["reference_ms"] > 0 and r["toppose_ms"] > 0
        assert r["speedup"] == pytest.approx(r["reference_ms"] / r["toppose_ms"], rel=1e-2)
    assert torch.get_num_threads() == int(default[9:-1])   # the tool restored the thread setting


def test_disagreement_stops_the_tool(tool, tmp_path, monkeypatch):
    real = tool.toppose_final_preds
    monkeypatch.setattr(tool, "toppose_final_preds", lambda *a: (real(*a)[0] + 0.01, real(*a)[1]))
    with pytest.raises(AssertionError, match="disagree"):
        tool.main(["--quick", "--json", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
