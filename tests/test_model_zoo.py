"""Heatmap model zoo: DUC, SE-ResNet and HRNet beside SimpleBaseline. Every shipped COCO config builds with
its published size, the official HRNet / SimpleBaseline checkpoints load strictly (every tensor found
unchanged), ImageNet files of HRNet and SE-ResNet initialise their backbones, each new architecture
learns, and the config checks know each head's output stride."""
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.targets import generate_heatmaps
from nets import BACKBONES, PretrainedWeightsError, build_model, load_pose_weights
from nets.hrnet import HRNetBackbone
from nets.pretrained import load_backbone_weights
from nets.resnet import ResNetBackbone
from processors.config import BACKBONE_STRIDES, Config, ConfigError, load_config, validate

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "specs" / "hrnet_official_state_dict_keys.json"
COCO_CONFIGS = sorted(p.stem for p in (REPO / "configs" / "coco").glob("*.yaml"))

# config -> the official checkpoint whose names and shapes ../shared/specs lists
OFFICIAL = {"res50_dconv_256x192": "pose_resnet_50", "res101_dconv_256x192": "pose_resnet_101",
            "res152_dconv_256x192": "pose_resnet_152", "hrnet_w32_256x192": "pose_hrnet_w32",
            "hrnet_w48_256x192": "pose_hrnet_w48"}
# parameters in millions: SimpleBaseline / HRNet model zoos; SE-ResNet-50 = 34.0 + timm's seresnet50
# (28.088 M) - resnet50 (25.557 M); DUC = ResNet-50 (23.508 M) + 512*1024*9 + 256*512*9 + 128*17*9 + BN
PUBLISHED_PARAMS_M = {"res50_dconv_256x192": 34.0, "res101_dconv_256x192": 53.0, "res152_dconv_256x192": 68.6,
                      "hrnet_w32_256x192": 28.5, "hrnet_w32_384x288": 28.5, "hrnet_w48_256x192": 63.6,
                      "se_res50_dconv_256x192": 36.53, "res50_duc_256x192": 29.43, "se_res50_duc_256x192": 31.96}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Many small convolutions: one thread is as fast on an idle machine and far faster on a shared one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def official_spec():
    if not SPEC.is_file():
        pytest.skip(f"official state-dict spec not found at {SPEC}")
    return json.loads(SPEC.read_text())


def coco_config(name, **model):
    """configs/coco/<name>.yaml, its data paths unchecked, with some model keys replaced."""
    cfg = load_config(str(REPO / "configs" / "coco" / f"{name}.yaml"), check_paths=False)
    if not model:
        return cfg
    values = cfg.to_dict()
    values["model"].update(model)
    return validate(values, f"{name}.yaml", check_paths=False)


def count_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if ".loss_module." not in n)


@pytest.mark.parametrize("name", COCO_CONFIGS)
def test_every_coco_config_builds_predicts_and_has_its_published_size(name):
    cfg = coco_config(name)
    model = build_model(cfg.model, initialise=False).eval()
    h, w = cfg.data.input_size
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    if cfg.model.type == "rle":
        assert out["coords"].shape == (1, 17, 2)
    else:
        assert out.shape == (1, 17, h // 4, w // 4) and list(out.shape[2:]) == cfg.data.heatmap_size
    if name in PUBLISHED_PARAMS_M:
        assert count_params(model) / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.01)


def test_backbone_strides_are_the_ones_the_config_checks_use():
    assert set(BACKBONES) == set(BACKBONE_STRIDES)
    for name in ("resnet18", "resnet34", "scnet50", "mobilenetv2_050", "hrnet_w32"):  # the rest: configs above
        with torch.device("meta"):  # shapes only
            features = BACKBONES[name](types.SimpleNamespace(name=name, se=False, reduction=16))(
                torch.zeros(1, 3, 256, 192))
        assert features.shape[2:] == (256 // BACKBONE_STRIDES[name], 192 // BACKBONE_STRIDES[name]), name


def random_state(shapes, seed):
    """Random tensors with the given names and shapes (BN counters as int64, like real checkpoints)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randint(0, 1000, (), generator=gen) if k.endswith("num_batches_tracked")
            else torch.randn(s, generator=gen) for k, s in shapes.items()}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_checkpoint_loads_strictly_with_every_tensor_unchanged(tmp_path, official_spec, name):
    spec = official_spec[OFFICIAL[name]]
    state = random_state(spec["keys"], seed=len(name))
    source = state  # a bare state dict with the official, unprefixed names
    if name == "res50_dconv_256x192":  # the released file pose_resnet_50_256x192.pth
        torch.save(state, source := str(tmp_path / "pose_resnet_50_256x192.pth"))
    elif name == "hrnet_w32_256x192":  # HRNet's training checkpoint: DataParallel names, the AP as numpy
        torch.save({"epoch": 210, "model": "pose_hrnet", "perf": np.float64(0.744),
                    "state_dict": {f"module.{k}": v for k, v in state.items()}},
                   source := str(tmp_path / "checkpoint.pth"))
    model = build_model(coco_config(name).model, initialise=False)
    assert count_params(model) == spec["params"]
    report = load_pose_weights(model, source, strict=True)
    assert report == {"loaded": len(state), "dropped": 0, "missing": [], "unused": []}
    own = model.state_dict()
    head = ("final_layer.", "deconv_layers.")
    for key, value in state.items():
        assert torch.equal(own[("head." if key.startswith(head) else "backbone.") + key], value), key


def test_official_checkpoint_mismatches_are_named(official_spec):
    state = random_state(official_spec["pose_hrnet_w32"]["keys"], seed=1)
    del state["final_layer.bias"]
    state["stage5.0.weight"] = torch.zeros(1)
    with pytest.raises(PretrainedWeightsError, match=r"head\.final_layer\.bias.*stage5\.0\.weight"):
        load_pose_weights(build_model(coco_config("hrnet_w32_256x192").model, initialise=False), state)
    state = random_state(official_spec["pose_hrnet_w32"]["keys"], seed=1)
    with pytest.raises(PretrainedWeightsError, match=r"tensors of another shape \(e\.g\. transition1\.0\.0\."
                                                     r"weight \(32, 256, 3, 3\) \(model \(48, 256, 3, 3\)\)"):
        load_pose_weights(build_model(coco_config("hrnet_w48_256x192").model, initialise=False), state)


def test_hrnet_imagenet_file_initialises_the_backbone(tmp_path):
    """The classification HRNet's file is a superset: classifier, incre / downsample modules, its own
    final_layer and the full stage-4 fusion. The backbone takes its tensors and needs all of them."""
    with torch.device("meta"):  # names and shapes only
        own = HRNetBackbone("hrnet_w32").state_dict()
    extra = {"incre_modules.0.0.conv1.weight": (32, 32, 1, 1), "downsamp_modules.0.0.weight": (256, 128, 3, 3),
             "final_layer.0.weight": (2048, 1024, 1, 1), "final_layer.1.running_var": (2048,),
             "classifier.weight": (1000, 2048), "classifier.bias": (1000,),
             "stage4.2.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3), "stage4.2.fuse_layers.3.2.0.1.bias": (256,)}
    state = random_state({**{k: tuple(v.shape) for k, v in own.items()}, **extra}, seed=3)
    torch.save(state, tmp_path / "hrnet_w32-36af842e.pth")
    model = build_model(coco_config("hrnet_w32_256x192", pretrained=str(tmp_path / "hrnet_w32-36af842e.pth")).model)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    del state["stage4.2.fuse_layers.0.3.1.running_mean"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(PretrainedWeightsError, match=r"lacks 1 hrnet_w32 backbone tensors.*fuse_layers\.0\.3\.1"):
        load_backbone_weights(model.backbone, "hrnet_w32", str(tmp_path / "partial.pth"))
    with pytest.raises(PretrainedWeightsError, match=r"none for hrnet_w32.*hrnet_w32-36af842e\.pth"):
        load_backbone_weights(model.backbone, "hrnet_w32", "imagenet")


def test_se_resnet_takes_timm_names_and_gates_before_the_shortcut(tmp_path):
    with torch.device("meta"):  # names and shapes only
        shapes = {k: tuple(v.shape) for k, v in ResNetBackbone("resnet50", se=True).state_dict().items()}
    assert shapes["layer1.0.se.fc1.weight"] == (16, 256, 1, 1) and shapes["layer4.2.se.fc2.bias"] == (2048,)
    # a timm seresnet50 state dict (the backbone's names + the classifier) loads from a local path
    state = {**random_state(shapes, seed=4), "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "seresnet50.pth")
    se_net = build_model(coco_config("se_res50_dconv_256x192", pretrained=str(tmp_path / "seresnet50.pth")).model,
                         initialise=True).backbone
    assert se_net.arch == "seresnet50" and torch.equal(se_net.layer3[5].se.fc2.weight, state["layer3.5.se.fc2.weight"])
    assert sum(p.numel() for p in se_net.parameters()) == 28_088_024 - 2048 * 1000 - 1000  # timm's, less fc
    with pytest.raises(PretrainedWeightsError, match="none for seresnet50.*timm"):
        load_backbone_weights(se_net, se_net.arch, "imagenet")
    # with fc2 = 0 the gate is sigmoid(0) = 1/2: an SE block is the plain block with bn3's output halved,
    # which puts SE after bn3 and before the shortcut is added
    plain = ResNetBackbone("resnet50").eval()
    se_net.load_state_dict(plain.state_dict(), strict=False)
    for block in [b for layer in (se_net.layer1, se_net.layer2, se_net.layer3, se_net.layer4) for b in layer]:
        torch.nn.init.zeros_(block.se.fc2.weight)
        torch.nn.init.zeros_(block.se.fc2.bias)
    for block in [b for layer in (plain.layer1, plain.layer2, plain.layer3, plain.layer4) for b in layer]:
        block.bn3.weight.data *= 0.5
        block.bn3.bias.data *= 0.5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(se_net.eval()(x), plain(x), rtol=1e-4, atol=1e-5)


def random_batch(batch, size, seed):
    """Images and HRNet-style heatmap targets of random joints in a ``size`` x ``size`` crop (1/4 maps)."""
    rng = np.random.default_rng(seed)
    targets, weights = zip(*(generate_heatmaps(rng.uniform(4, size - 4, (17, 2)), np.ones(17), (size, size),
                                               (size // 4, size // 4), sigma=1.5) for _ in range(batch)))
    images = torch.from_numpy(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    return images, torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(weights))


@pytest.mark.parametrize("head, backbone, se", [("duc", "resnet50", False), ("dconv", "resnet50", True),
                                                ("duc", "resnet50", True), ("dconv", "hrnet_w32", False)])
def test_new_architectures_learn_a_repeated_batch(head, backbone, se):
    torch.manual_seed(0)
    cfg = types.SimpleNamespace(type=head, name=backbone, se=se, reduction=16, num_joints=17, pretrained="",
                                deconv_channels=256, num_deconv=0 if backbone.startswith("hrnet") else 3)
    model = build_model(cfg).train()
    images, target, weight = random_batch(2, 64, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)  # 1e-3 overshoots on a batch of two
    losses = []
    for _ in range(3):
        loss = model(images, target, weight)["loss"]
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # two iterations: from about 0.5 * mean(target^2) (the output conv starts near 0) down by 15 to 35 %
    assert losses[0] == pytest.approx(0.5 * float((target ** 2).mean()), rel=0.1)
    assert losses[2] < losses[1] < losses[0] and losses[2] < 0.9 * losses[0], losses


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    cfg = coco_config("se_res50_duc_256x192").model
    torch.manual_seed(1)
    trained = build_model(cfg, initialise=False)
    for m in trained.modules():  # BN statistics away from their initial values, so they must travel too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(trained.state_dict(), tmp_path / "best.pth")
    torch.manual_seed(2)
    loaded = build_model(cfg, initialise=False)
    report = load_pose_weights(loaded, str(tmp_path / "best.pth"), strict=True)
    assert report["loaded"] == len(trained.state_dict()) and not report["missing"] and not report["unused"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = trained.eval()(x), loaded.eval()(x)
    assert expected.abs().max() > 0 and torch.equal(expected, got)


SYNTHETIC = {"use_synthetic": True, "input_size": [256, 192], "heatmap_size": [64, 48]}


def check(model, **data):
    return validate({"data": {**SYNTHETIC, **data}, "model": model}, "zoo.yaml", check_paths=False)


@pytest.mark.parametrize("model, data, key, message", [
    ({"reduction": True}, {}, "model.reduction", "write 'se: true'.*'reduction: <int>'"),
    ({"type": "duc", "name": "hrnet_w32"}, {}, "model.name", "duc head .* needs a stride-32 backbone"),
    ({"type": "duc", "name": "resnet50"}, {"heatmap_size": [32, 24]}, "data.heatmap_size",
     r"outputs input_size / 4 with three PixelShuffle\(2\).*expected \[64, 48\]"),
    ({"name": "hrnet_w32", "num_deconv": 0}, {"heatmap_size": [32, 24]}, "data.heatmap_size",
     r"dconv model on hrnet_w32 \(stride 4\) outputs input_size / 4 with 0 deconv layers.*expected \[64, 48\]"),
    ({"name": "hrnet_w32", "num_deconv": 3}, {}, "data.heatmap_size", "outputs input_size / \\? with 3 deconv"),
    ({"name": "hrnet_w48", "num_deconv": 0}, {"input_size": [240, 192], "heatmap_size": [60, 48]},
     "data.input_size", "HRNet fuses branches down to 1/32"),
    ({"name": "mobilenetv2_100", "se": True}, {}, "model.se", "ResNets"),
    ({"se": True, "pretrained": "imagenet"}, {}, "model.pretrained", "no SE-ResNet weights.*seresnet50"),
])
def test_config_checks_of_the_zoo_keys(model, data, key, message):
    with pytest.raises(ConfigError, match=f"key '{key}': .*{message}"):
        check(model, **data)


def test_heatmap_sizes_the_config_accepts_are_what_the_models_output():
    for model, data in (({"type": "duc"}, {}), ({"type": "duc", "se": True, "name": "resnet101"}, {}),
                        ({"name": "hrnet_w32", "num_deconv": 0}, {"input_size": [384, 288], "heatmap_size": [96, 72]}),
                        ({"name": "resnet18", "num_deconv": 2}, {"heatmap_size": [32, 24]})):
        cfg = check(model, **data)
        assert isinstance(cfg.model, Config) and cfg.model.se == model.get("se", False)
        with torch.device("meta"):
            out = build_model(cfg.model, initialise=False)(torch.zeros(1, 3, *cfg.data.input_size))
        assert list(out.shape) == [1, 17, *cfg.data.heatmap_size], model
