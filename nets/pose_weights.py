"""``load_pose_weights``: whole pose models from TopPose checkpoints, bare state dicts and foreign checkpoints.

Foreign names are mapped by the architecture that knows them (timm's pattern): a backbone or head with a
``foreign_key(name)`` method turns a checkpoint's name (without its ``backbone.`` / ``head.`` prefix) into
its own; names already TopPose's come back unchanged. So the MMPose_Clean MobileNetV2-RLE file
(``backbone.block_k.n…``, ``head.fc_coord``) and PaddleDetection's PP-TinyPose (``backbone.stem…``,
``final_conv``) load into the TopPose models of the same architecture.

Names without a ``backbone.`` / ``head.`` prefix (the official HRNet / SimpleBaseline files
``pose_hrnet_w32_256x192.pth``, ``pose_resnet_50_256x192.pth``, bare or as their training checkpoints
``{'state_dict': {'module.…'}}``) go to the head when the head has a module of that name (``final_layer``,
``deconv_layers``), otherwise to the backbone (``conv1``, ``layer1``, ``stage4``, …).

Tensors of the head's loss (``head.loss_module.*``: RLE's RealNVP flow) are needed for training only:
they are loaded where they fit the model's flow and dropped otherwise, and a file without them is fine.
"""
import os

from .pretrained import PretrainedWeightsError, read_state_dict

LOSS_PREFIX = "head.loss_module."


def _own_name(module, key):
    return module.foreign_key(key) if hasattr(module, "foreign_key") else key


def _model_key(model, key):
    """TopPose name of a checkpoint tensor name."""
    for part in ("backbone", "head"):
        if key.startswith(part + "."):
            return f"{part}." + _own_name(getattr(model, part), key[len(part) + 1:])
    head_name = _own_name(model.head, key)  # unprefixed (official HRNet / SimpleBaseline files)
    if head_name.split(".")[0] in dict(model.head.named_children()):
        return "head." + head_name
    return "backbone." + _own_name(model.backbone, key)


def load_pose_weights(model, path_or_state_dict, strict=True):
    """Load a pose checkpoint into ``model`` (a ``PoseNet``); returns ``{"loaded": n, "dropped": n,
    "missing": [...], "unused": [...]}``: tensors loaded, loss tensors dropped, and (``strict=False``)
    the model tensors left at their initialisation and the file's tensors not used.

    ``strict=True`` (evaluation, inference): every model tensor outside the loss comes from the file and
    every tensor of the file is used, else ``PretrainedWeightsError`` names the first mismatches.
    ``strict=False`` (``model.init_weights``, fine-tuning): tensors whose name and shape fit are loaded,
    the others skipped; the whole backbone must fit.
    """
    source = path_or_state_dict if isinstance(path_or_state_dict, (str, os.PathLike)) else "the state dict"
    state = read_state_dict(path_or_state_dict) if source != "the state dict" else dict(path_or_state_dict)
    own = model.state_dict()
    fit, unused, bad_shape, dropped = {}, [], [], 0
    for key, value in state.items():
        name = _model_key(model, key)
        if name in own and own[name].shape == value.shape:
            fit[name] = value
        elif name.startswith(LOSS_PREFIX):
            dropped += 1
        elif name in own:
            bad_shape.append(f"{key} {tuple(value.shape)} (model {tuple(own[name].shape)})")
        else:
            unused.append(key)
    missing = [k for k in own if k not in fit and not k.startswith(LOSS_PREFIX)]
    if strict and (missing or unused or bad_shape):
        problems = [f"{len(v)} {what} (e.g. {', '.join(v[:3])})" for what, v in
                    (("model tensors missing from the file", missing), ("tensors of the file unused", unused),
                     ("tensors of another shape", bad_shape)) if v]
        raise PretrainedWeightsError(f"{source} does not fit this model: {'; '.join(problems)}. Is it a "
                                     f"checkpoint of the same model.type / model.name / keypoints?")
    if not strict and any(k.startswith("backbone.") for k in missing):
        raise PretrainedWeightsError(f"{source} lacks backbone tensors of this model "
                                     f"(e.g. {[k for k in missing if k.startswith('backbone.')][:3]})")
    model.load_state_dict(fit, strict=False)
    return {"loaded": len(fit), "dropped": dropped, "missing": missing, "unused": unused + bad_shape}
