"""Rasterising and painting for the synthetic person-keypoint dataset (``datasets/synthetic.py``).

Conventions: coordinates are float pixels, x before y, pixel centres at integer coordinates;
sizes are ``(width, height)``; images are uint8 BGR arrays of shape ``(height, width, 3)``;
masks are bool arrays of shape ``(height, width)``. Shapes are rasterised without anti-aliasing
(``cv2.LINE_8`` with 4 fractional bits), so a mask holds exactly the pixels that were painted.

The figure model (``sample_figure``, ``paint_figure``) draws a frontal, articulated person whose
sides are told apart by appearance: the person's LEFT limbs are warm-hued (red..yellow) with
transverse stripes, the RIGHT limbs cool-hued (cyan..blue) with speckle noise; on the face the left
eye / ear are red / yellow dots and the right eye / ear blue / cyan dots, the nose a dark dot.
"""
import colorsys

import cv2
import numpy as np

SHIFT = 4                # fractional bits used for every cv2 drawing call
_ONE = 1 << SHIFT


def hsv_bgr(hue_deg, sat, val):
    """BGR colour (float array, 0..255) of a hue in degrees and saturation / value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, float(np.clip(sat, 0, 1)),
                                  float(np.clip(val, 0, 1)))
    return np.array([b, g, r]) * 255.0


def _raster(size, lo, hi, draw):
    """Clip the float box ``lo..hi`` (x, y) to the image ``size`` (width, height), call
    ``draw(mask_u8, origin_xy)`` on a local ROI and return ``((x0, y0), bool mask)`` or None."""
    width, height = size
    x0, y0 = max(int(np.floor(lo[0])) - 2, 0), max(int(np.floor(lo[1])) - 2, 0)
    x1, y1 = min(int(np.ceil(hi[0])) + 3, width), min(int(np.ceil(hi[1])) + 3, height)
    if x1 <= x0 or y1 <= y0:
        return None
    local = np.zeros((y1 - y0, x1 - x0), np.uint8)
    draw(local, np.array([x0, y0], np.float64))
    mask = local.astype(bool)
    return ((x0, y0), mask) if mask.any() else None


def _fx(points, origin):
    return np.round((np.asarray(points, np.float64) - origin) * _ONE).astype(np.int32)


def raster_segment(size, p0, p1, thickness):
    """Thick line with round caps from ``p0`` to ``p1`` (x, y); ``thickness`` in pixels (>= 1)."""
    thickness = max(1, int(round(thickness)))
    pts = np.array([p0, p1], np.float64)
    pad = thickness / 2.0 + 1.0

    def draw(m, o):
        a, b = _fx(pts, o)
        cv2.line(m, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1, thickness, cv2.LINE_8, SHIFT)
    return _raster(size, pts.min(0) - pad, pts.max(0) + pad, draw)


def raster_ellipse(size, center, axes, angle_deg, start_deg=0, end_deg=360):
    """Filled ellipse (or sector ``start_deg..end_deg``) with semi-axes ``axes`` (x, y) in pixels,
    rotated by ``angle_deg`` clockwise in image coordinates."""
    center = np.asarray(center, np.float64)
    r = max(axes) + 1.0

    def draw(m, o):
        c = _fx(center, o)
        ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
        cv2.ellipse(m, (int(c[0]), int(c[1])), ax, float(angle_deg), float(start_deg), float(end_deg),
                    1, -1, cv2.LINE_8, SHIFT)
    return _raster(size, center - r, center + r, draw)


def raster_polygon(size, points):
    """Filled polygon through ``points`` (N x 2, x y)."""
    pts = np.asarray(points, np.float64)

    def draw(m, o):
        cv2.fillPoly(m, [_fx(pts, o)], 1, cv2.LINE_8, SHIFT)
    return _raster(size, pts.min(0), pts.max(0), draw)


def paint(image, shape, colour, rng, stripes=None, noise=6.0, layers=()):
    """Paint a rasterised ``shape`` (from a ``raster_*`` function, may be None) into ``image``.

    colour: BGR 0..255. stripes: optional ``(origin_xy, unit_direction_xy, period_px, contrast)``;
    pixels on odd stripes are darkened by ``contrast`` (0..1). noise: std of per-pixel luminance
    noise in grey levels. layers: bool masks (height, width) in which the shape is also set.
    """
    if shape is None:
        return
    (x0, y0), m = shape
    yy, xx = np.nonzero(m)
    yy += y0
    xx += x0
    gain = np.ones(len(yy), np.float32)
    if stripes is not None:
        origin, direction, period, contrast = stripes
        t = (xx - origin[0]) * direction[0] + (yy - origin[1]) * direction[1]
        gain[(np.floor(t / period) % 2) == 1] = 1.0 - contrast
    col = gain[:, None] * np.asarray(colour, np.float32)[None, :]
    if noise > 0:
        col += (noise * rng.standard_normal(len(yy), dtype=np.float32))[:, None]
    image[yy, xx] = np.clip(col, 0, 255).astype(np.uint8)
    for layer in layers:
        layer[yy, xx] = True


def random_colour(rng):
    """Any hue, any saturation, mid-to-high value (BGR 0..255)."""
    return hsv_bgr(rng.uniform(0, 360), rng.uniform(0.0, 1.0), rng.uniform(0.2, 1.0))


def limb_colour(rng, left):
    """Base colour of a limb: warm hue family for the person's left, cool for the right."""
    hue = rng.uniform(-20, 50) if left else rng.uniform(180, 250)
    return hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)


def draw_background(rng, size):
    """Smooth random colour field plus pixel noise, shape (height, width, 3) uint8 BGR."""
    width, height = size
    gw, gh = rng.integers(2, 8, size=2)
    palette = np.stack([random_colour(rng) for _ in range(3)])
    weights = rng.dirichlet(np.ones(3), size=(gh, gw))
    coarse = (weights @ palette).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    field += np.float32(rng.uniform(2, 12)) * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(field, 0, 255).astype(np.uint8)


def draw_clutter(image, rng, count, scale):
    """Draw ``count`` random objects: rectangles, ellipses, lines, polygons and limb-like striped
    segments (warm or cool, as distractors). scale: typical object size in pixels."""
    size = image.shape[1], image.shape[0]
    for _ in range(count):
        kind = rng.choice(["rect", "ellipse", "line", "poly", "limb", "limb"])
        c = rng.uniform([-0.05 * size[0], -0.05 * size[1]], [1.05 * size[0], 1.05 * size[1]])
        s = scale * rng.uniform(0.2, 1.0)
        noise = rng.uniform(0, 15)
        if kind == "rect":
            half = rng.uniform(0.1, 1.0, 2) * s
            shape = raster_polygon(size, c + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half)
            paint(image, shape, random_colour(rng), rng, noise=noise)
        elif kind == "ellipse":
            shape = raster_ellipse(size, c, rng.uniform(0.1, 0.6, 2) * s, rng.uniform(0, 180))
            paint(image, shape, random_colour(rng), rng, noise=noise)
        elif kind == "line":
            d = rng.normal(size=2)
            d = d / (np.linalg.norm(d) + 1e-9) * s
            paint(image, raster_segment(size, c - d, c + d, rng.uniform(1, 4)),
                  random_colour(rng), rng, noise=noise)
        elif kind == "poly":
            ang = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
            pts = c + np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.2, 0.7, (len(ang), 1)) * s
            paint(image, raster_polygon(size, pts), random_colour(rng), rng, noise=noise)
        else:
            p, ang = c, rng.uniform(0, 2 * np.pi)
            thick = max(2.0, s * rng.uniform(0.12, 0.25))
            left = bool(rng.integers(2))
            colour = hsv_bgr(*limb_colour(rng, left))
            for _ in range(rng.integers(1, 3)):
                q = p + np.array([np.cos(ang), np.sin(ang)]) * s * rng.uniform(0.5, 1.0)
                _paint_limb(image, rng, p, q, thick, colour, left, stripe_period=rng.uniform(0.6, 1.2))
                p, ang = q, ang + rng.uniform(-2.2, 2.2)


def draw_occluder(image, rng, center, scale, layers=()):
    """Textured rectangle, ellipse or polygon of about ``scale`` pixels centred at ``center``."""
    size = image.shape[1], image.shape[0]
    kind = rng.integers(3)
    if kind == 0:
        half = rng.uniform(0.25, 0.6, 2) * scale
        ang = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        corners = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half) @ rot.T + center
        shape = raster_polygon(size, corners)
    elif kind == 1:
        shape = raster_ellipse(size, center, rng.uniform(0.25, 0.6, 2) * scale, rng.uniform(0, 180))
    else:
        ang = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(4, 8)))
        pts = center + np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.3, 0.6, (len(ang), 1)) * scale
        shape = raster_polygon(size, pts)
    d = rng.normal(size=2)
    stripes = (center, d / (np.linalg.norm(d) + 1e-9), max(2.0, rng.uniform(0.05, 0.3) * scale),
               rng.uniform(0, 0.4)) if rng.random() < 0.5 else None
    paint(image, shape, random_colour(rng), rng, stripes=stripes, noise=rng.uniform(2, 15), layers=layers)


def _paint_limb(image, rng, p0, p1, thickness, colour, left, stripe_period, layers=()):
    """One limb segment: left limbs get transverse stripes, right limbs speckle noise."""
    size = image.shape[1], image.shape[0]
    shape = raster_segment(size, p0, p1, thickness)
    if left:
        d = np.asarray(p1, np.float64) - p0
        d = d / (np.linalg.norm(d) + 1e-9)
        stripes = (p0, d, max(3.0, stripe_period * thickness), 0.4)
        paint(image, shape, colour, rng, stripes=stripes, noise=4.0, layers=layers)
    else:
        paint(image, shape, colour, rng, noise=22.0, layers=layers)


def _rot(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _limb_angle(rng, ranges):
    """Pick one of ``ranges`` [(probability, low_deg, high_deg), ...] and sample radians in it."""
    probs = np.array([r[0] for r in ranges], np.float64)
    lo, hi = ranges[rng.choice(len(ranges), p=probs / probs.sum())][1:]
    return np.deg2rad(rng.uniform(lo, hi))


def sample_figure(rng, height_px, pelvis_xy):
    """Sample the pose and appearance of one frontal figure.

    height_px: body height (head top to ankles) in pixels; pelvis_xy: (x, y) of the hip centre.
    The figure faces the camera, so its left side is on the image's right. Returns a dict with
    ``joints`` (17 x 2 float64, COCO order, image pixels rounded to 0.01), ``height`` and the
    drawing parameters used by ``paint_figure``.
    """
    H = float(height_px)
    build = rng.uniform(0.85, 1.15)
    lean = np.deg2rad(np.clip(rng.normal(0, 6), -15, 15) if rng.random() < 0.9 else rng.uniform(-30, 30))
    body = _rot(np.deg2rad(rng.normal(0, 3)))
    torso = body @ _rot(lean)
    pelvis = np.asarray(pelvis_xy, np.float64)
    neck = pelvis + torso @ np.array([0.0, -rng.uniform(0.27, 0.31) * H])
    sh_half, hip_half = rng.uniform(0.105, 0.125) * build * H, rng.uniform(0.075, 0.09) * build * H
    j = np.zeros((17, 2))
    j[5], j[6] = neck + torso @ [sh_half, 0], neck - torso @ [sh_half, 0]
    j[11], j[12] = pelvis + body @ [hip_half, 0], pelvis - body @ [hip_half, 0]
    arm_up = [(0.5, -15, 45), (0.35, 45, 120), (0.15, 120, 170)]
    elbow = [(0.6, 0, 40), (0.4, 40, 145)]
    hip_out, knee = [(0.85, -8, 22), (0.15, 22, 50)], [(0.7, 0, 15), (0.3, 15, 70)]
    for side, s in ((0, 1.0), (1, -1.0)):           # side 0 = person's left = image right (+x)
        a1 = _limb_angle(rng, arm_up)
        a2 = a1 + rng.choice([-1.0, 1.0]) * _limb_angle(rng, elbow)
        for (i0, i1), ang, length in (((5, 7), a1, 0.17), ((7, 9), a2, 0.15)):
            d = torso @ np.array([s * np.sin(ang), np.cos(ang)])
            j[i1 + side] = j[i0 + side] + d * length * H * rng.uniform(0.8, 1.0)
        l1 = _limb_angle(rng, hip_out)
        l2 = l1 + rng.choice([-1.0, 1.0]) * _limb_angle(rng, knee)
        for (i0, i1), ang in (((11, 13), l1), ((13, 15), l2)):
            d = body @ np.array([s * np.sin(ang), np.cos(ang)])
            j[i1 + side] = j[i0 + side] + d * 0.245 * H * rng.uniform(0.8, 1.0)
    head_rot = torso @ _rot(np.deg2rad(rng.normal(0, 8)))
    head_c = neck + head_rot @ np.array([0.0, -0.115 * H])
    a, b = 0.062 * H * rng.uniform(0.9, 1.1), 0.078 * H * rng.uniform(0.9, 1.1)
    yaw = rng.uniform(-0.2, 0.2) * a
    face = np.array([[yaw, 0.3 * b], [0.34 * a + yaw, -0.1 * b], [-0.34 * a + yaw, -0.1 * b],
                     [0.92 * a + 0.2 * yaw, 0.05 * b], [-0.92 * a + 0.2 * yaw, 0.05 * b]])
    j[:5] = head_c + face @ head_rot.T
    left_hue, right_hue = limb_colour(rng, True), limb_colour(rng, False)
    torso_kind = rng.integers(3)
    torso_hue = rng.uniform(90, 150) if torso_kind == 0 else rng.uniform(275, 320)
    return {
        "joints": np.round(j, 2), "height": H, "pelvis": pelvis, "neck": neck,
        "head": (head_c, (a, b), np.rad2deg(np.arctan2(head_rot[1, 0], head_rot[0, 0]))),
        "thick": {"upper_arm": 0.055, "forearm": 0.046, "thigh": 0.075, "shin": 0.06},
        "build": build,
        "limb_hsv": (left_hue, right_hue),
        "lower_dv": rng.choice([-0.3, 0.3]),
        "stripe_period": rng.uniform(0.6, 1.2),
        "torso": hsv_bgr(torso_hue, 0.05 if torso_kind == 2 else rng.uniform(0.4, 0.9),
                         rng.uniform(0.3, 0.9)),
        "torso_stripes": rng.random() < 0.5,
        "skin": hsv_bgr(rng.uniform(15, 32), rng.uniform(0.2, 0.55), rng.uniform(0.45, 0.95)),
        "hair": hsv_bgr(rng.uniform(0, 40), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.35)),
        "shoe": hsv_bgr(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.1, 0.35)),
    }


def paint_figure(image, fig, rng, mask):
    """Draw a figure from ``sample_figure`` into ``image`` (BGR, modified in place) and set its
    pixels in ``mask`` (bool, height x width). Order: legs, feet, torso, arms, hands, neck, head."""
    size = image.shape[1], image.shape[0]
    H, j, lay = fig["height"], fig["joints"], (mask,)
    th = {k: max(2.0, v * H * fig["build"]) for k, v in fig["thick"].items()}
    colours = {}
    for side, (hue, sat, val) in enumerate(fig["limb_hsv"]):
        colours[side, 0] = hsv_bgr(hue, sat, val)
        lower_val = val + fig["lower_dv"]
        if not 0.35 < lower_val <= 1.0:           # keep upper and lower segments apart in value
            lower_val = val - fig["lower_dv"]
        colours[side, 1] = hsv_bgr(hue + 12, sat, lower_val)
    limbs = {"leg": (((11, 13), "thigh", 0), ((13, 15), "shin", 1)),
             "arm": (((5, 7), "upper_arm", 0), ((7, 9), "forearm", 1))}

    def draw_limbs(kind):
        for side in (0, 1):
            for (i0, i1), part, lower in limbs[kind]:
                _paint_limb(image, rng, j[i0 + side], j[i1 + side], th[part], colours[side, lower],
                            side == 0, fig["stripe_period"], lay)

    draw_limbs("leg")
    for side, s in ((0, 1.0), (1, -1.0)):
        foot = j[15 + side] + np.array([s * 0.035, 0.012]) * H
        paint(image, raster_ellipse(size, foot, (0.045 * H, 0.022 * H), 0), fig["shoe"], rng,
              noise=4.0, layers=lay)
    centre = j[[5, 6, 12, 11]].mean(0)
    quad = j[[5, 6, 12, 11]] + (j[[5, 6, 12, 11]] - centre) * 0.12
    quad[:2] += (fig["neck"] - fig["pelvis"]) * 0.06
    up = (fig["neck"] - fig["pelvis"]) / (np.linalg.norm(fig["neck"] - fig["pelvis"]) + 1e-9)
    stripes = (fig["pelvis"], up, max(3.0, 0.05 * H), 0.3) if fig["torso_stripes"] else None
    paint(image, raster_polygon(size, quad), fig["torso"], rng, stripes=stripes, noise=8.0, layers=lay)
    belt = np.array([quad[3], quad[2], quad[2] + up * 0.04 * H, quad[3] + up * 0.04 * H])
    paint(image, raster_polygon(size, belt), fig["torso"] * 0.35, rng, noise=3.0, layers=lay)
    draw_limbs("arm")
    for side in (0, 1):
        d = j[9 + side] - j[7 + side]
        d = d / (np.linalg.norm(d) + 1e-9)
        hand = j[9 + side] + d * 0.025 * H
        paint(image, raster_ellipse(size, hand, (0.028 * H, 0.028 * H), 0), fig["skin"], rng,
              noise=3.0, layers=lay)
    head_c, (a, b), angle = fig["head"]
    paint(image, raster_segment(size, fig["neck"], head_c, 0.05 * H), fig["skin"], rng, noise=3.0, layers=lay)
    paint(image, raster_ellipse(size, head_c, (a, b), angle), fig["skin"], rng, noise=3.0, layers=lay)
    rot = _rot(np.deg2rad(angle))
    hair_c = head_c + rot @ np.array([0.0, -0.28 * b])
    paint(image, raster_ellipse(size, hair_c, (1.06 * a, 0.76 * b), angle, 180, 360), fig["hair"], rng,
          noise=5.0, layers=lay)
    dots = ((0, (10, 0.9, 0.25), 0.011), (1, (0, 1.0, 0.95), 0.009), (2, (220, 1.0, 0.95), 0.009),
            (3, (55, 1.0, 1.0), 0.012), (4, (185, 1.0, 0.9), 0.012))
    for k, hsv, r in dots:
        rr = max(1.0, r * H)
        paint(image, raster_ellipse(size, j[k], (rr, rr), 0), hsv_bgr(*hsv), rng, noise=0.0, layers=lay)
