"""Heatmap decoders and back-projection against decode.npz."""
import numpy as np
import pytest
import torch

from decoders import decode_heatmaps, get_max_preds, to_image_coords

HM_SIZE = (48, 64)


@pytest.fixture(scope="module")
def dec(vectors_dir):
    with np.load(vectors_dir / "decode.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def well_conditioned(dec):
    mask = dec["dark_f32_f64_absdiff"] < 1e-3
    assert mask.sum() > 0.9 * mask.size
    return mask


def test_get_max_preds_exact(dec):
    coords, maxvals = get_max_preds(dec["heatmaps"])
    assert isinstance(coords, np.ndarray) and coords.dtype == np.float32 and coords.shape == (78, 17, 2)
    np.testing.assert_array_equal(coords, dec["hrnet_max_coords"])
    np.testing.assert_array_equal(maxvals, dec["hrnet_max_vals"])


def test_basic_decode_exact_and_back_projection(dec):
    heatmaps = dec["heatmaps"].copy()
    coords, maxvals = decode_heatmaps(heatmaps, method="basic")
    np.testing.assert_array_equal(heatmaps, dec["heatmaps"])   # input untouched
    np.testing.assert_array_equal(coords, dec["hrnet_coords_hm"])
    np.testing.assert_array_equal(maxvals, dec["hrnet_maxvals"])
    preds = to_image_coords(coords, dec["center"], dec["scale"], HM_SIZE)
    assert preds.dtype == np.float32
    np.testing.assert_allclose(preds, dec["hrnet_preds"], rtol=0, atol=1e-4)
    nopp = to_image_coords(dec["hrnet_max_coords"], dec["center"], dec["scale"], HM_SIZE)
    np.testing.assert_allclose(nopp, dec["hrnet_preds_nopp"], rtol=0, atol=1e-4)


def test_dark_decode_matches_reference(dec, well_conditioned):
    heatmaps = dec["heatmaps"].copy()
    coords, maxvals = decode_heatmaps(heatmaps, method="gauss_taylor", kernel=11)
    np.testing.assert_array_equal(heatmaps, dec["heatmaps"])   # the reference blurs in place; we must not
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(maxvals, dec["dark_maxvals"])
    err = np.abs(coords - dec["dark_coords_hm"]).max(-1)
    assert err[well_conditioned].max() < 5e-3, err[well_conditioned].max()
    preds = to_image_coords(coords, dec["center"], dec["scale"], HM_SIZE, unbiased=True)
    err_img = np.abs(preds - dec["dark_preds"]).max(-1)
    assert err_img[well_conditioned].max() < 1e-2, err_img[well_conditioned].max()
    # The Taylor step really moved the sub-pixel targets off the integer argmax.
    cat = list(dec["category_names"]).index("dark_target")
    moved = np.abs(coords[dec["category"] == cat] - dec["hrnet_max_coords"][dec["category"] == cat])
    assert moved.max() > 0.2


def test_back_projection_of_reference_coords(dec):
    got = to_image_coords(dec["hrnet_coords_hm"], dec["center"], dec["scale"], HM_SIZE)
    np.testing.assert_allclose(got, dec["hrnet_preds"], rtol=0, atol=1e-4)
    got = to_image_coords(dec["dark_coords_hm"], dec["center"], dec["scale"], HM_SIZE, unbiased=True)
    np.testing.assert_allclose(got, dec["dark_preds"], rtol=0, atol=1e-2)
    # Single sample (J, 2) with (2,) centre/scale, torch in -> torch out.
    t = to_image_coords(torch.from_numpy(dec["hrnet_coords_hm"][0]), torch.from_numpy(dec["center"][0]),
                        torch.from_numpy(dec["scale"][0]), HM_SIZE)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), dec["hrnet_preds"][0], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(B, 2\)|\(78, 2\)"):
        to_image_coords(dec["hrnet_coords_hm"], dec["center"][:3], dec["scale"], HM_SIZE)


@pytest.mark.parametrize("method", ["basic", "gauss_taylor"])
def test_special_categories(dec, method):
    names = list(dec["category_names"])
    coords, _ = decode_heatmaps(dec["heatmaps"], method=method)
    for name in ("zero", "negative"):
        sel = dec["category"] == names.index(name)
        assert sel.any()
        np.testing.assert_array_equal(coords[sel], 0.0)  # max <= 0 -> (0, 0), no NaN
    ties = dec["category"] == names.index("ties")
    np.testing.assert_array_equal(get_max_preds(dec["heatmaps"][ties])[0], dec["hrnet_max_coords"][ties])


def test_torch_batched_paths(dec, well_conditioned):
    hm = torch.from_numpy(dec["heatmaps"])
    for method, ref in (("basic", "hrnet_coords_hm"), ("gauss_taylor", "dark_coords_hm")):
        coords, maxvals = decode_heatmaps(hm, method=method)
        assert isinstance(coords, torch.Tensor) and coords.dtype == torch.float32
        assert coords.shape == (78, 17, 2) and maxvals.shape == (78, 17, 1)
        err = np.abs(coords.numpy() - dec[ref]).max(-1)
        assert err[well_conditioned].max() < (5e-3 if method == "gauss_taylor" else 1e-12)
    # float64 and float16 inputs are accepted
    c64, _ = decode_heatmaps(hm.double(), method="basic")
    np.testing.assert_array_equal(c64.numpy(), dec["hrnet_coords_hm"])
    c16, _ = decode_heatmaps(hm[:2].half(), method="gauss_taylor")
    assert torch.isfinite(c16).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(dec, well_conditioned):
    hm = torch.from_numpy(dec["heatmaps"])
    for method in ("basic", "gauss_taylor"):
        cpu, _ = decode_heatmaps(hm, method=method)
        gpu, _ = decode_heatmaps(hm.cuda(), method=method)
        assert gpu.is_cuda
        diff = (gpu.cpu() - cpu).abs().amax(-1).numpy()
        assert diff[well_conditioned].max() < 1e-4


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(B, J, H, W\)"):
        decode_heatmaps(np.zeros((17, 64, 48), np.float32))
    with pytest.raises(ValueError, match="method"):
        decode_heatmaps(np.zeros((1, 1, 8, 8), np.float32), method="dark")
    with pytest.raises(ValueError, match="odd"):
        decode_heatmaps(np.zeros((1, 1, 8, 8), np.float32), kernel=4)
