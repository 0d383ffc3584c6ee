"""Pictures of keypoints: skeleton overlays and image grids (BGR uint8, OpenCV drawing)."""
import cv2
import numpy as np

from .keypoints import COCO_KEYPOINTS

LEFT, RIGHT, CENTRE, LIMB = (0, 220, 0), (255, 0, 255), (255, 255, 255), (0, 230, 230)


def draw_skeleton(image, kps, thresh=0.0, scale=1.0, radius=3, box=None, label=None, keypoints=COCO_KEYPOINTS,
                  thickness=1):
    """Draw one person on ``image`` (BGR uint8, modified in place and returned).

    ``kps`` (J, 3): x, y in pixels of ``image`` before ``scale``, and a visibility or a score;
    joints with a third value ``<= thresh`` are skipped. ``keypoints`` (``KeypointMeta``) gives the
    skeleton and the sides: left joints (first of each flip pair) and limbs between two of them are
    green, right ones magenta, unpaired joints white and the other limbs yellow; a visibility of exactly 1
    (COCO "occluded") is drawn hollow. ``box`` (x, y, w, h) and ``label`` text are optional; ``thickness``
    is the limbs' line width.
    """
    kps = np.asarray(kps, np.float64).reshape(-1, 3)
    left, paired = keypoints.left_ids, {j for pair in keypoints.flip_pairs for j in pair}
    pts = [(int(round(x * scale + (scale - 1) / 2)), int(round(y * scale + (scale - 1) / 2)))
           for x, y, _ in kps]
    show = kps[:, 2] > thresh
    if box is not None:
        x, y, w, h = (float(v) * scale for v in box)
        cv2.rectangle(image, (int(x), int(y)), (int(x + w) - 1, int(y + h) - 1), (160, 160, 160), 1)
        if label:
            cv2.putText(image, label, (int(x), max(10, int(y) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)
    right = paired - set(left)
    for a, b in keypoints.skeleton:
        if a < len(kps) and b < len(kps) and show[a] and show[b]:
            colour = LEFT if {a, b} <= set(left) else RIGHT if {a, b} <= right else LIMB
            cv2.line(image, pts[a], pts[b], colour, thickness, cv2.LINE_AA)
    for i in np.flatnonzero(show):
        colour = LEFT if i in left else RIGHT if i in paired else CENTRE
        cv2.circle(image, pts[i], radius, colour, 1 if kps[i, 2] == 1 else -1, cv2.LINE_AA)
    return image


def tile(images, columns=4):
    """Grid of BGR images (padded to the largest tile, black fill)."""
    if not images:
        raise ValueError("tile: no images")
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    padded = [cv2.copyMakeBorder(im, 0, h - im.shape[0], 0, w - im.shape[1], cv2.BORDER_CONSTANT)
              for im in images]
    padded += [np.zeros_like(padded[0])] * (-len(padded) % columns)
    rows = [np.concatenate(padded[i:i + columns], 1) for i in range(0, len(padded), columns)]
    return np.concatenate(rows, 0)


def write_image(path, image):
    """``cv2.imwrite`` that raises instead of returning False."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write picture {path}")


def batch_picture(images, kps, thresh=0.0, scale=2, columns=8, max_items=16, keypoints=COCO_KEYPOINTS):
    """Grid of network inputs with keypoints drawn.

    ``images`` [B, 3, H, W] uint8 RGB (as the dataset yields them), ``kps`` [B, J, 3] in input
    pixels with a visibility / score column; ``keypoints`` the ``KeypointMeta``.
    """
    images = np.asarray(images[:max_items], np.uint8).transpose(0, 2, 3, 1)
    tiles = []
    for rgb, person in zip(images, np.asarray(kps)[:max_items]):
        big = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_NEAREST)
        tiles.append(draw_skeleton(big, person, thresh=thresh, scale=scale, radius=2, keypoints=keypoints))
    return tile(tiles, columns)
