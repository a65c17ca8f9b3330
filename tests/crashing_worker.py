"""A stand-in for dflib.preprocess._run_one that kills its worker process on one video.

It lives in an importable module so that a spawned worker can unpickle it by name."""
import os

from dflib import preprocess


def run_one_or_die(task):
    if "crash" in task[0]:
        os._exit(1)  # as a decoder segfault or the out-of-memory killer would
    return preprocess._run_one(task)
