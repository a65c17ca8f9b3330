"""Where in each frame the model saw FAKE: Grad-CAM of the video-level decision, via pytorch-grad-cam.

The original design multiplied the CNN's maps by weights that act on the LSTM's output, which
relate to nothing spatial. Here the gradient of the video's decision, logit FAKE minus logit REAL
(P(FAKE) is the sigmoid of that difference; either logit alone carries the head's arbitrary
common part), flows back through the LSTM into the trunk's last conv block of every frame, which
gives one map per frame for the one decision the model made. pytorch-grad-cam scales every map
to [0, 1] on its own, which makes a frame the model ignored look as hot as the decisive one; the
raw maps are kept instead and scaled once per video, so frames can be compared.

Frames are ranked by what each one does to the decision: P(FAKE) minus P(FAKE) with that frame
left out (the trunk's features are reused, only the LSTM runs again). The running score of the
timeline, P(FAKE) after the frames up to t, says little about frame t itself and is shown as such.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import matplotlib.pyplot as plt
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from pytorch_grad_cam import GradCAM
from torch import nn

from dflib.io import atomic_path, atomic_write_bytes, atomic_write_text
from dflib.plots import save_figure
from dflib.prediction import FAKE, GRAD_CAM_NEEDS_TORCH, Prediction, Predictor

SCALE_NOTE = ("Grad-CAM of the decision (logit FAKE - logit REAL), one colour scale for the whole video "
              "(1 = its strongest point)")
INFLUENCE_NOTE = "influence = P(FAKE) - P(FAKE) with the frame left out"
ANIMATION_FPS = 4
ANIMATION_LONG_SIDE = 480
FULL_FRAME_LONG_SIDE = 1280
CAM_ALPHA = 0.45
CAM_COLORMAP = "jet"
GRID_TILE = 112  # pixels: smaller crops are enlarged so the grid stays legible
GRID_CAPTION = 18
COLORS = {FAKE: (220, 40, 40), "REAL": (40, 170, 60)}


class _OneVideo(nn.Module):
    """Takes one video's frames as a 4-D (T, C, H, W) stack and returns its (1, 2) logits.

    pytorch-grad-cam 1.5.7 reads a 5-D input as one 3-D volume (and fails resizing it); as a
    stack of T images, the target layer's activations are (T, C, h, w): one map per frame.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames.unsqueeze(0))


class _RawGradCAM(GradCAM):
    """The library's Grad-CAM without its per-map min-max scaling and resizing."""

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        recorded = zip(self.target_layers, self.activations_and_grads.activations,
                       self.activations_and_grads.gradients)
        return [np.maximum(self.get_cam_image(input_tensor, layer, targets, np.asarray(activations, np.float32),
                                              np.asarray(grads, np.float32), eigen_smooth), 0)
                for layer, activations, grads in recorded]

    def aggregate_multi_layers(self, cam_per_target_layer):
        return np.mean(np.stack(cam_per_target_layer), axis=0)


class DecisionTarget:
    """The decision as a Grad-CAM target: logit FAKE minus logit REAL of one video's output.

    Cross-entropy trains only that difference; the sum of the two head rows keeps its random
    initial value, so a map of the FAKE logit alone carries that initialisation noise.
    """

    def __init__(self, fake_index: int):
        self.fake_index = fake_index

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.fake_index] - output[..., 1 - self.fake_index]


def raw_grad_cam(model, frames: torch.Tensor, fake_index: int) -> np.ndarray:
    """(T, h, w) unscaled Grad-CAM at the target layer's resolution, for the video-level decision
    (``DecisionTarget``), from one video's (T, 3, H, W) frames."""
    device = next(model.parameters()).device
    cam = _RawGradCAM(_OneVideo(model), [model.cam_target_layer])
    try:
        # cuDNN's LSTM has no backward pass in eval mode; the native kernel gives the same result.
        with _gradients_only_at(model, model.cam_target_layer), torch.enable_grad(), \
                torch.backends.cudnn.flags(enabled=False):
            return cam(frames.detach().to(device), targets=[DecisionTarget(fake_index)])
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)


@contextmanager
def _gradients_only_at(model: nn.Module, layer: nn.Module):
    """Only the target layer's weights need gradients for its output to get one: freezing the
    rest for the pass stops the backward pass at that layer and skips every weight gradient
    (ResNeXt50+LSTM, 20 frames on 2 CPU cores: ~2 s instead of 12-18 s), and works whether or not
    the caller froze the model."""
    saved = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    model.requires_grad_(False)
    layer.requires_grad_(True)
    try:
        yield
    finally:
        for parameter, flag in saved:
            parameter.requires_grad_(flag)


def grad_cam_maps(model, frames: torch.Tensor, fake_index: int) -> np.ndarray:
    """(T, H, W) maps at the input size, divided by their maximum over the whole video."""
    raw = torch.from_numpy(raw_grad_cam(model, frames, fake_index)).float()
    maps = upsample_cells(raw, tuple(frames.shape[-2:]))
    peak = float(maps.max())
    return (maps / peak if peak > 0 else maps).numpy()


def upsample_cells(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, h, w) feature-cell maps -> (T, H, W), bilinear, each cell at the input pixel its receptive
    field is centred on: stride x index for the "same"-padded CNNs used here. Plain resizing
    (``align_corners=False``) puts cell i at (i + 1/2) x stride, half a cell off (16 px at 448 px
    on resnet18); past the last cell the map is held flat."""
    (height, width), (rows, cols) = size, raw.shape[-2:]
    # grid_sample's coordinate g (align_corners=False) reads cell ((g + 1) x cells - 1) / 2; pixel x wants x / stride.
    ys = (2 * torch.arange(height, dtype=torch.float32) * rows / height + 1) / rows - 1
    xs = (2 * torch.arange(width, dtype=torch.float32) * cols / width + 1) / cols - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(raw.shape[0], height, width, 2)
    return F.grid_sample(raw[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


@torch.inference_mode()
def frame_influence(model, features: torch.Tensor, fake_index: int) -> np.ndarray:
    """(T,) P(FAKE) minus P(FAKE) with frame t left out, from one video's (T, D) trunk features.

    Positive: the frame pushes the video towards FAKE. All T shortened sequences go through the
    LSTM as one batch; a one-frame video has nothing to compare with and gets 0.
    """
    steps = len(features)
    if steps < 2:
        return np.zeros(steps)
    full = torch.softmax(model.logits_from_features(features[None]).float(), -1)[0, fake_index]
    keep = ~torch.eye(steps, dtype=torch.bool, device=features.device)
    without = features[None].expand(steps, -1, -1)[keep].reshape(steps, steps - 1, -1)
    left_out = torch.softmax(model.logits_from_features(without).float(), -1)[:, fake_index]
    return (full - left_out).cpu().numpy()


@dataclass
class Explanation:
    """A prediction with its Grad-CAM maps and figures; maps and figures are None/empty without a face."""

    prediction: Prediction
    maps: np.ndarray | None = None  # (T, size, size) float32 in [0, 1], one scale for the whole video
    frames: np.ndarray | None = None  # (T, size, size, 3) uint8 RGB: the model's input frames
    frame_indices: list[int] = field(default_factory=list)
    figures: dict[str, Figure | np.ndarray] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    note: str = ""  # why there are no heatmaps although there is a face (a backend without PyTorch)


def explain(video_path, checkpoint="", out_dir: str | os.PathLike | None = None, **options) -> Explanation:
    """Predict one video and explain the deciding face track; with ``out_dir``, write the figures there.

    ``checkpoint`` and ``options`` as in ``dflib.prediction.predict``.
    """
    predictor = checkpoint if isinstance(checkpoint, Predictor) else Predictor(checkpoint, **options)
    prediction, inputs = predictor.run(video_path)
    result = Explanation(prediction)
    if inputs and predictor.model is None:
        result.note = GRAD_CAM_NEEDS_TORCH
        result.figures = {"timeline": _timeline_figure(prediction)}
    elif inputs:
        track = next(item for item in inputs if item.clip.meta["track"] == prediction.track)
        started = time.perf_counter()
        result.maps = grad_cam_maps(predictor.model, track.frames, predictor.fake_index)
        prediction.timings["cam"] = time.perf_counter() - started
        started = time.perf_counter()
        prediction.frame_influence = frame_influence(predictor.model, track.features, predictor.fake_index).tolist()
        prediction.timings["influence"] = time.perf_counter() - started
        result.frames = np.stack([_resize(crop, predictor.size) for crop in track.clip.crops[track.chosen]])
        result.frame_indices = prediction.frame_indices
        crop_boxes = np.asarray(track.clip.boxes, dtype=np.float64)[track.chosen]
        images = track.images  # the prediction's own decoded frames: no second decode
        result.figures = {
            "last_frame": _overlay(result.frames[-1], result.maps[-1], scale=max(1, 224 // predictor.size)),
            "grid": _grid_figure(result, prediction),
            "full_frame": _full_frame(result, prediction, crop_boxes, images),
            "timeline": _timeline_figure(prediction),
            "animation": _animation_frames(result, prediction, crop_boxes, images),
        }
    if out_dir is not None:
        result.files = _write(result, Path(out_dir))
    return result


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)


def _heat(cam_map: np.ndarray) -> np.ndarray:
    """RGB uint8 colours of the colour bar's map, so overlays and colour bar agree."""
    return np.uint8(colormaps[CAM_COLORMAP](np.clip(cam_map, 0, 1))[..., :3] * 255)


def _overlay(image: np.ndarray, cam_map: np.ndarray, scale: int = 1) -> np.ndarray:
    """The map blended over an RGB image of the same size, enlarged ``scale`` times for viewing."""
    blended = cv2.addWeighted(_heat(cam_map), CAM_ALPHA, image, 1 - CAM_ALPHA, 0)
    if scale > 1:
        blended = cv2.resize(blended, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return blended


def _figure(**kwargs):
    # Released from pyplot at once: a notebook shows it once, a batch run does not keep it alive.
    fig, axes = plt.subplots(layout="constrained", **kwargs)
    plt.close(fig)
    return fig, axes


def _verdict(prediction: Prediction) -> str:
    return f"{prediction.label} (P(FAKE) = {prediction.p_fake:.3f})"


def _grid_figure(result: Explanation, prediction: Prediction) -> Figure:
    """The input frames with their maps, the frame that raises P(FAKE) most first.

    Tiled into one image shown on one axes: twenty matplotlib axes took seconds to lay out.
    """
    order = np.argsort(-np.asarray(prediction.frame_influence), kind="stable")
    scale = max(1, -(-GRID_TILE // result.maps.shape[-1]))
    tiles = []
    for step in order:
        tile = _overlay(result.frames[step], result.maps[step], scale)
        caption = np.full((GRID_CAPTION, tile.shape[1], 3), 255, dtype=np.uint8)
        text = f"#{result.frame_indices[step]} {prediction.frame_influence[step]:+.3f}"
        cv2.putText(caption, text, (3, GRID_CAPTION - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.pad(np.concatenate([tile, caption]), ((2, 2), (2, 2), (0, 0)), constant_values=255))
    columns = min(5, len(tiles))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    mosaic = np.concatenate([np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)])
    height, width = mosaic.shape[:2]
    fig, ax = _figure(figsize=(width / 100 + 1.2, height / 100 + 0.8))
    ax.imshow(mosaic)
    ax.axis("off")
    fig.colorbar(ScalarMappable(Normalize(0, 1), CAM_COLORMAP), ax=ax, shrink=0.8, label="Grad-CAM (per-video scale)")
    fig.suptitle(f"{Path(prediction.video).name}: {_verdict(prediction)}\n{SCALE_NOTE};\n"
                 f"frames ranked by influence, most FAKE-raising first (#frame index, {INFLUENCE_NOTE})",
                 fontsize=9)
    return fig


def _draw(image: np.ndarray, crop_box: np.ndarray, face_box, cam_map: np.ndarray | None, lines: list[str],
          color: tuple[int, int, int], long_side: int) -> np.ndarray:
    """A full frame with the map pasted back over the crop box, the face box and text; downscaled
    to ``long_side`` at most."""
    out = image.copy()
    height, width = out.shape[:2]
    if cam_map is not None:
        x1, y1 = int(round(crop_box[0])), int(round(crop_box[1]))
        side = max(1, int(round(crop_box[2] - crop_box[0])))
        heat = _heat(cv2.resize(cam_map, (side, side), interpolation=cv2.INTER_LINEAR))
        # The crop box may reach past the frame (the crop was padded with black there).
        fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x1 + side, width), min(y1 + side, height)
        if fx2 > fx1 and fy2 > fy1:
            region = out[fy1:fy2, fx1:fx2]
            patch = heat[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]
            out[fy1:fy2, fx1:fx2] = cv2.addWeighted(patch, CAM_ALPHA, region, 1 - CAM_ALPHA, 0)
    scale = min(1.0, long_side / max(height, width))
    if scale < 1.0:
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    thickness = max(1, round(max(out.shape[:2]) / 300))
    box = np.round(np.asarray(face_box, dtype=np.float64) * scale).astype(int)
    cv2.rectangle(out, (box[0], box[1]), (box[2], box[3]), color, thickness)
    font_scale = max(0.4, max(out.shape[:2]) / 900)
    for row, text in enumerate(lines):
        origin = (6, int(8 + (row + 1) * 22 * font_scale / 0.6))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def _full_frame(result: Explanation, prediction: Prediction, crop_boxes: np.ndarray,
                images: dict[int, np.ndarray]) -> np.ndarray | None:
    """The input frame that raises P(FAKE) most, whole, with its map around the face."""
    step = int(np.argmax(prediction.frame_influence))
    image = images.get(result.frame_indices[step])
    if image is None:
        return None
    lines = [_verdict(prediction),
             f"frame {result.frame_indices[step]}: influence {prediction.frame_influence[step]:+.3f} "
             "(P(FAKE) minus P(FAKE) without it)"]
    return _draw(image, crop_boxes[step], prediction.boxes[step], result.maps[step], lines,
                 COLORS.get(prediction.label, (255, 255, 255)), FULL_FRAME_LONG_SIDE)


def _timeline_figure(prediction: Prediction) -> Figure:
    """Each face track's running score (P(FAKE) after the frames up to t), against the video's frame index."""
    fig, ax = _figure(figsize=(7, 3.5))
    for track in prediction.tracks:
        ax.plot(track.frame_indices, track.frame_scores, marker="o",
                label=f"track {track.track}: P(FAKE) {track.p_fake:.3f}",
                linewidth=2 if track.track == prediction.track else 1)
    ax.axhline(prediction.threshold, color="black", linestyle="--", label=f"threshold {prediction.threshold:g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("video frame")
    ax.set_ylabel("running P(FAKE), frames up to here")
    ax.set_title(f"{Path(prediction.video).name}: {_verdict(prediction)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def _animation_frames(result: Explanation, prediction: Prediction, crop_boxes: np.ndarray,
                      images: dict[int, np.ndarray]) -> np.ndarray | None:
    """The input frames in order, whole, with map, face box, verdict and running score; even sizes for yuv420p."""
    color = COLORS.get(prediction.label, (255, 255, 255))
    frames = []
    for step, index in enumerate(result.frame_indices):
        if index not in images:
            continue
        lines = [_verdict(prediction), f"frame {index}: running P(FAKE) {prediction.frame_scores[step]:.3f}"]
        frames.append(_draw(images[index], crop_boxes[step], prediction.boxes[step], result.maps[step], lines,
                            color, ANIMATION_LONG_SIDE))
    if not frames:
        return None
    height, width = (side - side % 2 for side in frames[0].shape[:2])
    return np.stack([frame[:height, :width] for frame in frames])


def write_animation(frames: np.ndarray, path: Path, fps: int = ANIMATION_FPS) -> Path:
    """An MP4 (H.264, else MPEG-4 part 2) or, when no encoder works, a GIF beside ``path``; returns the file."""
    for codec in ("libx264", "mpeg4"):
        try:
            with atomic_path(path) as tmp:
                with av.open(str(tmp), mode="w", format="mp4") as container:
                    stream = container.add_stream(codec, rate=fps)
                    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
                    if codec == "libx264":
                        stream.options = {"crf": "28", "preset": "veryfast"}
                    for frame in frames:
                        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                    container.mux(stream.encode())
            return path
        except (av.FFmpegError, ValueError):
            continue
    from PIL import Image

    gif = path.with_suffix(".gif")
    images = [Image.fromarray(frame) for frame in frames]
    with atomic_path(gif) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return gif


def _write_png(image: np.ndarray, path: Path) -> Path:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, encoded.tobytes())


def _write(result: Explanation, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = result.figures
    files = {}
    for name, filename in (("last_frame", "cam_last_frame.png"), ("full_frame", "cam_full_frame.png")):
        if figures.get(name) is not None:
            files[name] = _write_png(figures[name], out_dir / filename)
    for name, filename in (("grid", "cam_grid.png"), ("timeline", "scores_timeline.png")):
        if name in figures:
            files[name] = save_figure(figures[name], out_dir / filename)
    if figures.get("animation") is not None:
        files["animation"] = write_animation(figures["animation"], out_dir / "annotated.mp4")
    # Written last: its presence says the folder is complete.
    files["prediction"] = atomic_write_text(out_dir / "prediction.json",
                                            json.dumps(result.prediction.to_dict(), indent=2) + "\n")
    return files
