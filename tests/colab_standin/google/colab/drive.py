"""``drive.mount`` as Colab's, over a local folder: the mount point must exist (the caller makes a
temporary one and names it in DFLIB_DRIVE), and ``MyDrive`` appears in it as on Colab."""
from __future__ import annotations

from pathlib import Path


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    root = Path(mountpoint)
    if not root.is_dir():
        raise ValueError(f"stand-in Drive: mount point {mountpoint} is not a folder; "
                         "set DFLIB_DRIVE to a temporary one")
    (root / "MyDrive").mkdir(exist_ok=True)
    print(f"Mounted at {mountpoint}")
