"""`make colab-check`: install dflib as the Colab setup cells do, into Colab's versions, and run the notebooks.

1. A fresh Python 3.12 venv (Colab's Python) gets the versions Colab has preinstalled
   (scripts/colab_versions.txt) and the tools that run notebooks headless (pytest, papermill).
2. dflib is installed with the requirement each notebook's setup cell passes to pip, the GitHub
   address replaced by this checkout (``dflib @ file://...``, then ``dflib[app] @ ...`` as 03 does).
3. ``pip freeze`` before and after: every package pip changed is listed; the check fails if one
   of Colab's pinned packages changed (on Colab that breaks its other packages or forces a restart).
4. The three notebooks run top to bottom with a stand-in ``google.colab`` on PYTHONPATH and "Drive"
   mounted in a temporary folder (tests/test_colab_check.py), so their Colab branch runs too.

Run with any Python 3; the venv is made anew each time (.venv-colab) so the comparison starts from
Colab's versions alone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-colab"
PINS = ROOT / "scripts" / "colab_versions.txt"
HARNESS = ["pytest>=7", "papermill>=2.5", "nbformat>=5"]  # already in the venv before dflib, as test tools
GITHUB_SOURCE = "git+https://github.com/{REPO}"
REQUIREMENT = re.compile(r'requirement = f"(dflib(?:\[[\w,]+\])? @ )' + re.escape(GITHUB_SOURCE) + '"')


def run(*command, **options) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, command)), flush=True)
    return subprocess.run([str(c) for c in command], check=True, **options)


def setup_cell_requirements() -> list[str]:
    """What each notebook's setup cell asks pip for, in notebook order, each once."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        setup = "".join(next(cell for cell in cells if cell["cell_type"] == "code")["source"])
        match = REQUIREMENT.search(setup)
        if match is None:
            sys.exit(f"{path.name}: no `requirement = f\"dflib... @ {GITHUB_SOURCE}\"` in its setup cell")
        if match.group(1) not in found:
            found.append(match.group(1))
    return [prefix + ROOT.as_uri() for prefix in found]


def freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], check=True, capture_output=True, text=True)
    versions = {}
    for line in out.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            versions[canonical(name)] = version
        elif " @ " in line:
            versions[canonical(line.split(" @ ")[0])] = line.split(" @ ", 1)[1]
    return versions


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_names() -> set[str]:
    return {canonical(re.split(r"[=<>!~ ]", line.strip())[0]) for line in PINS.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def main() -> int:
    started = time.perf_counter()
    python312 = subprocess.run([str(ROOT / "scripts" / "python312.sh")], check=True, capture_output=True,
                               text=True).stdout.strip()
    shutil.rmtree(VENV, ignore_errors=True)
    run(python312, "-m", "venv", VENV)
    python = VENV / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-r", PINS, *HARNESS)
    before = freeze(python)
    print(f"Colab's versions in place ({time.perf_counter() - started:.0f} s): "
          + ", ".join(f"{name} {before[name]}" for name in sorted(pinned_names())), flush=True)

    for requirement in setup_cell_requirements():
        run(python, "-m", "pip", "install", "-q", requirement)
    after = freeze(python)
    changed = {name: (version, after.get(name, "removed")) for name, version in before.items()
               if after.get(name) != version}
    added = sorted(set(after) - set(before))
    print(f"pip changed {len(changed)} of the {len(before)} packages installed before dflib"
          + "".join(f"\n  {name}: {old} -> {new}{'  (Colab pin)' if name in pinned_names() else ''}"
                    for name, (old, new) in sorted(changed.items())))
    print(f"pip added {len(added)}: " + ", ".join(f"{name} {after[name]}" for name in added if name != "dflib"))
    broken = sorted(set(changed) & pinned_names())
    if broken:
        print(f"colab-check FAILED: installing dflib changed Colab's {', '.join(broken)}", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="stand-in-drive-") as drive:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "colab_standin"), "DFLIB_DRIVE": drive,
               "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        # -p no:cacheprovider: the check writes nothing into the checkout but the venv.
        tests = subprocess.run([str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                                "tests/test_colab_check.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    print(tests.stdout[-20000:], tests.stderr[-5000:], sep="\n")
    print(f"colab-check took {time.perf_counter() - started:.0f} s", flush=True)
    if tests.returncode != 0 or not re.search(r"\b1 passed\b", tests.stdout) or "skipped" in tests.stdout:
        print("colab-check FAILED: the notebooks did not all run through on the stand-in Colab", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
