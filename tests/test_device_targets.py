"""``data.device_targets``: the heatmaps drawn for a whole batch in torch (on the training device) are those the
per-sample numpy encoders make — HRNet's bit for bit, DarkPose's to float32 rounding — on the reference vectors,
on random joints with every edge case, through the dataset and through a training run."""
import numpy as np
import pytest
import torch

from conftest import tiny_yaml
from datasets.targets import batch_heatmaps, batch_heatmaps_from_hm_coords
from decoders.heatmap_codec import HeatmapCodec
from processors import DPProcessor

DARK_ATOL = 2e-6  # the parity tolerance of DarkPose's targets (tests/test_parity_targets.py)


@pytest.fixture(scope="module")
def targets(vectors_dir):
    with np.load(vectors_dir / "targets.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("prefix", ["", "edge_"])
def test_hrnet_batch_targets_equal_the_reference_vectors(targets, prefix):
    joints = targets["edge_joints_crop" if prefix else "joints_crop"][..., :2]
    vis = targets["edge_joints_vis" if prefix else "joints_vis"][..., 0]
    heatmaps, weight = batch_heatmaps(torch.from_numpy(joints), torch.from_numpy(vis),
                                      tuple(targets["image_size"]), tuple(targets["heatmap_size"]),
                                      float(targets["sigma"]))
    np.testing.assert_array_equal(weight.numpy(), targets[prefix + "target_weight"])
    np.testing.assert_array_equal(heatmaps.numpy(), targets[prefix + "target"])


@pytest.mark.parametrize("prefix", ["dark_", "edge_dark_"])
def test_darkpose_batch_targets_equal_the_reference_vectors(targets, prefix):
    joints = targets["edge_joints_hm" if prefix == "edge_dark_" else "dark_joints_hm"][..., :2]
    vis = targets["edge_joints_vis" if prefix == "edge_dark_" else "joints_vis"][..., 0]
    heatmaps, weight = batch_heatmaps_from_hm_coords(torch.from_numpy(joints), torch.from_numpy(vis),
                                                     tuple(targets["heatmap_size"]), float(targets["sigma"]))
    np.testing.assert_array_equal(weight.numpy(), targets[prefix + "target_weight"])
    np.testing.assert_allclose(heatmaps.numpy(), targets[prefix + "target"], rtol=0, atol=DARK_ATOL)


def random_joints(rng, input_wh, batch=48, num_joints=17):
    """Joints on, near and off the crop, some exactly on a rounding boundary, NaN and infinite ones; 0/1 vis."""
    joints = rng.uniform(-30, np.add(input_wh, 30), (batch, num_joints, 2))
    joints[:6] = np.round(joints[:6] / 4) * 4 - 2  # x / stride + 0.5 lands on a whole number (stride 4)
    joints[6, :4] = [[np.nan, 5.0], [np.inf, 3.0], [3.0, -np.inf], [np.nan, np.inf]]
    vis = (rng.random((batch, num_joints)) > 0.2).astype(np.float64)
    vis[7, :3] = [0.4, 0.6, 2.0]  # fractional and > 1 visibilities, as the reference treats them
    return joints, vis


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("sigma, input_wh, heatmap_wh", [(2.0, (192, 256), (48, 64)), (3.0, (288, 384), (72, 96)),
                                                         (1.5, (96, 128), (24, 32)), (2.0, (64, 64), (64, 64))])
def test_codec_batch_targets_equal_its_per_sample_encoding(unbiased, sigma, input_wh, heatmap_wh):
    rng = np.random.default_rng(int(sigma * 10) + unbiased)
    joints, vis = random_joints(rng, input_wh)
    if unbiased:
        joints[6] = 10.0  # (DarkPose's encoder draws NaN maps for NaN joints; not a case worth copying)
    host = HeatmapCodec(input_wh, heatmap_wh, sigma, [(1, 2)], unbiased=unbiased)
    device = HeatmapCodec(input_wh, heatmap_wh, sigma, [(1, 2)], unbiased=unbiased, device_targets=True)
    expected = [host.encode(j, v) for j, v in zip(joints, vis)]
    light = [device.encode(j, v) for j, v in zip(joints, vis)]
    assert light[0][0].nbytes + light[0][1].nbytes == 17 * 2 * 8 + 17 * 4  # what travels instead of 17 maps
    heatmaps, weight = device.batch_targets(*(torch.from_numpy(np.stack(t)) for t in zip(*light)))
    assert heatmaps.dtype == weight.dtype == torch.float32
    np.testing.assert_array_equal(weight.numpy(), np.stack([e[1] for e in expected]))
    if unbiased:
        np.testing.assert_allclose(heatmaps.numpy(), np.stack([e[0] for e in expected]), rtol=2e-7, atol=1e-12)
    else:
        np.testing.assert_array_equal(heatmaps.numpy(), np.stack([e[0] for e in expected]))
    # Without the option the batch is passed through untouched.
    batch = tuple(torch.from_numpy(np.stack(t)) for t in zip(*expected))
    assert all(a is b for a, b in zip(host.batch_targets(*batch), batch))


def test_a_training_run_with_device_targets_is_the_same_run(tmp_path):
    """Same data and seed: the targets are identical, so the weights after training are identical."""
    weights, debug = {}, {}
    for on in (False, True):
        proc = DPProcessor(tiny_yaml(tmp_path, f"targets{int(on)}", data={"device_targets": on, "debug": True,
                                                                          "num_workers": 1}))
        proc._setup()
        item = proc.train_set[0]
        assert tuple(item[1].shape) == ((17, 2) if on else (17, 16, 8))
        proc.train_one_epoch(1)
        weights[on] = proc.model.state_dict()
        debug[on] = (tmp_path / "weights" / f"targets{int(on)}" / "debug_train_epoch1.jpg").read_bytes()
    for key, value in weights[False].items():
        assert torch.equal(value, weights[True][key]), key
    assert debug[False] == debug[True]  # the debug picture draws the same target joints
