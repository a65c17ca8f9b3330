#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter (Colab's Python) that can make a venv: python3.12 on
# PATH, else pyenv's newest 3.12, else Debian's python3.12 + python3.12-venv, installed with apt.
set -euo pipefail

usable() {  # a real 3.12 with venv and ensurepip, not a pyenv shim that refuses to run
    [ -x "$1" ] && "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null
}

candidates=()
command -v python3.12 >/dev/null && candidates+=("$(command -v python3.12)")
if command -v pyenv >/dev/null; then
    for dir in $(ls -d "$(pyenv root)"/versions/3.12.* 2>/dev/null | sort -V -r); do
        candidates+=("$dir/bin/python")
    done
fi
candidates+=(/usr/bin/python3.12)
for python in "${candidates[@]}"; do
    if usable "$python"; then echo "$python"; exit 0; fi
done

echo "scripts/python312.sh: no Python 3.12 found; installing Debian's python3.12 and python3.12-venv" >&2
sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
{ $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3.12 python3.12-venv; } >&2
if usable /usr/bin/python3.12; then echo /usr/bin/python3.12; exit 0; fi
echo "scripts/python312.sh: could not find or install Python 3.12 (Colab's Python)" >&2
exit 1
