"""Self-blended pseudo-fakes (Shiohara and Yamasaki, CVPR 2022), made from whole clips.

A face blended with a slightly altered copy of itself through a soft face mask carries what
face swaps leave behind (a blending boundary, a colour and sharpness mismatch) without any
identity change, so a detector can learn those traces from real videos alone. Every random
choice is drawn once per clip: a swapped video is consistent over time, and per-frame choices
would teach the sequence model to look for a flicker that real deepfakes do not have.

The recipe follows SBI's official code:
- mask: with dlib's 68 landmarks (``dflib preprocess --landmarks68``), one of SBI's four landmark
  hulls (the convex hull of all points; DeepFaceLab's "full" mask; the union of the face's parts,
  with or without the brows raised towards the forehead). Without them, a face outline placed
  from the detector's 5 points, or an ellipse where a face sits in the crop;
- source-target augmentation: the colour change (RGB shift with probability 0.3, brightness and
  contrast +-10%) and the frequency change (downsampling by 2 or 4, or a sharpening kernel) go
  to the pasted face or, half the time, to the frame around it;
- the pasted face and its mask are scaled by 0.95-1.05 and moved by up to 3% across and 1.5%
  down the crop, then the mask is eroded and blurred with SBI's kernel sizes (scaled from its
  ~224 px masks to the crop), and blended at a ratio drawn from 0.25, 0.5, 0.75, 1, 1, 1.
Where dflib differs: SBI's mask also gets an elastic deformation, which moves its edge by about
0.3% of the side (alpha 50, sigma 7 px at 380 px) before a blur ten times wider; a radial wobble of
the outline drawn once per clip (about 3% of the radius) stands in for it and for the variety of
SBI's 81-point hulls. SBI's blur kernels (5-25 px) with sigmas of 5-45 px are nearly box filters:
each becomes the plain Gaussian of the same spread, so one draw renders alike at any crop size. SBI's hue and saturation shifts (+-0.3 on 8-bit channels) round to nothing
and are left out. SBI varies the crop's margins; dflib varies the face's scale in
``ClipAugment`` (``scale_shift``) and keeps preprocessing's crop, which prediction repeats.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MASK_KINDS = ("hull", "ellipse")  # from 5 landmarks (or none)
LANDMARK_HULLS = ("facehull", "dfl_full", "components", "extended")  # from 68 landmarks, as SBI
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's dynamic_blend
_SBI_MASK_SIDE = 224  # SBI blurs its masks at 192-256 px: its kernel sizes are fractions of that

# Where CenterFace's 5 landmarks fall, as fractions of a square crop with a 1.3x margin around
# the face box: used to place the face when the detector gave no landmarks.
_DEFAULT_LANDMARKS = np.array(
    [[0.3875, 0.40], [0.6125, 0.40], [0.50, 0.53], [0.41, 0.66], [0.59, 0.66]], np.float32
)

# Face outline in "face units": x in half face widths, y in eye-to-mouth distances, origin
# half-way from the eyes to the mouth. From the brows (-1.25) to the chin (+1.25), widest at the
# cheekbones, narrowing to the jaw.
_HALF_OUTLINE = np.array(
    [[0.0, -1.25], [0.55, -1.2], [0.95, -0.95], [1.05, -0.4], [1.0, 0.2], [0.85, 0.7],
     [0.5, 1.1], [0.0, 1.25]],
    np.float32,
)
_FACE_OUTLINE = np.concatenate([_HALF_OUTLINE, _HALF_OUTLINE[1:-1][::-1] * [-1.0, 1.0]])
_ELLIPSE_AXES = (1.0, 1.25)  # semi-axes in face units, around the same region as the outline
_OUTLINE_POINTS = 64  # dense enough that the wobble looks smooth at 512 px
_WOBBLE_HARMONICS = (2, 3, 4)  # 1 would only shift the mask; higher ones look jagged
_MIN_FACE_SPAN = 0.02  # eye-to-mouth distance, fraction of the side, below which landmarks are junk


@dataclass(frozen=True)
class BlendParams:
    """Everything random about one pseudo-fake; the defaults change nothing.

    Lengths are fractions of the crop side, so one draw renders the same fake at any crop size.
    """

    alter: str = "source"  # which side gets the colour and frequency change: the pasted face
    # ("source") or the frame around it ("target")
    color_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to R, G, B (0-255 scale)
    brightness: float = 0.0  # added to every channel (0-255 scale)
    contrast: float = 1.0  # gain around mid-grey
    downscale: int = 1  # > 1: resampled through 1/downscale of the side (nearest down, linear up)
    sharpen: float = 0.0  # weight of a 3x3 sharpening kernel (0: none, 1: the kernel alone)
    sharpen_lightness: float = 1.0  # centre weight added to that kernel
    scale: float = 1.0  # of the pasted face and its mask, around the crop centre
    shift: tuple[float, float] = (0.0, 0.0)  # x, y of the pasted face and its mask, fraction of the side
    mask_kind: str = "hull"  # MASK_KINDS with 5 landmarks, LANDMARK_HULLS with 68
    mask_wobble: tuple[float, ...] = ()  # cos, sin pairs per harmonic: radial outline deformation
    mask_erode: float = 0.0  # how far the mask edge moves in, fraction of the side
    mask_blur: float = 0.0  # Gaussian sigma that softens the edge, fraction of the side
    blend_ratio: float = 1.0  # weight of the pasted face where the mask is 1


def identity_params() -> BlendParams:
    return BlendParams()


def sample_params(rng: np.random.Generator, size: int, points: int = 5) -> BlendParams:
    """Draw one fake's parameters for crops of `size` pixels and masks from `points` landmarks
    (5, or 68 for SBI's landmark hulls); the ranges are SBI's."""
    if size < 8:
        raise ValueError(f"crop size {size} is too small for a pseudo-fake")
    if points not in (5, 68):
        raise ValueError(f"masks are made from 5 or 68 landmarks, not {points}")
    color_shift = rng.uniform(-20, 20, 3) if rng.random() < 0.3 else np.zeros(3)
    resample = rng.random() < 0.5
    erode_kernel, blur_kernel = (int(rng.choice(np.arange(5, 26, 2))) for _ in range(2))
    if points == 68:  # SBI's random_get_hull: each of the four alike
        kind = LANDMARK_HULLS[int(rng.integers(len(LANDMARK_HULLS)))]
    else:
        kind = MASK_KINDS[int(rng.random() < 0.4)]
    return BlendParams(
        alter="source" if rng.random() < 0.5 else "target",
        color_shift=tuple(float(c) for c in color_shift),
        brightness=float(rng.uniform(-0.1, 0.1) * 255),
        contrast=float(rng.uniform(0.9, 1.1)),
        downscale=int(rng.choice([2, 4])) if resample else 1,
        sharpen=0.0 if resample else float(rng.uniform(0.2, 0.5)),
        sharpen_lightness=1.0 if resample else float(rng.uniform(0.5, 1.0)),
        scale=float(rng.uniform(0.95, 1 / 0.95)),
        shift=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.015, 0.015))),
        mask_kind=kind,
        mask_wobble=tuple(float(w) for w in rng.normal(0.0, 0.03, 2 * len(_WOBBLE_HARMONICS))),
        # SBI blurs the hard mask and keeps only where it stays 1: an erosion by half the kernel.
        mask_erode=float((erode_kernel // 2) / _SBI_MASK_SIDE),
        mask_blur=_truncated_gaussian_sigma(blur_kernel, float(rng.uniform(5, 45))) / _SBI_MASK_SIDE,
        blend_ratio=float(rng.choice(BLEND_RATIOS)),
    )


def _truncated_gaussian_sigma(kernel: int, sigma: float) -> float:
    """The spread of OpenCV's Gaussian kernel of that side and sigma: SBI's sigmas (5-45 px) mostly
    exceed its kernels (5-25 px), which makes them nearly box filters; one plain Gaussian of the
    same spread renders at any crop size without rounding a kernel side."""
    offsets = np.arange(kernel) - kernel // 2
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return float(np.sqrt((weights * offsets ** 2).sum() / weights.sum()))


def _five_points(landmarks: np.ndarray) -> np.ndarray:
    """(..., 5, 2) eyes, nose tip, mouth corners, from 5 or dlib's 68 landmarks."""
    if landmarks.shape[-2] == 5:
        return landmarks
    return np.stack([landmarks[..., 36:42, :].mean(axis=-2), landmarks[..., 42:48, :].mean(axis=-2),
                     landmarks[..., 30, :], landmarks[..., 48, :], landmarks[..., 54, :]], axis=-2)


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin and axes (rows: image vectors of one face unit in x and y) that follow the face's
    position, size and roll. Under yaw the eyes close up but the eye-to-mouth span does not, so
    the width leans on both."""
    landmarks = _five_points(landmarks)
    eyes = (landmarks[0] + landmarks[1]) / 2
    down = (landmarks[3] + landmarks[4]) / 2 - eyes
    span = float(np.hypot(*down))
    unit_down = down / span
    unit_right = np.array([unit_down[1], -unit_down[0]])
    half_width = 0.55 * float(np.hypot(*(landmarks[1] - landmarks[0]))) + 0.45 * span
    return eyes + 0.5 * span * unit_down, np.stack([half_width * unit_right, span * unit_down])


def _resample_closed(polygon: np.ndarray, count: int) -> np.ndarray:
    closed = np.vstack([polygon, polygon[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.linspace(0.0, arc[-1], count, endpoint=False)
    return np.stack([np.interp(at, arc, closed[:, 0]), np.interp(at, arc, closed[:, 1])], axis=1)


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.asarray(points, np.float32))[:, 0].astype(np.float64)


def _landmark_hulls(points: np.ndarray, kind: str) -> list[np.ndarray]:
    """SBI's masks from dlib's 68 points (its random_get_hull, after Face X-ray's DeepFakeMask):
    a union of convex hulls, in crop pixels."""
    p = np.asarray(points, np.float64)
    if kind == "facehull":
        return [_hull(p)]
    if kind == "dfl_full":
        jaw = [p[0:17], p[48:68]]
        nose_ridge = [p[27:31], p[33:34]]
        eyes = [p[17:27], p[0:1], p[27:28], p[16:17], p[33:34]]
        return [_hull(np.concatenate(part)) for part in (jaw, nose_ridge, eyes)]
    if kind == "extended":  # the brows raised by half their height above the eyes, towards the forehead
        p = p.copy()
        outer_left, outer_right = (p[36] + (p[36] + p[0]) / 2) / 2, (p[45] + (p[16] + p[45]) / 2) / 2
        below_left = np.stack([outer_left, p[36], p[37], p[38], p[39]])
        below_right = np.stack([p[42], p[43], p[44], p[45], outer_right])
        p[17:22] += (p[17:22] - below_left) / 2
        p[22:27] += (p[22:27] - below_right) / 2
    elif kind != "components":
        raise ValueError(f"unknown mask kind {kind!r} for 68 landmarks; expected one of {LANDMARK_HULLS}")
    chin = p[8:9]
    parts = [[p[0:9], p[17:18]], [p[8:17], p[26:27]], [p[17:20], chin], [p[24:27], chin], [p[19:25], chin],
             [p[17:22], p[27:28], p[31:36], chin], [p[22:27], p[27:28], p[31:36], chin], [p[27:31], p[31:36]]]
    return [_hull(np.concatenate(part)) for part in parts]


def _mask_polygons(landmarks: np.ndarray | None, size: int, params: BlendParams) -> list[np.ndarray]:
    """The mask's deformed outline(s), in crop pixels, moved with the pasted face."""
    if landmarks is None:
        kind, landmarks = "ellipse", _DEFAULT_LANDMARKS * size - 0.5
    else:
        kind = params.mask_kind
    landmarks = np.asarray(landmarks, np.float64)
    allowed = LANDMARK_HULLS if len(landmarks) == 68 else MASK_KINDS
    if kind not in allowed and kind != "ellipse":
        raise ValueError(f"unknown mask kind {kind!r} for {len(landmarks)} landmarks; expected one of {allowed}")
    origin, axes = _face_frame(landmarks)
    to_face = np.linalg.inv(axes)
    if kind == "ellipse":
        angle = np.linspace(0.0, 2 * np.pi, _OUTLINE_POINTS, endpoint=False)
        outlines = [np.stack([_ELLIPSE_AXES[0] * np.cos(angle), _ELLIPSE_AXES[1] * np.sin(angle)], axis=1)]
    elif kind == "hull":
        # Landmarks join the hull so that a face turned beyond the template still has its eyes,
        # nose and mouth inside the mask.
        points = np.concatenate([_FACE_OUTLINE, (landmarks - origin) @ to_face])
        outlines = [_resample_closed(_hull(points), _OUTLINE_POINTS)]
    else:
        outlines = [_resample_closed((hull - origin) @ to_face, _OUTLINE_POINTS)
                    for hull in _landmark_hulls(landmarks, kind)]
    moved = []
    for outline in outlines:
        angle = np.arctan2(outline[:, 1], outline[:, 0])
        radial = np.ones_like(angle)
        for harmonic, (cos_w, sin_w) in zip(_WOBBLE_HARMONICS, np.reshape(params.mask_wobble, (-1, 2))):
            radial += cos_w * np.cos(harmonic * angle) + sin_w * np.sin(harmonic * angle)
        pixels = origin + (outline * np.clip(radial, 0.5, None)[:, None]) @ axes
        moved.append(_move(pixels, size, params))
    return moved


def _paste_affine(size: int, params: BlendParams) -> np.ndarray:
    centre = (size - 1) / 2
    return np.array([[params.scale, 0.0, (1 - params.scale) * centre + params.shift[0] * size],
                     [0.0, params.scale, (1 - params.scale) * centre + params.shift[1] * size]])


def _move(points: np.ndarray, size: int, params: BlendParams) -> np.ndarray:
    affine = _paste_affine(size, params)
    return points @ affine[:, :2].T + affine[:, 2]


def _render_mask(polygons: list[np.ndarray], size: int, params: BlendParams) -> np.ndarray:
    """Fill the outlines, erode and soften them as SBI does, and scale the peak back to 1.

    The erosion thresholds the distance to the edge, on a canvas of twice the side, so the edge
    moves by fractions of a pixel and one draw gives the same mask at any crop size."""
    subpixel_bits, fine = 4, 2 * size
    canvas = np.zeros((fine, fine), np.uint8)
    for polygon in polygons:
        vertices = np.round((2 * polygon + 0.5) * (1 << subpixel_bits)).astype(np.int32)
        cv2.fillPoly(canvas, [vertices], 255, lineType=cv2.LINE_AA, shift=subpixel_bits)
    if params.mask_erode > 0:
        inside = cv2.distanceTransform((canvas >= 128).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        canvas = np.clip(inside - params.mask_erode * fine + 0.5, 0, 1).astype(np.float32)
    else:
        canvas = canvas.astype(np.float32) / 255.0
    mask = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    if params.mask_blur > 0 and mask.max() > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), params.mask_blur * size)
        mask /= mask.max()
    return mask


def face_mask(
    size: int, landmarks: np.ndarray | None = None, params: BlendParams | None = None
) -> np.ndarray:
    """Soft (size, size) float32 mask in [0, 1] over the face, brows to chin.

    From 5 or 68 landmarks when all are finite, else an ellipse where a face sits in a crop with a
    1.3x margin. Without `params` the mask is undeformed with a hard edge.
    """
    params = params or identity_params()
    if landmarks is not None and not _usable(np.asarray(landmarks, np.float64)[None], size)[0]:
        landmarks = None
    return _render_mask(_mask_polygons(landmarks, size, params), size, params)


def _usable(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Per frame: all points finite and far enough apart to define a face."""
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    five = _five_points(landmarks)
    eyes = five[:, :2].mean(axis=1)
    mouth = five[:, 3:].mean(axis=1)
    with np.errstate(invalid="ignore"):
        span = np.hypot(*(mouth - eyes).T)
        return finite & (span > _MIN_FACE_SPAN * size)


def _fill_missing(landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """Bridge frames without usable landmarks by interpolating their neighbours over time, so
    the mask does not jump to the default ellipse and back; None when no frame has any."""
    usable = _usable(landmarks, size)
    if not usable.any():
        return None
    if usable.all():
        return landmarks
    times = np.arange(len(landmarks))
    known = landmarks[usable].reshape(int(usable.sum()), -1)
    filled = np.stack([np.interp(times, times[usable], column) for column in known.T], axis=1)
    return filled.reshape(landmarks.shape)


def _colour_table(params: BlendParams) -> np.ndarray | None:
    """Per-channel lookup table for colour, brightness and contrast (None when unchanged): a table
    lookup is the cheapest way to map every pixel."""
    if params.contrast == 1 and params.brightness == 0 and not any(params.color_shift):
        return None
    levels = np.arange(256, dtype=np.float64)[:, None]
    rgb = (levels - 128.0) * params.contrast + 128.0 + params.brightness + np.asarray(params.color_shift)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _altered(frames: np.ndarray, params: BlendParams) -> np.ndarray:
    """SBI's source-target augmentation: colour, then resampling or sharpening; (N,S,S,3) uint8."""
    count, size = frames.shape[:2]
    table = _colour_table(params)
    out = frames if table is None else cv2.LUT(frames.reshape(count * size, size, 3), table).reshape(frames.shape)
    if params.downscale > 1:
        small = max(1, round(size / params.downscale))
        out = np.stack([cv2.resize(cv2.resize(frame, (small, small), interpolation=cv2.INTER_NEAREST),
                                   (size, size), interpolation=cv2.INTER_LINEAR) for frame in out])
    if params.sharpen:
        # albumentations' Sharpen: the identity blended with a Laplacian-like kernel.
        effect = -np.ones((3, 3), np.float32)
        effect[1, 1] = 8 + params.sharpen_lightness
        identity = np.zeros((3, 3), np.float32)
        identity[1, 1] = 1
        kernel = (1 - params.sharpen) * identity + params.sharpen * effect
        out = np.stack([cv2.filter2D(frame, -1, kernel) for frame in out])
    return out


def _pasted(frames: np.ndarray, params: BlendParams) -> np.ndarray:
    """The face to paste back, scaled and moved like its mask."""
    if params.scale == 1 and not any(params.shift):
        return frames
    size = frames.shape[1]
    affine = _paste_affine(size, params)
    return np.stack([cv2.warpAffine(frame, affine, (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101) for frame in frames])


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    square_rgb = frames.ndim == 4 and frames.shape[-1] == 3 and frames.shape[1] == frames.shape[2]
    if frames.dtype != np.uint8 or not square_rgb or len(frames) == 0:
        raise ValueError(f"expected square RGB uint8 crops (T,S,S,3), got {frames.shape} {frames.dtype}")
    return frames


def _blend(frames: np.ndarray, mask: np.ndarray, params: BlendParams) -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    if mask.shape not in (frames.shape[1:3], frames.shape[:3]):
        raise ValueError(f"mask of shape {mask.shape} does not fit crops of shape {frames.shape}")
    if params.alter not in ("source", "target"):
        raise ValueError(f"alter must be 'source' or 'target', not {params.alter!r}")
    frames = np.ascontiguousarray(frames)
    source, target = (_altered(frames, params), frames) if params.alter == "source" else (
        frames, _altered(frames, params))
    source = _pasted(source, params)
    alpha = np.broadcast_to(mask * np.float32(params.blend_ratio), frames.shape[:3])
    # blendLinear takes per-pixel weights and rounds once; where the weight is 0 it returns the
    # target unchanged.
    return np.stack([cv2.blendLinear(source[i], target[i], np.ascontiguousarray(alpha[i]),
                                     np.ascontiguousarray(1 - alpha[i]))
                     for i in range(len(frames))])


def blend_frame(frame: np.ndarray, mask: np.ndarray, params: BlendParams) -> np.ndarray:
    """Blend one (S,S,3) uint8 frame: mask*source + (1-mask)*target, one of them altered."""
    return _blend(_check_frames(np.asarray(frame)[None]), mask, params)[0]


def _check_landmarks(landmarks: np.ndarray | None, frames: int, points: int) -> np.ndarray | None:
    if landmarks is None:
        return None
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (frames, points, 2):
        raise ValueError(f"expected landmarks of shape {(frames, points, 2)}, got {landmarks.shape}")
    return landmarks


def _mask_points(crops: np.ndarray, landmarks: np.ndarray | None,
                 landmarks68: np.ndarray | None) -> np.ndarray | None:
    """The landmarks the mask follows: dlib's 68 where found in some frame, else the detector's 5, else None."""
    for given, count in ((landmarks68, 68), (landmarks, 5)):
        checked = _check_landmarks(given, len(crops), count)
        points = None if checked is None else _fill_missing(checked, crops.shape[1])
        if points is not None:
            return points
    return None


def _draw(crops: np.ndarray, points: np.ndarray | None, rng) -> BlendParams:
    return sample_params(np.random.default_rng(rng), crops.shape[1], 5 if points is None else points.shape[1])


def make_pseudo_fake(
    clip_crops: np.ndarray,
    landmarks: np.ndarray | None,
    rng: np.random.Generator | int | None = None,
    params: BlendParams | None = None,
    landmarks68: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, BlendParams]:
    """Turn a real clip (T,S,S,3) uint8 into a self-blended fake with one draw of parameters.

    The mask follows each frame's landmarks (T,S,S): dlib's 68 (T,68,2) when given and found in
    some frame, else the detector's 5 (T,5,2); with neither it is one centred ellipse (S,S). It
    is returned without the blend ratio, which is in the returned params.
    """
    crops = _check_frames(clip_crops)
    size = crops.shape[1]
    points = _mask_points(crops, landmarks, landmarks68)
    if params is None:
        params = _draw(crops, points, rng)
    if points is None:
        mask = face_mask(size, None, params)
    else:
        mask = np.stack([_render_mask(_mask_polygons(frame_points, size, params), size, params)
                         for frame_points in points])
    return _blend(crops, mask, params), mask, params


def paired_real(
    clip_crops: np.ndarray,
    landmarks: np.ndarray | None,
    rng: np.random.Generator | int | None = None,
    landmarks68: np.ndarray | None = None,
) -> np.ndarray:
    """The REAL sample of the pair that ``make_pseudo_fake`` with the same arguments makes: the clip
    with the fake's change to the frame around the face (when that draw alters the target), as SBI
    returns its real image. Without it, half the fakes would have blurred or sharpened hair,
    background and borders that no REAL clip has, and that alone tells them apart."""
    crops = _check_frames(clip_crops)
    params = _draw(crops, _mask_points(crops, landmarks, landmarks68), rng)
    return _altered(crops, params) if params.alter == "target" else crops
