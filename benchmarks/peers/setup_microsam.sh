#!/usr/bin/env bash
# Build the virtual environment that runs micro-sam's napari 2D annotator for the peer benchmarks.
#
#   bash benchmarks/peers/setup_microsam.sh [VENV_DIR]
#
# VENV_DIR: argument, else $PROMPTSEG_MICROSAM_VENV, else .venv-peers/microsam (relative to the
# repository root). Interpreter: $PYTHON, else python3 (micro-sam 1.8.14 needs Python >= 3.11).
#
# Installs the pinned set in benchmarks/peers/microsam-requirements.txt (micro_sam==1.8.14, napari,
# PyQt6, torch==2.14.1, torchvision==0.29.1 and everything they pull in), pip only, no conda.
# Idempotent: when the venv exists, was installed from the same requirements file (a stamp holds its
# sha256) and `micro_sam.sam_annotator.annotator_2d` imports, it does nothing. Non-interactive.
# Takes about 2 minutes on a 2-core machine with the wheels cached, ~7 GB on disk (torch's CUDA
# wheels come along with torch from PyPI; the benchmark itself runs on the CPU).
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
requirements="$here/microsam-requirements.txt"
python=${PYTHON:-python3}

venv=${1:-${PROMPTSEG_MICROSAM_VENV:-.venv-peers/microsam}}
case $venv in
    /*) ;;
    *) venv="$root/$venv" ;;
esac
vpy="$venv/bin/python"
stamp="$venv/.promptseg-peers-installed"

say() { printf 'setup_microsam: %s\n' "$*"; }

sha=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")

check_import() {
    QT_QPA_PLATFORM=offscreen "$vpy" -c '
import micro_sam, napari, torch
from micro_sam.sam_annotator import annotator_2d  # noqa: F401
from micro_sam.sam_annotator.annotator_2d import Annotator2d  # noqa: F401
print(f"micro_sam {micro_sam.__version__}, napari {napari.__version__}, torch {torch.__version__}")
' 2>/dev/null
}

if [ -x "$vpy" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ]; then
    if versions=$(check_import); then
        say "$venv is complete ($versions); nothing to do"
        exit 0
    fi
    say "$venv has a stamp but micro_sam does not import; reinstalling"
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "error: $python is $("$python" --version 2>&1); micro-sam 1.8.14 needs Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
fi

started=$(date +%s)
if [ -x "$vpy" ]; then
    say "using the existing venv $venv"
else
    say "creating $venv with $("$python" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

say "upgrading pip"
"$vpy" -m pip install --quiet --no-input --upgrade pip 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }

say "installing $(grep -c '^[^#].*==' "$requirements") pinned packages from ${requirements#"$root"/} (micro_sam==1.8.14, napari, PyQt6, torch==2.14.1, ...)"
if ! "$vpy" -m pip install --no-input --progress-bar off -r "$requirements" 2>&1 \
    | { grep -v -e '^Requirement already satisfied' -e "^WARNING: Location 'file:" || true; }; then
    say "error: pip install failed (see above)" >&2
    exit 1
fi
if ! versions=$(check_import); then
    say "error: micro_sam.sam_annotator.annotator_2d does not import in $venv after the install" >&2
    QT_QPA_PLATFORM=offscreen "$vpy" -c 'from micro_sam.sam_annotator import annotator_2d' >&2 || true
    exit 1
fi
printf '%s\n' "$sha" > "$stamp"
say "done in $(( $(date +%s) - started )) s: $venv ($versions)"
