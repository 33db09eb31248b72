"""The names `simlm fuse` offers (methods, score normalisations, the run tag), apart from `pipeline/fuse.py`,
which needs numpy: the command's flags (and `simlm --help`) load without it."""

from __future__ import annotations

from enum import Enum

FUSE_TAG = "simlm-fuse"


class FuseMethod(str, Enum):
    rrf = "rrf"
    interpolate = "interpolate"


class Norm(str, Enum):
    minmax = "minmax"
    zscore = "zscore"
    none = "none"
