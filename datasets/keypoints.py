"""Keypoint metadata: the one object that says which joints a dataset and a model have.

``KeypointMeta`` holds the joint names, the left/right flip pairs, the OKS sigmas, the skeleton
(for drawing) and the upper-body joints (half-body augmentation). COCO's 17 joints
(``datasets.coco_meta``) are the default; the YAML ``keypoints`` section replaces them for a
custom COCO-format dataset with another set of joints. Every part of the pipeline that needs one
of these facts (augmentation, flip test, OKS-NMS, COCOeval, drawing) reads it from here.
"""
import numpy as np

from . import coco_meta


def keypoint_problem(names, flip_pairs, sigmas, skeleton, upper_body_ids):
    """``(part, message)`` for the first inconsistency of a keypoint definition, else None.

    ``part`` is the name of the offending field (``names``, ``flip_pairs``, ...).
    """
    num = len(names)
    if num == 0:
        return "names", "at least one joint name"
    if len(set(names)) != num:
        duplicated = sorted({n for n in names if list(names).count(n) > 1})
        return "names", f"unique joint names (repeated: {', '.join(duplicated)})"
    paired = []
    for pair in flip_pairs:
        if len(pair) != 2:
            return "flip_pairs", f"pairs of two joint indices, got {list(pair)}"
        a, b = (int(v) for v in pair)
        if not (0 <= a < num and 0 <= b < num):
            return "flip_pairs", f"joint indices in [0, {num - 1}] ({num} names), got {[a, b]}"
        if a == b:
            return "flip_pairs", f"two different joints per pair, got {[a, b]}"
        paired += [a, b]
    if len(set(paired)) != len(paired):
        return "flip_pairs", "each joint in at most one pair (a flip swaps each pair both ways)"
    if len(sigmas) != num:
        return "sigmas", f"one OKS sigma per joint ({num}), got {len(sigmas)}"
    if not all(s > 0 for s in sigmas):
        return "sigmas", "OKS sigmas > 0"
    for link in skeleton:
        if len(link) != 2 or not all(0 <= int(v) < num for v in link):
            return "skeleton", f"pairs of joint indices in [0, {num - 1}], got {list(link)}"
    if not all(0 <= int(i) < num for i in upper_body_ids) or len(set(upper_body_ids)) != len(upper_body_ids):
        return "upper_body_ids", f"distinct joint indices in [0, {num - 1}]"
    return None


class KeypointMeta:
    """Joint names, flip pairs (left joint first), OKS sigmas, skeleton links and upper-body ids.

    Indices are 0-based. Raises ``ValueError`` on an inconsistent definition.
    """

    def __init__(self, names, flip_pairs, sigmas, skeleton=(), upper_body_ids=()):
        problem = keypoint_problem(names, flip_pairs, sigmas, skeleton, upper_body_ids)
        if problem:
            raise ValueError(f"keypoints.{problem[0]}: expected {problem[1]}")
        self.names = tuple(str(n) for n in names)
        self.flip_pairs = tuple((int(a), int(b)) for a, b in flip_pairs)
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.skeleton = tuple((int(a), int(b)) for a, b in skeleton)
        self.upper_body_ids = tuple(int(i) for i in upper_body_ids)

    @property
    def num_joints(self):
        return len(self.names)

    @property
    def left_ids(self):
        """Joints drawn as 'left': the first joint of every flip pair."""
        return frozenset(a for a, _ in self.flip_pairs)

    def flip_index(self):
        """Index array ``perm`` such that ``x[perm]`` swaps every left/right pair."""
        return coco_meta.flip_permutation(self.num_joints, self.flip_pairs)

    @classmethod
    def from_config(cls, keypoints_cfg):
        """From the YAML ``keypoints`` section (already checked by ``processors.config``)."""
        k = keypoints_cfg
        return cls(k.names, k.flip_pairs, k.sigmas, k.skeleton, k.upper_body_ids)

    def __eq__(self, other):
        return isinstance(other, KeypointMeta) and (
            (self.names, self.flip_pairs, self.skeleton, self.upper_body_ids)
            == (other.names, other.flip_pairs, other.skeleton, other.upper_body_ids)
            and np.array_equal(self.sigmas, other.sigmas))

    def __repr__(self):
        return f"KeypointMeta({self.num_joints} joints: {', '.join(self.names)})"


COCO_KEYPOINTS = KeypointMeta(coco_meta.KEYPOINT_NAMES, coco_meta.FLIP_PAIRS, coco_meta.OKS_SIGMAS,
                              coco_meta.SKELETON, coco_meta.UPPER_BODY_IDS)
