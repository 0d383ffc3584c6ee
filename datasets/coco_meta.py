"""COCO person-keypoint constants shared by datasets, decoders and evaluation.

Joint order is COCO's. Sigmas are the per-keypoint OKS constants of pycocotools
(``COCOeval.kpt_oks_sigmas``); ``OKS_SIGMAS`` is the same array, as the reference
``oks_iou`` takes it.
"""
import numpy as np

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(KEYPOINT_NAMES)

# Left/right joint pairs exchanged by a horizontal flip.
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# Joints used by the half-body augmentation (HRNet's upper/lower split).
UPPER_BODY_IDS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
LOWER_BODY_IDS = (11, 12, 13, 14, 15, 16)

# The 19 COCO skeleton links, 0-based joint indices (for drawing).
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# pycocotools COCOeval keypoint sigmas (already divided by 10).
OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
     1.07, 1.07, 0.87, 0.87, 0.89, 0.89], dtype=np.float64) / 10.0

# Names of the ten numbers COCOeval.summarize() prints for keypoints, in its order.
STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")


def flip_permutation(num_joints=NUM_JOINTS, flip_pairs=FLIP_PAIRS):
    """Index array ``perm`` such that ``x[perm]`` swaps every left/right pair."""
    perm = np.arange(num_joints)
    for pair in flip_pairs:
        a, b = (int(v) for v in pair)
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"flip pair ({a}, {b}) is out of range for {num_joints} joints")
        perm[a], perm[b] = b, a
    return perm
