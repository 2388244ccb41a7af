"""The model registry: which model the classify stage serves, candidates, and the audit trail.

Layout under ``<CONVEYOR_HOME>/models/<name>/``:

=====================  ==========================================================================
``candidates/<sha>/``  a trained candidate (``model.onnx``, ``manifest.json``, ``NOTICE``) and its
                       gate report ``report.json``; ``<sha>`` is the first 12 hex digits of its sha256
``live.json``          the promoted candidate the classify stage loads; absent: the shipped model
``history.jsonl``      one JSON line per event — ``promoted``, ``rejected``, ``rolled_back`` — with
                       who, when (UTC, ISO 8601) and the sha256
=====================  ==========================================================================

A candidate is promoted by the gate (``conveyor models retrain``) or by ``conveyor models
promote``; ``conveyor models rollback`` restores the model that was live before. Every classify
process reads ``live.json`` when it starts, so a promotion or rollback takes effect at the
next (rolling) restart. The folder must be shared by the trainer and the classify processes
(one machine, or a volume).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from conveyor.processors.models import MODELS_DIR
from conveyor.streams.config.settings import Settings
from conveyor.streams.ops.audit import principal

SHIPPED = "shipped"
"""The ``candidate`` value that names the model shipped in the package."""


class RegistryError(ValueError):
    """Unknown model or candidate, nothing to roll back to, or a candidate whose files do not
    match its manifest."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ModelRegistry:
    """Candidates, the live pointer and the history of the models under ``root``
    (default ``<settings.home>/models``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def of(cls, settings: Settings) -> ModelRegistry:
        """The registry in ``settings.home``."""
        return cls(settings.home / "models")

    # ------------------------------------------------------------------ reading
    def live(self, name: str) -> dict[str, Any]:
        """``{"candidate", "sha256", "dir", "promoted_by", "promoted_at"}`` of the model served;
        ``candidate`` is :data:`SHIPPED` when nothing was promoted."""
        pointer = self.root / name / "live.json"
        if pointer.is_file():
            live = json.loads(pointer.read_text())
            return {**live, "dir": str(self.root / name / "candidates" / live["candidate"])}
        manifest = json.loads((MODELS_DIR / name / "manifest.json").read_text())
        return {"candidate": SHIPPED, "sha256": manifest["sha256"], "dir": str(MODELS_DIR / name),
                "promoted_by": None, "promoted_at": None}

    def live_dir(self, name: str) -> Path:
        """Folder of the model the classify stage should load for ``name``."""
        return Path(self.live(name)["dir"])

    def candidates(self, name: str) -> list[dict[str, Any]]:
        """Every candidate of ``name``: ``{"candidate", "sha256", "version", "decision", "dir"}``."""
        out = []
        for folder in sorted((self.root / name / "candidates").glob("*")):
            manifest = json.loads((folder / "manifest.json").read_text())
            report = json.loads((folder / "report.json").read_text()) if (folder / "report.json").is_file() else {}
            out.append({"candidate": folder.name, "sha256": manifest["sha256"], "version": manifest.get("version"),
                        "decision": report.get("decision"), "dir": str(folder)})
        return out

    def history(self, name: str) -> list[dict[str, Any]]:
        """The events of ``name``, oldest first."""
        path = self.root / name / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ------------------------------------------------------------------ writing
    def add_candidate(self, name: str, staging: Path, report: dict[str, Any]) -> Path:
        """Copy a trained candidate (``staging``: model.onnx, manifest.json, NOTICE) into the
        registry with its gate ``report``; returns its folder. Records a ``rejected`` event when
        ``report["decision"]`` is ``rejected``."""
        manifest = json.loads((staging / "manifest.json").read_text())
        sha256: str = manifest["sha256"]
        folder = self.root / name / "candidates" / sha256[:12]
        folder.mkdir(parents=True, exist_ok=True)
        for file in ("model.onnx", "manifest.json", "NOTICE"):
            if (staging / file).is_file():
                shutil.copyfile(staging / file, folder / file)
        _write_json(folder / "report.json", report)
        if report.get("decision") == "rejected":
            self._record(name, {"event": "rejected", "sha256": manifest["sha256"], "candidate": folder.name,
                                "by": principal(), "at": _now(), "reasons": report.get("reasons", [])})
        return folder

    def promote(self, name: str, candidate: str, *, by: Optional[str] = None, reason: str = "") -> dict[str, Any]:
        """Make ``candidate`` (a folder name under ``candidates/``, or a sha256 prefix) the live
        model of ``name``; returns the new live entry.

        Raises:
            RegistryError: no such candidate, or its ``model.onnx`` does not match the manifest's sha256.
        """
        folder = self.candidate_dir(name, candidate)
        manifest = json.loads((folder / "manifest.json").read_text())
        _check_sha(folder, manifest["sha256"])
        pointer = self.root / name / "live.json"
        before = json.loads(pointer.read_text()) if pointer.is_file() else None
        entry = {"candidate": folder.name, "sha256": manifest["sha256"], "promoted_by": by or principal(),
                 "promoted_at": _now(), "previous": before}
        _write_json(pointer, entry)
        self._record(name, {"event": "promoted", "sha256": entry["sha256"], "candidate": entry["candidate"],
                            "by": entry["promoted_by"], "at": entry["promoted_at"], "reason": reason,
                            "previous_sha256": before["sha256"] if before else self._shipped_sha(name)})
        return self.live(name)

    def rollback(self, name: str, *, by: Optional[str] = None) -> dict[str, Any]:
        """Serve again the model that was live before the current one (the shipped one at the
        bottom); returns the new live entry.

        Raises:
            RegistryError: the shipped model is live (nothing to roll back to).
        """
        pointer = self.root / name / "live.json"
        if not pointer.is_file():
            raise RegistryError(f"{name}: the shipped model is live; nothing to roll back to")
        current = json.loads(pointer.read_text())
        if current.get("previous"):
            _write_json(pointer, current["previous"])
        else:
            pointer.unlink()
        live = self.live(name)
        self._record(name, {"event": "rolled_back", "sha256": live["sha256"], "candidate": live["candidate"],
                            "from_sha256": current["sha256"], "by": by or principal(), "at": _now()})
        return live

    # ------------------------------------------------------------------ helpers
    def candidate_dir(self, name: str, candidate: str) -> Path:
        """Folder of ``candidate`` (its folder name or a sha256 prefix of at least 12 digits' start).

        Raises:
            RegistryError: no candidate, or more than one, matches.
        """
        base = self.root / name / "candidates"
        matches = [p for p in base.glob("*") if p.name.startswith(candidate[:12])] if candidate else []
        if len(matches) != 1:
            known = ", ".join(p.name for p in sorted(base.glob("*"))) or "none"
            raise RegistryError(f"{name}: no candidate {candidate!r} (candidates: {known})")
        return matches[0]

    def _shipped_sha(self, name: str) -> str:
        sha256: str = json.loads((MODELS_DIR / name / "manifest.json").read_text())["sha256"]
        return sha256

    def _record(self, name: str, event: dict[str, Any]) -> None:
        path = self.root / name / "history.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(event, sort_keys=True) + "\n")


def _check_sha(folder: Path, sha256: str) -> None:
    import hashlib

    got = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    if got != sha256:
        raise RegistryError(f"{folder}: model.onnx has sha256 {got[:12]}…, its manifest says {sha256[:12]}…")


def _write_json(path: Path, obj: Any) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
