"""Link face detections across sampled frames into tracks, one per identity.

Sampled frames can be half a second apart, so linking accepts either overlap (IoU) or a
centre that moved less than half a face, at a similar size. Short misses inside a track are
bridged by interpolating the box; longer ones end it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dflib.faces import Detection


@dataclass
class Track:
    detections: dict[int, Detection] = field(default_factory=dict)  # sampled-frame position -> detection

    @property
    def last(self) -> int:
        return max(self.detections)

    def weight(self) -> float:
        """Persistence times size: the main face is on screen long and large."""
        return float(sum(np.sqrt(_area(d.box)) for d in self.detections.values()))


def _area(box: np.ndarray) -> float:
    return max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _area(np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _similarity(a: np.ndarray, b: np.ndarray, min_iou: float) -> float:
    overlap = iou(a, b)
    if overlap >= min_iou:
        return 1.0 + overlap
    side_a, side_b = np.sqrt(_area(a)), np.sqrt(_area(b))
    if side_a <= 0 or side_b <= 0 or not 0.5 <= side_a / side_b <= 2.0:
        return 0.0
    shift = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    closeness = 1.0 - shift / (0.5 * max(side_a, side_b))
    return closeness if closeness > 0 else 0.0


def link_tracks(per_frame: list[list[Detection]], min_iou: float = 0.3, max_gap: int = 3) -> list[Track]:
    """Greedy best-match linking; a track unseen for more than ``max_gap`` frames is closed."""
    open_tracks: list[Track] = []
    closed: list[Track] = []
    for position, detections in enumerate(per_frame):
        still_open = []
        for track in open_tracks:
            (still_open if position - track.last <= max_gap + 1 else closed).append(track)
        open_tracks = still_open
        pairs = sorted(
            ((_similarity(track.detections[track.last].box, det.box, min_iou), t, d)
             for t, track in enumerate(open_tracks) for d, det in enumerate(detections)),
            key=lambda item: -item[0])
        used_tracks, used_detections = set(), set()
        for similarity, t, d in pairs:
            if similarity <= 0 or t in used_tracks or d in used_detections:
                continue
            open_tracks[t].detections[position] = detections[d]
            used_tracks.add(t)
            used_detections.add(d)
        open_tracks += [Track({position: det}) for d, det in enumerate(detections) if d not in used_detections]
    tracks = closed + open_tracks
    return sorted(tracks, key=lambda track: -track.weight())


@dataclass
class FilledTrack:
    positions: np.ndarray  # (K,) sampled-frame positions with a usable box
    boxes: np.ndarray  # (K, 4) face boxes
    scores: np.ndarray  # (K,) 0 where interpolated
    landmarks: list  # K entries, (5, 2) arrays or None
    interpolated: np.ndarray  # (K,) bool


def fill_gaps(track: Track, max_gap: int) -> FilledTrack:
    """Positions covered by the track, with gaps of at most ``max_gap`` frames interpolated."""
    seen = sorted(track.detections)
    positions, boxes, scores, landmarks, interpolated = [], [], [], [], []
    for previous, current in zip([None] + seen[:-1], seen):
        if previous is not None and 1 < current - previous <= max_gap + 1:
            start, end = track.detections[previous], track.detections[current]
            for missing in range(previous + 1, current):
                weight = (missing - previous) / (current - previous)
                positions.append(missing)
                boxes.append((1 - weight) * start.box + weight * end.box)
                scores.append(0.0)
                landmarks.append(None if start.landmarks is None or end.landmarks is None
                                 else (1 - weight) * start.landmarks + weight * end.landmarks)
                interpolated.append(True)
        detection = track.detections[current]
        positions.append(current)
        boxes.append(detection.box)
        scores.append(detection.score)
        landmarks.append(detection.landmarks)
        interpolated.append(False)
    return FilledTrack(np.array(positions, dtype=np.int64), np.array(boxes, dtype=np.float32).reshape(-1, 4),
                       np.array(scores, dtype=np.float32), landmarks, np.array(interpolated, dtype=bool))
