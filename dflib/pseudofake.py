"""Self-blended pseudo-fakes (Shiohara and Yamasaki, CVPR 2022), made from whole clips.

A face blended with a slightly altered copy of itself through a soft face mask carries what
face swaps leave behind (a blending boundary, a colour and sharpness mismatch) without any
identity change, so a detector can learn those traces from real videos alone. Every random
choice is drawn once per clip: a swapped video is consistent over time, and per-frame choices
would teach the sequence model to look for a flicker that real deepfakes do not have.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MASK_KINDS = ("hull", "ellipse")

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

    color_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # added to R, G, B (0-255 scale)
    brightness: float = 0.0  # added to every channel (0-255 scale)
    contrast: float = 1.0  # gain around mid-grey
    hue_shift: float = 0.0  # degrees
    saturation: float = 1.0  # gain
    sharpen: float = 0.0  # unsharp-mask amount: > 0 sharpens, -1 is a plain Gaussian blur
    sharpen_sigma: float = 0.0  # of the Gaussian behind `sharpen`, fraction of the side
    scale: float = 1.0  # of the altered copy, around the crop centre
    shift: tuple[float, float] = (0.0, 0.0)  # x, y of the altered copy, fraction of the side
    mask_kind: str = "hull"  # "hull" of the face outline and landmarks, or "ellipse"
    mask_expand: float = 1.0  # > 1 grows the face region (dilation), < 1 shrinks it (erosion)
    mask_wobble: tuple[float, ...] = ()  # cos, sin pairs per harmonic: radial outline deformation
    mask_blur: float = 0.0  # Gaussian sigma of the mask edge, fraction of the side
    blend_ratio: float = 1.0  # weight of the altered copy where the mask is 1


def identity_params() -> BlendParams:
    return BlendParams()


def sample_params(rng: np.random.Generator, size: int) -> BlendParams:
    """Draw one fake's parameters for crops of `size` pixels.

    The sharpness change and the softest mask edge are drawn in pixels of that size, since the
    resampling traces a swap leaves are pixel-level; they are stored as fractions like the rest.
    """
    if size < 8:
        raise ValueError(f"crop size {size} is too small for a pseudo-fake")
    color_shift = rng.uniform(-20, 20, 3) if rng.random() < 0.5 else np.zeros(3)
    hue_jitter = rng.random() < 0.5
    hue_shift = rng.uniform(-10, 10) if hue_jitter else 0.0
    saturation = rng.uniform(0.75, 1.25) if hue_jitter else 1.0
    sharpen = rng.choice([-rng.uniform(0.5, 1.0), rng.uniform(0.3, 1.5), 0.0])
    blend_ratio = 1.0 if rng.random() < 0.5 else rng.uniform(0.25, 1.0)
    return BlendParams(
        color_shift=tuple(float(c) for c in color_shift),
        brightness=float(rng.uniform(-20, 20)),
        contrast=float(rng.uniform(0.85, 1.15)),
        hue_shift=float(hue_shift),
        saturation=float(saturation),
        sharpen=float(sharpen),
        sharpen_sigma=float(rng.uniform(0.6, 2.0) / size),
        scale=float(rng.uniform(0.95, 1.05)),
        shift=tuple(float(s) for s in rng.uniform(-0.03, 0.03, 2)),
        mask_kind=MASK_KINDS[int(rng.random() < 0.4)],
        mask_expand=float(rng.uniform(0.85, 1.1)),
        mask_wobble=tuple(float(w) for w in rng.normal(0.0, 0.03, 2 * len(_WOBBLE_HARMONICS))),
        mask_blur=float(max(rng.uniform(0.01, 0.05), 1.0 / size)),
        blend_ratio=float(blend_ratio),
    )


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin and axes (rows: image vectors of one face unit in x and y) that follow the face's
    position, size and roll. Under yaw the eyes close up but the eye-to-mouth span does not, so
    the width leans on both."""
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


def _mask_outline(landmarks: np.ndarray | None, size: int, params: BlendParams) -> np.ndarray:
    """The mask's deformed outline, in crop pixels."""
    if landmarks is None:
        kind, landmarks = "ellipse", _DEFAULT_LANDMARKS * size - 0.5
    else:
        kind = params.mask_kind
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    origin, axes = _face_frame(np.asarray(landmarks, np.float64))
    if kind == "ellipse":
        angle = np.linspace(0.0, 2 * np.pi, _OUTLINE_POINTS, endpoint=False)
        outline = np.stack([_ELLIPSE_AXES[0] * np.cos(angle), _ELLIPSE_AXES[1] * np.sin(angle)], axis=1)
    else:
        # Landmarks join the hull so that a face turned beyond the template still has its eyes,
        # nose and mouth inside the mask.
        in_face_units = (landmarks - origin) @ np.linalg.inv(axes)
        points = np.concatenate([_FACE_OUTLINE, in_face_units]).astype(np.float32)
        outline = _resample_closed(cv2.convexHull(points)[:, 0].astype(np.float64), _OUTLINE_POINTS)
    angle = np.arctan2(outline[:, 1], outline[:, 0])
    radial = np.ones_like(angle)
    for harmonic, (cos_weight, sin_weight) in zip(_WOBBLE_HARMONICS, np.reshape(params.mask_wobble, (-1, 2))):
        radial += cos_weight * np.cos(harmonic * angle) + sin_weight * np.sin(harmonic * angle)
    outline = outline * (params.mask_expand * np.clip(radial, 0.5, None))[:, None]
    return origin + outline @ axes


def _render_mask(outline: np.ndarray, size: int, params: BlendParams) -> np.ndarray:
    """Fill and soften the outline. A wide blur is done at a fraction of the size and scaled
    back up: the result is the same smooth ramp at a fraction of the cost on 512 px crops."""
    sigma = params.mask_blur * size
    factor = max(1, int(sigma // 3))
    small = -(-size // factor)
    subpixel_bits = 4
    canvas = np.zeros((small, small), np.uint8)
    vertices = np.round(((outline + 0.5) / factor - 0.5) * (1 << subpixel_bits)).astype(np.int32)
    cv2.fillPoly(canvas, [vertices], 255, lineType=cv2.LINE_AA, shift=subpixel_bits)
    mask = canvas.astype(np.float32) / 255.0
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma / factor)
    if factor > 1:
        mask = cv2.resize(mask, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)[:size, :size]
    return mask


def face_mask(
    size: int, landmarks: np.ndarray | None = None, params: BlendParams | None = None
) -> np.ndarray:
    """Soft (size, size) float32 mask in [0, 1] over the face, brows to chin.

    From the 5 landmarks when all are finite, else an ellipse where a face sits in a crop with a
    1.3x margin. Without `params` the mask is undeformed with a hard edge.
    """
    params = params or identity_params()
    if landmarks is not None and not _usable(np.asarray(landmarks, np.float64)[None], size)[0]:
        landmarks = None
    return _render_mask(_mask_outline(landmarks, size, params), size, params)


def _usable(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Per frame: all 5 points finite and far enough apart to define a face."""
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    eyes = landmarks[:, :2].mean(axis=1)
    mouth = landmarks[:, 3:].mean(axis=1)
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


def _lookup_tables(params: BlendParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel tables for RGB (colour, brightness, contrast) and for 8-bit HSV (hue,
    saturation; None when unchanged): a table lookup is the cheapest way to map every pixel."""
    levels = np.arange(256, dtype=np.float64)[:, None]
    rgb = (levels - 128.0) * params.contrast + 128.0 + params.brightness + np.asarray(params.color_shift)
    if params.hue_shift == 0 and params.saturation == 1:
        hsv = None
    else:
        hue = (levels + round(params.hue_shift * 256 / 360)) % 256  # 8-bit "full" hue: 256 steps per turn
        hsv = np.hstack([hue, levels * params.saturation, levels])
    return tuple(None if t is None else np.clip(np.rint(t), 0, 255).astype(np.uint8).reshape(256, 1, 3)
                 for t in (rgb, hsv))


def _altered_copy(frames: np.ndarray, params: BlendParams) -> np.ndarray:
    """The face to paste back: colour, sharpness and a small scale/shift, (N,S,S,3) uint8."""
    count, size = frames.shape[:2]
    rgb_table, hsv_table = _lookup_tables(params)
    tall = frames.reshape(count * size, size, 3)  # one image, so pixel-wise maps take one call
    copy = cv2.LUT(tall, rgb_table)
    if hsv_table is not None:
        hsv = cv2.LUT(cv2.cvtColor(copy, cv2.COLOR_RGB2HSV_FULL), hsv_table)
        copy = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    copy = copy.reshape(frames.shape)
    sharpen = params.sharpen != 0 and params.sharpen_sigma > 0
    moved = params.scale != 1 or any(params.shift)
    if sharpen or moved:
        centre = (size - 1) / 2
        warp = np.array(
            [[params.scale, 0.0, (1 - params.scale) * centre + params.shift[0] * size],
             [0.0, params.scale, (1 - params.scale) * centre + params.shift[1] * size]]
        )
        for frame in copy:
            if sharpen:
                blurred = cv2.GaussianBlur(frame, (0, 0), params.sharpen_sigma * size)
                cv2.addWeighted(frame, 1 + params.sharpen, blurred, -params.sharpen, 0, dst=frame)
            if moved:
                cv2.warpAffine(frame, warp, (size, size), dst=frame, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
    return copy


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
    copy = _altered_copy(np.ascontiguousarray(frames), params)
    alpha = np.broadcast_to(mask * np.float32(params.blend_ratio), frames.shape[:3])
    # blendLinear takes per-pixel weights and rounds once; where the weight is 0 it returns the
    # frame unchanged.
    return np.stack([cv2.blendLinear(copy[i], frames[i], np.ascontiguousarray(alpha[i]),
                                     np.ascontiguousarray(1 - alpha[i]))
                     for i in range(len(frames))])


def blend_frame(frame: np.ndarray, mask: np.ndarray, params: BlendParams) -> np.ndarray:
    """Blend one (S,S,3) uint8 frame with its altered copy: mask*copy + (1-mask)*frame."""
    return _blend(_check_frames(np.asarray(frame)[None]), mask, params)[0]


def make_pseudo_fake(
    clip_crops: np.ndarray,
    landmarks: np.ndarray | None,
    rng: np.random.Generator | int | None = None,
    params: BlendParams | None = None,
) -> tuple[np.ndarray, np.ndarray, BlendParams]:
    """Turn a real clip (T,S,S,3) uint8 into a self-blended fake with one draw of parameters.

    The mask follows each frame's landmarks (T,S,S) when given, else is one centred ellipse
    (S,S). It is returned without the blend ratio, which is in the returned params.
    """
    crops = _check_frames(clip_crops)
    size = crops.shape[1]
    if params is None:
        params = sample_params(np.random.default_rng(rng), size)
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.shape != (len(crops), 5, 2):
            raise ValueError(f"expected landmarks of shape {(len(crops), 5, 2)}, got {landmarks.shape}")
        landmarks = _fill_missing(landmarks, size)
    if landmarks is None:
        mask = face_mask(size, None, params)
    else:
        mask = np.stack([_render_mask(_mask_outline(points, size, params), size, params)
                         for points in landmarks])
    return _blend(crops, mask, params), mask, params
