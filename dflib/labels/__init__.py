"""Read the label layouts people arrive with into one table of ``LabelRow``.

Every reader returns filenames as posix paths relative to the videos folder, labels as
REAL/FAKE, and a ``group`` that ties together videos which must never be split apart (a
fake and its original, one person's clips), so that ``dflib.splits`` can keep splits free
of leakage. Each public dataset has one module holding its layout, its grouping rule and its
official split (``csvfile``, ``dfdc``, ``faceforensics``, ``celebdf``, ``folders``); ``registry``
detects which one a source is. Errors name the file (and line) and the cause; nothing is
silently dropped.
"""
from dflib.labels.common import (
    CSV_COLUMNS,
    SPLIT_NAMES,
    VIDEO_EXTENSIONS,
    LabelError,
    LabelRow,
    NameInfo,
    find_videos,
    is_video,
    match_videos,
)
from dflib.labels.csvfile import name_info, write_labels_csv
from dflib.labels.registry import (
    LABEL_FORMATS,
    detect_label_formats,
    list_label_formats,
    read_dataset,
    read_labels,
    select_compression,
)

__all__ = [
    "CSV_COLUMNS", "LABEL_FORMATS", "SPLIT_NAMES", "VIDEO_EXTENSIONS", "LabelError", "LabelRow",
    "NameInfo", "detect_label_formats", "find_videos", "is_video", "list_label_formats",
    "match_videos", "name_info", "read_dataset", "read_labels", "select_compression", "write_labels_csv",
]
