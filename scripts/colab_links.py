"""Write the GitHub repository dflib is published at into the Colab badges and setup cells.

The address lives in one place, ``Repository`` under ``[project.urls]`` in pyproject.toml; the
README's badges, each notebook's badge and each notebook's setup cell (which installs dflib from
that repository on Colab) are made from it here, so they never disagree.

    python scripts/colab_links.py owner/name   # publish at github.com/owner/name: set it, rewrite all
    python scripts/colab_links.py              # rewrite all from pyproject.toml
    python scripts/colab_links.py --check      # exit 1 if a file is not what would be written

The setup cell is the same in every notebook but for the extras it installs; it stops with a plain
message when the install fails, so the next cell does not die on ``import dflib``.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
NOTEBOOKS = {"01_preprocess": "", "02_train": "", "03_predict": "[app]"}  # name: extras its setup installs
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
URL_LINE = re.compile(r'^Repository = "https://github\.com/[^"]*"$', re.M)
BADGE_REPO = re.compile(r"(https://colab\.research\.google\.com/github/)[\w.-]+/[\w.-]+(/blob/)")
# Colab mounts Drive here; `make colab-check` points DFLIB_DRIVE at a temporary folder instead.
SETUP = '''\
# Setup. On Colab: mount Google Drive and install dflib when missing; elsewhere: the installed dflib.
# REPO is the GitHub repository dflib is installed from (also in the badge above); both are written by
# scripts/colab_links.py from pyproject.toml. A placeholder (YOUR_GITHUB_USER) means it was never set.
REPO = "@REPO@"
import os
from pathlib import Path

try:
    from google.colab import drive  # importable only on Colab
except ImportError:
    drive = None
IN_COLAB = drive is not None
DRIVE = os.environ.get("DFLIB_DRIVE", "/content/drive")  # where Google Drive is mounted
if IN_COLAB:
    drive.mount(DRIVE)
    try:
        import dflib
    except ImportError:
        import subprocess
        import sys

        print(f"installing dflib from https://github.com/{REPO} ...")
        requirement = f"dflib@EXTRAS@ @ git+https://github.com/{REPO}"
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            print(pip.stdout[-2000:], pip.stderr[-4000:], sep="\\n")
            raise SystemExit(f"dflib could not be installed from https://github.com/{REPO} (pip's message is above). "
                             "Check that REPO names the repository this notebook came from, then run this cell again.")

# Videos, crops, runs and results live here: on Drive in Colab, so they outlive the session.
WORK_DIR = f"{DRIVE}/MyDrive/dflib" if IN_COLAB else str(Path.home() / "dflib")'''


def configured_repo() -> str:
    url = tomllib.loads(PYPROJECT.read_text())["project"]["urls"]["Repository"]
    return url.removeprefix("https://github.com/")


def setup_cell(repo: str, extras: str) -> str:
    return SETUP.replace("@REPO@", repo).replace("@EXTRAS@", extras)


def rendered(repo: str) -> dict[Path, str]:
    """Every file this script writes, as it would write it for ``repo``."""
    files = {PYPROJECT: URL_LINE.sub(f'Repository = "https://github.com/{repo}"', PYPROJECT.read_text()),
             README: BADGE_REPO.sub(rf"\g<1>{repo}\g<2>", README.read_text())}
    for name, extras in NOTEBOOKS.items():
        path = ROOT / "notebooks" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        nb.cells[0].source = BADGE_REPO.sub(rf"\g<1>{repo}\g<2>", nb.cells[0].source)
        next(cell for cell in nb.cells if cell.cell_type == "code").source = setup_cell(repo, extras)
        files[path] = nbformat.writes(nb) + "\n"
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", nargs="?", help="owner/name on GitHub (default: pyproject.toml's)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    repo = args.repo or configured_repo()
    if not REPO_NAME.match(repo):
        parser.error(f"{repo!r} is not a GitHub owner/name")
    stale = [path for path, text in rendered(repo).items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} does not match {repo}: run python scripts/colab_links.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in rendered(repo).items():
        if path in stale:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    print(f"Colab badges and setup cells install from https://github.com/{repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
