"""Detectors that ship inside dflib: trained weights that work after ``pip install``, offline.

Like timm's ``pretrained=True``: a name picks a checkpoint stored as package data, and every entry
point (``dflib predict``, ``evaluate``, ``app``, notebook 03) uses the default one when no
checkpoint of the user's own is given. Each has a model card beside it (``MODEL_CARD.md``).
"""
from __future__ import annotations

from pathlib import Path

DETECTORS_DIR = Path(__file__).resolve().parent / "detectors"
DEFAULT_DETECTOR = "sbi-lite0"
DETECTORS = {"sbi-lite0": "sbi_lite0.pt"}


def list_pretrained() -> list[str]:
    return sorted(DETECTORS)


def detector_file(name: str = DEFAULT_DETECTOR) -> Path:
    """Where the shipped detector ``name`` is stored (present once the recipe shipped it)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown shipped detector {name!r}; dflib ships: {', '.join(list_pretrained())}")
    return DETECTORS_DIR / DETECTORS[name]


def shipped_detector_file(name: str = DEFAULT_DETECTOR) -> Path:
    """The shipped detector's checkpoint, or an error that says how to get one where it is missing."""
    path = detector_file(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped detector {name!r} is not in this installation ({path}); pass a checkpoint of your own "
            "(--checkpoint best.pt), or reinstall dflib")
    return path


def load_pretrained(name: str = DEFAULT_DETECTOR, device: str = "cpu"):
    """(model in eval mode, checkpoint dict) of a shipped detector, e.g. ``dflib.load_pretrained("sbi-lite0")``."""
    from dflib.checkpoint import load_model

    return load_model(shipped_detector_file(name), device)
