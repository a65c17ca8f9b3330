"""Small synthetic videos from face photographs that ship inside installed packages.

Used by the tests and the demo, so both run offline with no data folder: real faces
(scikit-image's astronaut and cameraman, matplotlib's Grace Hopper) moved, lit and compressed
like camera footage, and self-blended fakes of those clips.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from dflib.faces import create_detector, square_box
from dflib.io import atomic_path, atomic_write_text
from dflib.pseudofake import BlendParams, make_pseudo_fake, sample_params

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10.0,
                codec: str = "libx264", crf: int = 23) -> Path:
    """Encode RGB uint8 frames (even width and height for yuv420p) to a video file, atomically."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        # The temporary name hides the extension, so name the container format explicitly.
        container_format = CONTAINERS.get(path.suffix.lower(), "mp4")
        with av.open(str(tmp), mode="w", format=container_format) as container:
            stream = container.add_stream(codec, rate=int(round(fps)))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                # Without asm=0 this x264 build gave different bytes for the same frames (10 encodes, 10
                # files, decoded frames up to 39 levels apart) on an AVX-512 CPU, so a demo or test was not
                # reproducible; the C code is deterministic, at ~0.1 s more per 36-frame 320x240 clip.
                stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "asm=0"}
            for frame in [first, *frames]:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def face_photo() -> np.ndarray:
    """A real face photograph (NASA portrait, public domain) shipped with scikit-image, cropped to the head."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:260, 120:340])


def moving_face_frames(n_frames: int = 12, width: int = 320, height: int = 240, face_size: int = 120,
                       seed: int = 0, face: np.ndarray | None = None) -> list[np.ndarray]:
    """A face drifting over a textured background with slow lighting change and sensor noise."""
    rng = np.random.default_rng(seed)
    face = face_photo() if face is None else face
    face_h = face_size
    face_w = max(2, int(round(face.shape[1] * face_size / face.shape[0])))
    face = cv2.resize(face, (face_w, face_h), interpolation=cv2.INTER_AREA)
    background = cv2.GaussianBlur(rng.integers(40, 200, (height, width, 3), dtype=np.uint8), (0, 0), 8)
    start = np.array([rng.uniform(0, width - face_w), rng.uniform(0, height - face_h)])
    drift = rng.uniform(-3, 3, 2)
    frames = []
    for t in range(n_frames):
        x, y = np.clip(start + drift * t, 0, [width - face_w, height - face_h]).astype(int)
        frame = background.copy()
        frame[y:y + face_h, x:x + face_w] = face
        gain = 1.0 + 0.15 * np.sin(t / max(n_frames, 1) * np.pi)
        noisy = frame.astype(np.float32) * gain + rng.normal(0, 3, frame.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


def noise_frames(n_frames: int = 8, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    """Frames with no face at all."""
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
            for _ in range(n_frames)]


# --- camera clips of real face photographs, and their self-blended fakes ---------------------

# Real face photographs that ship inside installed packages, so the demo needs no download.
PHOTO_CREDITS = {
    "astronaut": "Eileen Collins, NASA portrait (public domain); scikit-image `data.astronaut()`",
    "grace_hopper": "Grace Hopper, U.S. Navy portrait (public domain); matplotlib sample data `grace_hopper.jpg`",
    "cameraman": "the 'cameraman' photo by Lav Varshney (CC0); scikit-image `data.camera()`, grayscale, near profile",
}
# Face-free photographs shipped with scikit-image and scikit-learn, used as backgrounds.
BACKGROUNDS = ("china", "flower", "coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field")


@dataclass(frozen=True)
class FacePhoto:
    name: str
    image: np.ndarray  # RGB uint8
    box: np.ndarray  # (4,) face box x1, y1, x2, y2, from CenterFace
    landmarks: np.ndarray  # (5, 2) eyes, nose, mouth corners, from CenterFace


@dataclass
class CameraClip:
    """Frames of a face filmed by a moving camera, with where the face is in every frame."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    boxes: np.ndarray  # (T, 4) face box in frame pixels
    landmarks: np.ndarray  # (T, 5, 2) in frame pixels
    settings: dict  # what was drawn for this clip (JSON-ready), for provenance


def _load_photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "astronaut":
        return data.astronaut()
    if name == "cameraman":
        return np.repeat(data.camera()[..., None], 3, axis=2)
    if name == "grace_hopper":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raise ValueError(f"unknown face photo {name!r}; available: {', '.join(PHOTO_CREDITS)}")


@lru_cache(maxsize=None)
def face_photo_with_landmarks(name: str) -> FacePhoto:
    """A shipped photo with its face located once by the detector, so every synthetic frame knows
    exactly where the face (and its landmarks) went."""
    image = np.ascontiguousarray(_load_photo(name))
    found = create_detector("centerface").detect(image)
    if not found or found[0].landmarks is None:
        raise RuntimeError(f"no face found in the {name!r} photo; cannot build synthetic clips from it")
    return FacePhoto(name, image, found[0].box.astype(np.float64), found[0].landmarks.astype(np.float64))


@lru_cache(maxsize=None)
def background_image(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    else:
        from skimage import data

        image = getattr(data, name)()
    return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3])


def _similarity(scale: float, angle: float, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 affine that rotates and scales about ``source`` and puts it at ``target``."""
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    return np.hstack([linear, (target - linear @ source)[:, None]])


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def _smooth_walk(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """(n, 2) hand-held shake: a random walk, smoothed so it drifts rather than jitters."""
    walk = np.cumsum(rng.normal(0, 1, (n + 4, 2)), axis=0)
    walk = np.stack([np.convolve(walk[:, i], np.ones(5) / 5, mode="valid") for i in range(2)], axis=1)[:n]
    walk -= walk.mean(axis=0)
    return amplitude * walk / max(float(np.abs(walk).max()), 1e-6)


def camera_clip(photo: FacePhoto, rng: np.random.Generator, n_frames: int = 36, width: int = 320,
                height: int = 240, background: str = "china") -> CameraClip:
    """The photo's head cut out over a background photo, filmed with pan, zoom, roll and shake,
    under changing light with sensor noise (compression happens when the clip is written).

    The background moves at half the face's pace (parallax), so the head is not a flat sticker.
    """
    x1, y1, x2, y2 = photo.box
    face_w, face_h = x2 - x1, y2 - y1
    face_centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    # Head and neck, feathered: the cut-out edge is there in real and fake clips alike.
    alpha = np.zeros(photo.image.shape[:2], np.float32)
    centre = face_centre + [0, 0.35 * face_h]
    cv2.ellipse(alpha, tuple(int(v) for v in centre), (int(1.05 * face_w), int(1.45 * face_h)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.12 * face_h)
    # Fade out before the photo's own edges, where the ellipse may run past them.
    rows, cols = np.indices(alpha.shape)
    to_edge = np.minimum.reduce([rows, cols, alpha.shape[0] - 1 - rows, alpha.shape[1] - 1 - cols])
    alpha *= np.clip(to_edge / (0.15 * face_h), 0, 1).astype(np.float32)
    depth_blur = float(rng.uniform(1.0, 3.5))
    scenery = cv2.GaussianBlur(background_image(background), (0, 0), depth_blur)
    tint = rng.uniform(0.8, 1.2, 3)
    scenery = np.clip(scenery * tint, 0, 255).astype(np.uint8)

    ts = np.linspace(-0.5, 0.5, n_frames)
    face_size = float(rng.uniform(0.22, 0.45)) * height  # face box height in the frame
    scale = face_size / face_h * np.exp(rng.uniform(-0.25, 0.25) * ts)
    roll = np.deg2rad(rng.uniform(-8, 8) + rng.uniform(0, 4) * np.sin(2 * np.pi * (ts + rng.uniform())))
    half = np.array([0.5 * face_w, 0.5 * face_h]) * scale.max() * 1.3
    room = np.maximum(np.array([width, height]) / 2 - half - 4, 0)
    start = rng.uniform(-room, room) * 0.6
    pan = rng.uniform(-1, 1, 2) * np.minimum(room, 60)
    shake = _smooth_walk(rng, n_frames, float(rng.uniform(0.5, 3.0)))
    positions = np.array([width, height]) / 2 + np.clip(start + pan * ts[:, None], -room, room) + shake

    gain = 1 + rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * (rng.uniform(0.3, 1.0) * ts + rng.uniform()))
    warm = rng.uniform(-0.12, 0.12) * ts  # white balance drifting warmer or cooler
    light_angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-1, 1) * ts
    light_strength = float(rng.uniform(0.0, 0.35))
    noise = float(rng.uniform(1.0, 4.0))
    xs = (np.arange(width) - width / 2) / width
    ys = (np.arange(height) - height / 2) / height

    bg_scale = max(width / scenery.shape[1], height / scenery.shape[0]) * float(rng.uniform(1.2, 1.6))
    bg_centre = np.array(scenery.shape[1::-1]) / 2 + rng.uniform(-0.1, 0.1, 2) * scenery.shape[1::-1]
    frames, boxes, landmarks = [], [], []
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]])
    for t in range(n_frames):
        to_frame = _similarity(scale[t], roll[t], face_centre, positions[t])
        parallax = np.array([width, height]) / 2 + 0.5 * (positions[t] - np.array([width, height]) / 2)
        bg_to_frame = _similarity(bg_scale, 0.5 * roll[t], bg_centre, parallax)
        back = cv2.warpAffine(scenery, bg_to_frame, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
        person = cv2.warpAffine(photo.image, to_frame, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
        weight = cv2.warpAffine(alpha, to_frame, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        frame = back + weight * (person - back)
        light = 1 + light_strength * (np.cos(light_angle[t]) * xs[None, :] + np.sin(light_angle[t]) * ys[:, None])
        frame *= (gain[t] * light)[..., None] * np.array([1 + warm[t], 1.0, 1 - warm[t]], np.float32)
        frame += noise * rng.standard_normal(frame.shape, dtype=np.float32)
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        moved = _apply(to_frame, corners)
        boxes.append(np.concatenate([moved.min(axis=0), moved.max(axis=0)]))
        landmarks.append(_apply(to_frame, photo.landmarks))
    settings = {
        "photo": photo.name, "background": background, "frames": n_frames, "width": width, "height": height,
        "face_size": round(face_size, 1), "zoom": [round(float(scale[0] / scale.mean()), 3),
                                                  round(float(scale[-1] / scale.mean()), 3)],
        "roll_deg": [round(float(np.rad2deg(roll.min())), 1), round(float(np.rad2deg(roll.max())), 1)],
        "pan_px": [round(float(v), 1) for v in pan], "depth_blur": round(depth_blur, 2),
        "light_strength": round(light_strength, 3), "noise_sigma": round(noise, 2),
    }
    return CameraClip(np.stack(frames), np.stack(boxes), np.stack(landmarks), settings)


def pseudo_fake_clip(clip: CameraClip, rng: np.random.Generator, margin: float = 1.3):
    """A self-blended fake of the clip: one draw of ``BlendParams`` for the whole clip, applied to
    the face of every frame through ``dflib.pseudofake`` and pasted back where the face is.

    The face is cut out as a square crop with preprocessing's margin (the crops the pseudo-fake
    module is tuned for), at about its size in the frame, so resampling barely blurs it. Pixels
    outside the mask are left exactly as they were. Returns (frames, masks (T, H, W) in [0, 1], params).
    """
    height, width = clip.frames.shape[1:3]
    squares = np.stack([square_box(box, margin) for box in clip.boxes]).astype(np.float64)
    sides = squares[:, 2] - squares[:, 0]
    size = max(32, int(round(float(np.median(sides)))))
    to_crop = [np.array([[size / side, 0, -x * size / side], [0, size / side, -y * size / side]])
               for (x, y, _, _), side in zip(squares, sides)]
    crops = np.stack([cv2.warpAffine(frame, affine, (size, size), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT_101)
                      for frame, affine in zip(clip.frames, to_crop)])
    crop_landmarks = np.stack([_apply(affine, points) for affine, points in zip(to_crop, clip.landmarks)])
    # Only the face is altered, never the frame around it (SBI's other half), so that a FAKE clip
    # differs from its REAL clip only inside the mask.
    params = dataclasses.replace(sample_params(rng, size), alter="source")
    faked, crop_masks, params = make_pseudo_fake(crops, crop_landmarks, params=params)
    frames, masks = [], []
    back = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for frame, fake, mask, affine in zip(clip.frames, faked, crop_masks, to_crop):
        pasted = cv2.warpAffine(fake, affine, (width, height), flags=back, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.warpAffine(mask, affine, (width, height), flags=back, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        mixed = frame + weight[..., None] * (pasted.astype(np.float32) - frame)
        frames.append(np.where(weight[..., None] > 0, np.clip(np.rint(mixed), 0, 255), frame).astype(np.uint8))
        masks.append(weight)
    return np.stack(frames), np.stack(masks), params


@dataclass
class SyntheticPair:
    """One real clip and the fake made from it, with everything that was drawn for them."""

    real: CameraClip
    fake: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (T, H, W) float32: where the fake differs from the real
    params: BlendParams
    crf: int  # x264 quality of both files, so compression is no cue


def render_pair(identity: str, clip_index: int, seed: int = 0, n_frames: int = 36, width: int = 320,
                height: int = 240) -> SyntheticPair:
    """Deterministic in its arguments, so a dataset's clips can be rebuilt from ``clips.json``."""
    number = list(PHOTO_CREDITS).index(identity)
    rng = np.random.default_rng([seed, number, clip_index])
    background = BACKGROUNDS[(clip_index + 3 * number) % len(BACKGROUNDS)]
    real = camera_clip(face_photo_with_landmarks(identity), rng, n_frames, width, height, background)
    fake, masks, params = pseudo_fake_clip(real, rng)
    return SyntheticPair(real, fake, masks, params, int(rng.integers(20, 31)))


def write_dataset(root: str | os.PathLike, clips_per_identity: int, identities: Iterable[str] = tuple(PHOTO_CREDITS),
                  n_frames: int = 36, width: int = 320, height: int = 240, fps: float = 15.0, seed: int = 0,
                  progress: bool = True) -> Path:
    """Write REAL clips of shipped face photos and one pseudo-fake of each, as MP4 files, with a
    label file in the original design's format and ``clips.json`` (what was drawn per clip).

    A fake has its real's file name under ``fake/``: grouping by file stem, the splitter keeps each
    pair on one side of a split, so no test fake is made from a training clip. A folder already
    holding these settings is reused as it is. Returns the label file.
    """
    from tqdm.auto import tqdm

    from dflib.labels import LabelRow, write_labels_csv

    root = Path(root)
    settings = {"clips_per_identity": clips_per_identity, "identities": list(identities), "n_frames": n_frames,
                "width": width, "height": height, "fps": fps, "seed": seed}
    unknown = set(settings["identities"]) - set(PHOTO_CREDITS)
    if unknown or not settings["identities"]:
        raise ValueError(f"unknown identities {sorted(unknown)}; choose from {', '.join(PHOTO_CREDITS)}")
    record, labels = root / "clips.json", root / "labels.csv"
    if record.is_file():
        previous = json.loads(record.read_text())["settings"]
        if previous != settings:
            changed = ", ".join(f"{k} {previous.get(k)!r} -> {v!r}" for k, v in settings.items() if previous.get(k) != v)
            raise ValueError(f"{root} holds synthetic clips made with other settings ({changed}); use another folder")
        if labels.is_file():
            return labels
    rows, clips = [], []
    todo = [(identity, k) for identity in settings["identities"] for k in range(clips_per_identity)]
    for identity, k in tqdm(todo, desc="synthetic clips", unit="pair", disable=not progress):
        pair = render_pair(identity, k, seed, n_frames, width, height)
        name = f"{identity}_{k:02d}.mp4"
        write_video(root / "real" / name, pair.real.frames, fps, crf=pair.crf)
        write_video(root / "fake" / name, pair.fake, fps, crf=pair.crf)
        rows += [LabelRow(f"real/{name}", "REAL"), LabelRow(f"fake/{name}", "FAKE")]
        clips.append({"real": f"real/{name}", "fake": f"fake/{name}", "identity": identity, "clip_index": k,
                      "crf": pair.crf, "camera": pair.real.settings, "blend": dataclasses.asdict(pair.params)})
    record_text = json.dumps({"settings": settings, "photos": {i: PHOTO_CREDITS[i] for i in settings["identities"]},
                              "clips": clips}, indent=1)
    atomic_write_text(record, record_text + "\n")
    # Written last: its presence says every video is there.
    return write_labels_csv(rows, labels, extra_columns=False)
