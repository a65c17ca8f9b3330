"""How one face track's crops become P(FAKE): the two backends of ``dflib.prediction.Predictor``,
side by side. ``TorchScores`` runs the checkpoint's PyTorch model (and keeps the per-frame features
Grad-CAM and frame influence need); ``OnnxScores`` runs the file ``dflib export`` wrote, with
onnxruntime. Both take the same normalised frames and give the same scores (a test compares them).
"""
from __future__ import annotations

import json
import os

import torch

from dflib.export import EXPORT_FORMAT, INPUT, METADATA_KEY, OUTPUTS, onnx_file, onnx_session, p_fake


class TorchScores:
    """Per-frame features, running P(FAKE) and video P(FAKE) of one face track, from one forward pass
    of this video alone.

    The job of a ``Predictor`` backend; ``OnnxScores`` does the same with onnxruntime (without features).
    """

    def __init__(self, model, device: torch.device, fake_index: int):
        self.model, self.device, self.fake_index = model, device, fake_index

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[float], float]:
        features = self.model.frame_features(frames.unsqueeze(0).to(self.device))
        steps = self.model.head(self.model.lstm(features)[0])
        # The head is linear and dropout is off in eval mode, so the read-out of the step logits
        # is exactly the video logits of forward(): one pass gives both.
        video = self.model.readout(steps)
        frame_p = torch.softmax(steps[0].float(), dim=-1)[:, self.fake_index]
        video_p = torch.softmax(video[0].float(), dim=-1)[self.fake_index]
        return features[0], frame_p.cpu().tolist(), float(video_p)


class OnnxScores:
    """Per-step and video P(FAKE) of one face track from an exported ONNX file (``Predictor``'s onnx backend).

    ``ckpt`` is the export's metadata, which has the checkpoint's keys that prediction reads.
    """

    def __init__(self, path: str | os.PathLike, device: torch.device):
        path = onnx_file(path)
        self.session = onnx_session(path, device.type)
        recorded = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if not recorded:
            raise ValueError(f"{path}: no dflib metadata in this ONNX file: export it with `dflib export`")
        self.ckpt = json.loads(recorded)
        if self.ckpt.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path}: not a dflib export (metadata format {self.ckpt.get('format')!r})")
        self.frames = int(self.ckpt["frames"])
        self.fake_index = int(self.ckpt["label_map"]["FAKE"])

    def __call__(self, frames: torch.Tensor) -> tuple[None, list[float], float]:
        if not 1 <= frames.shape[0] <= self.frames:
            # The exported graph takes up to its checkpoint's sequence length: refuse rather than cut.
            raise ValueError(f"the ONNX model takes 1 to {self.frames} frames per face track (its checkpoint's "
                             f"sequence length), got {frames.shape[0]}")
        video, steps = self.session.run(list(OUTPUTS), {INPUT: frames.numpy()[None]})
        return None, p_fake(steps[0], self.fake_index).tolist(), float(p_fake(video[0], self.fake_index))
