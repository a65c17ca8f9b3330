"""Face-crop clips as tensors for training, validation and prediction.

Training reads the crop files written by ``dflib preprocess``, so no video is decoded per epoch.
Every random choice for a clip comes from a generator seeded by (seed, epoch, clip index, draw): a
clip gets the same frames and augmentation whatever the number of DataLoader workers, and a resumed
run sees exactly the clips an uninterrupted one would have seen. A clip shorter than the sequence
length is a shorter sequence (``collate_clips`` pads a batch and gives the lengths), never a
clip with repeated crops.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dflib.config import IMAGENET_MEAN, IMAGENET_STD, LABELS, AugmentConfig, TrainConfig
from dflib.cropfile import load_clip
from dflib.preprocess import CONFIG_FILE as PREPROCESS_CONFIG
from dflib.preprocess import MANIFEST, read_manifest_rows

log = logging.getLogger(__name__)


SPLITS_FILE = "splits.csv"
_MEAN_255 = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1) * 255
_INV_STD_255 = 1 / (torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) * 255)
_LUMA = np.float32([0.299, 0.587, 0.114])


def clip_to_tensor(crops: np.ndarray, size: int) -> torch.Tensor:
    """(T,H,W,3) uint8 RGB -> (T,3,size,size) float32, ImageNet-normalised with RGB statistics.

    Training and prediction both call this, so a video is preprocessed the same way in both.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected crops of shape (T,H,W,3), got {crops.shape}")
    if crops.shape[1:3] != (size, size):
        shrinking = crops.shape[1] > size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        crops = np.stack([cv2.resize(frame, (size, size), interpolation=interpolation) for frame in crops])
    # In place on one contiguous copy: this runs for every clip of every epoch, in the loader workers.
    frames = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).contiguous().float()
    return frames.sub_(_MEAN_255).mul_(_INV_STD_255)


CLIP_SAMPLINGS = ("jitter", "uniform")


def choose_frames(n_available: int, frames: int, mode: str = "uniform",
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the crops the model sees, in time order, each crop at most once.

    The clip is cut into ``frames`` equal bins, one crop per bin: "uniform" takes each bin's middle
    (evaluation and prediction), "jitter" (training) one random phase shared by all bins, so
    training sees the same span and stride as evaluation, only shifted by less than one stride.
    A clip with ``frames`` crops or fewer gives all of them: a shorter sequence, never a crop
    repeated to fill it.
    """
    if n_available < 1:
        raise ValueError("a clip needs at least one frame")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if mode not in CLIP_SAMPLINGS:
        raise ValueError(f"unknown frame sampling {mode!r}: use one of {', '.join(CLIP_SAMPLINGS)}")
    if n_available <= frames:
        return np.arange(n_available)
    if mode == "jitter":
        if rng is None:
            raise ValueError("jitter needs a random generator")
        phase = rng.random()
    else:
        phase = 0.5
    return np.floor((np.arange(frames) + phase) * (n_available / frames)).astype(np.int64)


def collate_clips(batch: list[tuple[torch.Tensor, int, int]]):
    """Clips of different lengths in one batch: (frames zero-padded to the longest, labels, indices,
    lengths). The model skips the padding when given ``lengths``."""
    lengths = torch.tensor([len(frames) for frames, _, _ in batch])
    padded = torch.zeros((len(batch), int(lengths.max()), *batch[0][0].shape[1:]), dtype=batch[0][0].dtype)
    for row, (frames, _, _) in enumerate(batch):
        padded[row, :len(frames)] = frames
    labels = torch.tensor([label for _, label, _ in batch])
    indices = torch.tensor([index for _, _, index in batch])
    return padded, labels, indices, lengths


class ClipAugment:
    """Augmentations drawn once per clip and applied identically to every frame.

    Per-frame draws would make the frames flicker, which is itself a temporal artefact the
    LSTM could learn as a "fake" cue.
    """

    def __init__(self, config: AugmentConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng

    def draw(self) -> dict:
        cfg, rng = self.config, self.rng
        jitter = cfg.color_jitter
        return {
            "hflip": bool(rng.random() < cfg.hflip),
            "brightness": float(rng.uniform(1 - jitter, 1 + jitter)),
            "contrast": float(rng.uniform(1 - jitter, 1 + jitter)),
            "saturation": float(rng.uniform(1 - jitter, 1 + jitter)),
            "scale": float(rng.uniform(1 - cfg.scale_shift, 1 + cfg.scale_shift)),
            "shift": rng.uniform(-cfg.scale_shift, cfg.scale_shift, size=2).tolist(),
            "blur_sigma": float(rng.uniform(0.3, 1.5)) if rng.random() < cfg.blur_prob else 0.0,
            "jpeg_quality": int(rng.integers(cfg.jpeg_quality_min, 96)) if rng.random() < cfg.jpeg_prob else 0,
        }

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if not self.config.enabled:
            return crops
        return self.apply(crops, self.draw())

    @staticmethod
    def apply(crops: np.ndarray, params: dict) -> np.ndarray:
        """Apply one clip's parameters to all its (T,H,W,3) uint8 RGB frames."""
        out = crops[:, :, ::-1] if params["hflip"] else crops
        height, width = out.shape[1:3]
        scale, (shift_x, shift_y) = params["scale"], params["shift"]
        if scale != 1.0 or shift_x or shift_y:
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
            matrix[:, 2] += (shift_x * width, shift_y * height)
            out = np.stack([cv2.warpAffine(f, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101) for f in out])
        out = _color_jitter(np.ascontiguousarray(out), params["brightness"], params["contrast"], params["saturation"])
        if params["blur_sigma"] > 0:
            out = np.stack([cv2.GaussianBlur(f, (0, 0), params["blur_sigma"]) for f in out])
        if params["jpeg_quality"]:
            out = np.stack([_jpeg(f, params["jpeg_quality"]) for f in out])
        return np.ascontiguousarray(out)


def _color_jitter(crops: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness, then contrast around the clip's mean grey, then saturation, as one affine colour map.

    Saturation s blends each pixel with its grey: A = s*I + (1-s)*1*luma^T. A keeps grey levels, so
    the three steps fold into out = brightness*contrast*A @ x + (1-contrast)*mean, one cv2 pass.
    """
    mean = brightness * float(crops.reshape(-1, 3).mean(axis=0) @ _LUMA)
    blend = saturation * np.eye(3, dtype=np.float32) + (1 - saturation) * np.outer(np.ones(3), _LUMA)
    matrix = np.hstack([brightness * contrast * blend, np.full((3, 1), (1 - contrast) * mean)]).astype(np.float32)
    return cv2.transform(crops.reshape(-1, crops.shape[2], 3), matrix).reshape(crops.shape)


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    # JPEG subsamples chroma, so it must see the channel order it expects (BGR for OpenCV).
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@dataclass
class ClipRow:
    """One usable crop file of the manifest; ``output`` is relative to the data folder."""

    filename: str
    label: str
    output: str
    group: str = ""
    source: str = ""
    split: str = ""
    track: str = ""


def read_manifest(data_dir: str | os.PathLike) -> list[ClipRow]:
    """Rows that preprocessing finished (status ok) and that carry a REAL/FAKE label."""
    rows, unlabeled = [], 0
    for record in read_manifest_rows(data_dir):
        if record.status != "ok":
            continue
        label = record.label.strip().upper()
        if label not in LABELS:
            unlabeled += 1
            continue
        rows.append(ClipRow(filename=record.filename, label=label, output=record.output, group=record.group,
                            source=record.source, split=record.split, track=str(record.track)))
    path = Path(data_dir) / MANIFEST
    if unlabeled:
        log.warning("%s: %d ok row(s) without a REAL/FAKE label are not used for training", path, unlabeled)
    if not rows:
        raise ValueError(f"{path}: no preprocessed video with status ok and a REAL/FAKE label")
    return rows


def make_splits(rows: list[ClipRow], cfg: TrainConfig, run_dir: str | os.PathLike) -> dict[str, str]:
    """filename -> train/val/test, saved in ``run_dir``; an existing splits file is reused.

    Reusing it is what keeps a resumed run on the same videos: re-splitting after new videos were
    preprocessed would move videos between train and validation.
    """
    from dflib.labels import LabelRow
    from dflib.splits import assign_splits, load_splits, save_splits, split_options

    path = Path(run_dir) / SPLITS_FILE
    if path.is_file():
        splits = load_splits(path)
        new = sorted({row.filename for row in rows} - set(splits))
        if new:
            log.warning("%s: %d video(s) not in the saved splits are left out, e.g. %s", path, len(new), new[0])
        return splits
    label_rows = [LabelRow(r.filename, r.label, group=r.group, source=r.source, split=r.split) for r in rows]
    unique = list({row.filename: row for row in label_rows}.values())
    splits = assign_splits(unique, **split_options(cfg))
    save_splits(splits, path)
    return splits


def expected_class_counts(rows: list[ClipRow], pseudo_fakes: float = 0.0) -> tuple[float, float]:
    """(REAL, FAKE) clips a training epoch is expected to show, after REAL clips turn into
    pseudo-fakes with probability ``pseudo_fakes``."""
    real = sum(row.label == "REAL" for row in rows)
    return real * (1 - pseudo_fakes), len(rows) - real + real * pseudo_fakes


def class_weights(rows: list[ClipRow], pseudo_fakes: float = 0.0) -> torch.Tensor:
    """[REAL, FAKE] inverse-frequency weights (mean 1) of the labels training will see, so a skewed
    label file (often 85% FAKE), or pseudo-fakes taking a share of the REAL clips, does not teach
    the model to answer one class always. A class that never occurs gets 1.0."""
    counts = expected_class_counts(rows, pseudo_fakes)
    inverse = [1 / count if count else None for count in counts]
    present = [value for value in inverse if value is not None]
    mean = sum(present) / len(present)
    return torch.tensor([value / mean if value is not None else 1.0 for value in inverse], dtype=torch.float32)


class VideoClipDataset(Dataset):
    """(frames (T,3,H,W) float32, label 0=REAL/1=FAKE, index) for each manifest row.

    ``rows`` are manifest rows, or filenames to look up in the data folder's manifest.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        rows: list[ClipRow] | list[str],
        frames: int,
        size: int,
        train: bool,
        augment: AugmentConfig | None = None,
        pseudo_fakes: float = 0.0,
        seed: int = 0,
        sampling: str = "jitter",
        fake_copies: bool = False,
        pseudo_fake_landmarks: str = "auto",
    ):
        """``fake_copies`` (evaluation only) adds one fixed pseudo-fake of every REAL clip, labelled
        FAKE: with real videos only, validation then still has two classes to rank.
        ``pseudo_fake_landmarks`` is TrainConfig's: "68", "5" or "auto"."""
        if pseudo_fake_landmarks not in ("auto", "68", "5"):
            raise ValueError(f"pseudo_fake_landmarks must be auto, 68 or 5, not {pseudo_fake_landmarks!r}")
        self.pseudo_fake_landmarks = pseudo_fake_landmarks
        self.data_dir = Path(data_dir)
        self.rows = list(rows)
        if any(isinstance(row, str) for row in self.rows):
            wanted = set(self.rows)
            self.rows = [row for row in read_manifest(self.data_dir) if row.filename in wanted]
            missing = wanted - {row.filename for row in self.rows}
            if missing:
                raise ValueError(
                    f"{self.data_dir / MANIFEST}: {len(missing)} video(s) not usable for training "
                    f"(absent, not ok or unlabeled), e.g. {sorted(missing)[0]}"
                )
        self.frames = frames
        self.size = size
        self.train = train
        self.augment = augment if augment is not None else AugmentConfig(enabled=False)
        self.pseudo_fakes = pseudo_fakes
        self.seed = seed
        self.sampling = sampling if train else "uniform"
        self.epoch = 0
        self._pseudofake = None
        self._fake_copies = [i for i, row in enumerate(self.rows) if row.label == "REAL"] if fake_copies else []
        if (pseudo_fakes and train) or self._fake_copies:
            from dflib import pseudofake

            self._pseudofake = pseudofake

    def set_epoch(self, epoch: int) -> None:
        """New random draws each epoch; call before iterating (workers get a fresh copy each epoch)."""
        self.epoch = epoch

    @property
    def labels(self) -> list[int]:
        return [LABELS[row.label] for row in self.rows] + [LABELS["FAKE"]] * len(self._fake_copies)

    def __len__(self) -> int:
        return len(self.rows) + len(self._fake_copies)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        """``key`` is a clip index, or (index, draw) from a sampler that draws a clip several times
        per epoch: each draw then gets its own frames, augmentation and pseudo-fake decision."""
        index, draw = key if isinstance(key, tuple) else (key, 0)
        if index >= len(self.rows):
            return self._fake_copy(index)
        row = self.rows[index]
        path = self.data_dir / row.output
        try:
            clip = load_clip(path)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{path}: crop file of {row.filename} is missing ({error})") from error
        except ValueError as error:
            raise ValueError(f"crop file of {row.filename}: {error}") from error
        label = LABELS[row.label]
        rng = np.random.default_rng([self.seed, self.epoch, index, draw]) if self.train else None
        chosen = choose_frames(len(clip), self.frames, self.sampling, rng)
        crops = clip.crops[chosen]
        if self._pseudofake:
            # Every clip that is not made a pseudo-fake is the real half of a pair: a change the fakes
            # make to the whole frame then comes with either label, and is no cue. In validation a
            # REAL clip is the pair of its fixed fake copy.
            landmarks, landmarks68 = clip.landmarks[chosen], self._landmarks68(clip, chosen, path)
            if not self.train:
                crops = self._pseudofake.paired_real(crops, landmarks, np.random.default_rng([self.seed, index]),
                                                     landmarks68)
            elif label == LABELS["REAL"] and rng.random() < self.pseudo_fakes:
                crops, _, _ = self._pseudofake.make_pseudo_fake(crops, landmarks, rng, landmarks68=landmarks68)
                label = LABELS["FAKE"]
            else:
                crops = self._pseudofake.paired_real(crops, landmarks, rng, landmarks68)
        if self.train:
            crops = ClipAugment(self.augment, rng)(crops)
        return clip_to_tensor(crops, self.size), label, index

    def _fake_copy(self, index: int) -> tuple[torch.Tensor, int, int]:
        """The same pseudo-fake of a REAL clip every time (seeded by the clip), uniform frames."""
        source = self._fake_copies[index - len(self.rows)]
        path = self.data_dir / self.rows[source].output
        clip = load_clip(path)
        chosen = choose_frames(len(clip), self.frames, "uniform")
        crops, _, _ = self._pseudofake.make_pseudo_fake(clip.crops[chosen], clip.landmarks[chosen],
                                                        np.random.default_rng([self.seed, source]),
                                                        landmarks68=self._landmarks68(clip, chosen, path))
        return clip_to_tensor(crops, self.size), LABELS["FAKE"], index

    def _landmarks68(self, clip, chosen: np.ndarray, path: Path) -> np.ndarray | None:
        """dlib's 68 points for the pseudo-fake's mask, or None for the detector's 5."""
        if self.pseudo_fake_landmarks == "5":
            return None
        if clip.landmarks68 is None:
            if self.pseudo_fake_landmarks == "68":
                raise ValueError(f"{path}: no 68-point landmarks in this crop file; preprocess with "
                                 "--landmarks68, or train with --pseudo-fake-landmarks 5 or auto")
            return None
        return clip.landmarks68[chosen]
