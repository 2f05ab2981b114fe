"""Versioned model artifacts: write them after training, refuse bad ones at load.

A folder holds ``manifest.json`` (format, training window, peer groups, feature
list, the SHA-256 of every other file, and a version that is the hash of all of
it), ``peers.json`` (peer baselines) and ``forests.npz`` (exported isolation
forests, no pickles). A worker must never score with a model other than the one
its manifest describes, so every check failure names the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.features import FEATURES
from models.forest import ExportedForest
from models.iforest import IsolationForestScorer
from models.peers import PeerBaselines

__all__ = ["ModelArtifactError", "Models", "save_models", "load_models", "FORMAT"]

FORMAT = "som-models/1"
MANIFEST = "manifest.json"


class ModelArtifactError(ValueError):
    """An artifact folder that cannot be trusted; the message names the file."""


@dataclass
class Models:
    peers: PeerBaselines
    iforest: IsolationForestScorer
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_models(out_dir: str | Path, models: Models, window: dict) -> dict:
    """Write the three files; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peers = json.dumps(models.peers.to_dict(), sort_keys=True).encode()
    arrays: dict[str, np.ndarray] = {}
    groups = {}
    for i, (name, forest) in enumerate(sorted(models.iforest.forests_.items())):
        arrays.update(forest.to_arrays(f"g{i}_"))
        groups[name] = {"prefix": f"g{i}_", "limit": models.iforest.limits_[name],
                        "center": models.iforest.centers_[name].tolist(),
                        "scale": models.iforest.scales_[name].tolist()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files = {"peers.json": peers, "forests.npz": buf.getvalue()}
    manifest = {
        "format": FORMAT,
        "training_window": window,
        "features": list(FEATURES),
        "peer_groups": models.peers.groups,
        "size_cuts": models.peers.cuts,
        "iforest": {"params": models.iforest.get_params(), "groups": groups},
        "files": {name: _sha(data) for name, data in files.items()},
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    manifest["version"] = "art-" + _sha(body)[:12]
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    models.manifest = manifest
    return manifest


def load_models(folder: str | Path) -> Models:
    """Load and check a folder written by ``save_models``; raise ModelArtifactError if bad."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ModelArtifactError(f"{mpath}: missing; run `som train` to create model artifacts")
    try:
        manifest = json.loads(mpath.read_text())
        version = manifest.pop("version")
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ModelArtifactError(f"{mpath}: not a model manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ModelArtifactError(f"{mpath}: format {manifest.get('format')!r}, expected {FORMAT}")
    if "art-" + _sha(json.dumps(manifest, sort_keys=True).encode())[:12] != version:
        raise ModelArtifactError(f"{mpath}: content does not match its version {version}")
    manifest["version"] = version
    if manifest.get("features") != list(FEATURES):
        raise ModelArtifactError(
            f"{mpath}: trained on features {manifest.get('features')}, this engine computes "
            f"{list(FEATURES)}; retrain with this version of `som train`")
    data = {}
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ModelArtifactError(f"{path}: missing (listed in {mpath})")
        raw = path.read_bytes()
        if _sha(raw) != digest:
            raise ModelArtifactError(f"{path}: SHA-256 differs from {mpath}; corrupt or altered")
        data[name] = raw
    try:
        peers = PeerBaselines.from_dict(json.loads(data["peers.json"]))
        arrays = np.load(io.BytesIO(data["forests.npz"]), allow_pickle=False)
        scorer = IsolationForestScorer(**manifest["iforest"]["params"])
        scorer.forests_, scorer.limits_, scorer.centers_, scorer.scales_ = {}, {}, {}, {}
        for name, g in manifest["iforest"]["groups"].items():
            forest = ExportedForest.from_arrays(arrays, g["prefix"])
            n = len(forest.feature)
            if forest.left.max(initial=0) >= n or forest.right.max(initial=0) >= n:
                raise ValueError(f"forest {name} has child indices out of range")
            scorer.forests_[name] = forest
            scorer.limits_[name] = float(g["limit"])
            scorer.centers_[name] = np.asarray(g["center"], dtype=float)
            scorer.scales_[name] = np.asarray(g["scale"], dtype=float)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelArtifactError(f"{folder}: artifacts unreadable ({exc})") from None
    return Models(peers, scorer, manifest)
