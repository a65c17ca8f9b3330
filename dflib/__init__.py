"""dflib: deepfake video detection (face crops -> CNN per frame -> LSTM over time).

The main entry points are reachable from the top level, loaded on first use so that
``import dflib`` (and ``dflib --help``) stays instant::

    dflib.predict("video.mp4")                   # -> Prediction, by the detector dflib ships
    dflib.predict("video.mp4", "best.pt")        # or by a checkpoint of your own
    dflib.explain("video.mp4", out_dir="explain/")
    model, ckpt = dflib.load_pretrained("sbi-lite0")
    dflib.create_model("resnext50_lstm", pretrained="none"); dflib.list_models()
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "predict": "dflib.prediction",
    "Prediction": "dflib.prediction",
    "Predictor": "dflib.prediction",
    "explain": "dflib.explanation",
    "create_model": "dflib.models",
    "list_models": "dflib.models",
    "list_detectors": "dflib.faces",
    "load_pretrained": "dflib.pretrained",
    "list_pretrained": "dflib.pretrained",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dflib' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
