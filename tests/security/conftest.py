"""Lets the tests import the checks beside them, and the renderer in tests/manifests, under --import-mode=importlib."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "manifests")]
