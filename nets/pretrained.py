"""Loading ImageNet backbone weights: a local file, or torchvision's download cache.

``'imagenet'`` means torchvision's weights (``TORCHVISION_WEIGHTS``); the other architectures take the
local path of their ImageNet file (``LOCAL_IMAGENET_FILES`` says which). A file may hold more than the
backbone (a classifier, HRNet's ``incre_modules`` / ``downsamp_modules`` / ``final_layer`` / full stage-4
fusion): the tensors the backbone has are taken, and all of them must be there.

Downloads never hang: they run with a socket timeout, are refused outright when
``TOPPOSE_OFFLINE=1`` (tests set it), and fail with a message that says where to get the file
and which YAML key takes its local path.
"""
import contextlib
import os
import socket

import numpy as np
import torch
import torchvision

TORCHVISION_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": torchvision.models.ResNet101_Weights.IMAGENET1K_V1,
    "resnet152": torchvision.models.ResNet152_Weights.IMAGENET1K_V1,
    "mobilenetv2_100": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
}
# architectures torchvision has no ImageNet weights for -> the file to give as model.pretrained
LOCAL_IMAGENET_FILES = {
    "hrnet_w32": "the classification HRNet's hrnet_w32-36af842e.pth (HRNet-Image-Classification, timm)",
    "hrnet_w48": "the classification HRNet's hrnet_w48-8ef0771d.pth (HRNet-Image-Classification, timm)",
    **{f"seresnet{d}": f"timm's seresnet{d} ImageNet weights (torch.save of timm.create_model("
                       f"'seresnet{d}', pretrained=True).state_dict())" for d in (18, 34, 50, 101, 152)},
}
DOWNLOAD_TIMEOUT_S = 30


def _numpy_scalar_globals():
    """numpy scalars and dtypes, safe to unpickle: HRNet's training checkpoints keep their AP as a numpy float
    ('perf'), pickled as numpy 1's ``numpy.core.multiarray.scalar`` or numpy 2's ``numpy._core…``."""
    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
    dtypes = getattr(np, "dtypes", None)
    found = [scalar, np.dtype] + [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    if scalar.__module__ != "numpy.core.multiarray" and torch.__version__ >= "2.6":
        found.append((scalar, "numpy.core.multiarray.scalar"))  # (object, pickled name) since torch 2.6
    return found


NUMPY_SCALAR_GLOBALS = _numpy_scalar_globals()


class PretrainedWeightsError(RuntimeError):
    """Backbone weights could not be found, fetched or matched to the model."""


def read_state_dict(path):
    """State dict from a checkpoint file: bare, or under 'state_dict' / 'model'; 'module.' stripped."""
    try:
        safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with safe_globals(NUMPY_SCALAR_GLOBALS) if safe_globals else contextlib.nullcontext():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or not a torch file
        raise PretrainedWeightsError(f"cannot read weights file '{path}': {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise PretrainedWeightsError(f"'{path}' holds no state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def imagenet_state_dict(name):
    """torchvision's ImageNet weights for ``name``, from its cache or a bounded download."""
    if name not in TORCHVISION_WEIGHTS:
        local = LOCAL_IMAGENET_FILES.get(name, f"an ImageNet checkpoint of {name}")
        raise PretrainedWeightsError(f"model.pretrained 'imagenet' downloads torchvision's weights of "
                                     f"{', '.join(TORCHVISION_WEIGHTS)} only; torchvision has none for {name}: "
                                     f"set model.pretrained to the local path of {local}")
    weights = TORCHVISION_WEIGHTS[name]
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if os.path.isfile(cached):
        return read_state_dict(cached)
    advice = (f"download {weights.url} on a machine with network and set model.pretrained to its "
              f"local path (or put it at {cached})")
    if os.environ.get("TOPPOSE_OFFLINE") == "1":
        raise PretrainedWeightsError(f"ImageNet weights for {name} are not cached and TOPPOSE_OFFLINE=1 "
                                     f"forbids downloading: {advice}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights.get_state_dict(progress=True)
    except Exception as e:  # URLError, timeouts, HTTP errors, partial files
        raise PretrainedWeightsError(f"could not download ImageNet weights for {name} ({e}): {advice}") from None
    finally:
        socket.setdefaulttimeout(previous)


def load_backbone_weights(backbone, name, spec):
    """Load ``spec`` ('imagenet' or a file path) into ``backbone``; return the number of tensors loaded.

    ``name`` is the architecture (``backbone.arch`` where it has one: ``seresnet50`` for ResNet-50 with
    SE). A file's names may carry a ``backbone.`` prefix and may be the foreign names the backbone's
    ``foreign_key`` maps (mmpose-style MobileNetV2); tensors the backbone lacks are ignored."""
    state = imagenet_state_dict(name) if spec == "imagenet" else read_state_dict(spec)
    rename = getattr(backbone, "foreign_key", lambda k: k)
    state = {rename(k[len("backbone."):] if k.startswith("backbone.") else k): v for k, v in state.items()}
    return _load_matching(backbone, name, spec, state)


def load_backbone_from_checkpoint(backbone, path):
    """Load the ``backbone.*`` tensors of a TopPose checkpoint (or state dict) at ``path``.

    For ``model.init_backbone``: e.g. an RLE model starting from the backbone of a heatmap model
    trained on the same keypoints. Returns the number of tensors loaded.
    """
    state = {k[len("backbone."):]: v for k, v in read_state_dict(path).items() if k.startswith("backbone.")}
    if not state:
        raise PretrainedWeightsError(f"'{path}' has no backbone.* tensors; model.init_backbone takes a "
                                     f"TopPose checkpoint (best.pth / last.pth)")
    return _load_matching(backbone, type(backbone).__name__, path, state)


def _load_matching(backbone, name, spec, state):
    """Load the tensors of ``state`` that fit ``backbone``; every backbone tensor must be there."""
    own = backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise PretrainedWeightsError(f"no tensor of '{spec}' matches the {name} backbone "
                                     f"(first keys: {list(state)[:3]})")
    missing = [k for k in own if k not in matched]
    if missing:
        raise PretrainedWeightsError(f"'{spec}' lacks {len(missing)} {name} backbone tensors "
                                     f"(e.g. {missing[:3]}); is it a {name} checkpoint?")
    backbone.load_state_dict(matched)
    return len(matched)
