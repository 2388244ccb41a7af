"""Read files of a local clone of a public repository, through git.

A clone may be an ordinary ``git clone`` (a work tree with ``.git/``), a bare repository, or a
folder holding one (``<owner>+<name>/repo``, as some mirrors lay them out). Files are read from
the clone's ``HEAD`` commit with ``git ls-tree`` / ``git cat-file``, so a bare clone works and the
commit every file came from is recorded. Blobs a partial clone lacks are reported as missing, not
fatal.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Clone", "CloneError", "find_clone", "labelled_files"]


class CloneError(RuntimeError):
    """A clone is absent or git cannot read it."""


def _git_dir(folder: Path) -> Path | None:
    """The git directory of ``folder`` (work tree, bare repository or ``folder/repo``), else None."""
    for candidate in (folder / ".git", folder, folder / "repo"):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def find_clone(roots: list[Path], repo: str) -> Clone | None:
    """The clone of ``repo`` (``"owner/name"``) under one of ``roots``, else None.

    Looked for, in each root: ``<name>``, ``<owner>+<name>``, ``<owner>/<name>``, ``<owner>__<name>``.
    """
    owner, name = repo.split("/", 1)
    for root in roots:
        for folder in (root / name, root / f"{owner}+{name}", root / owner / name, root / f"{owner}__{name}"):
            git_dir = _git_dir(folder)
            if git_dir is not None:
                return Clone(repo=repo, git_dir=git_dir)
    return None


@dataclass(frozen=True)
class Clone:
    """One local clone: ``repo`` is ``"owner/name"``, ``git_dir`` its git directory."""

    repo: str
    git_dir: Path

    def _git(self, *args: str) -> bytes:
        try:
            return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True,
                                  capture_output=True).stdout
        except FileNotFoundError as exc:  # pragma: no cover - git itself missing
            raise CloneError("git is not installed") from exc
        except subprocess.CalledProcessError as exc:
            raise CloneError(f"git {' '.join(args)} in {self.git_dir}: {exc.stderr.decode(errors='replace').strip()}") from exc

    @property
    def commit(self) -> str:
        """The 40-hex commit of ``HEAD``."""
        return self._git("rev-parse", "HEAD").decode().strip()

    def files(self, prefix: str) -> dict[str, str]:
        """``{path: blob id}`` of every file under ``prefix`` (a folder, no trailing slash) at ``HEAD``."""
        out = self._git("ls-tree", "-r", "-z", "HEAD", "--", prefix)
        files = {}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, path = entry.split(b"\t", 1)
            kind, blob = meta.split()[1:3]
            if kind == b"blob":
                files[path.decode()] = blob.decode()
        return files

    def read(self, blob: str) -> bytes | None:
        """The bytes of ``blob``, or None when this clone lacks it (a partial or size-limited copy)."""
        try:
            return self._git("cat-file", "blob", blob)
        except CloneError:
            return None


def labelled_files(clone: Clone, split: str, folder: str, suffix: str, labels: str) -> Iterator[tuple[str, bytes, str, bytes]]:
    """``(path, bytes, label path, label bytes)`` of every ``<split>/<folder>/<stem><suffix>`` whose
    ``<split>/<labels>/<stem>.json`` exists, in path order; a pair whose blob the clone lacks is skipped."""
    files = clone.files(split)
    for path, blob in sorted(files.items()):
        if not (path.startswith(f"{split}/{folder}/") and path.lower().endswith(suffix)):
            continue
        label_path = f"{split}/{labels}/{path.rsplit('/', 1)[1][:-len(suffix)]}.json"
        if label_path not in files:
            continue
        data, label = clone.read(blob), clone.read(files[label_path])
        if data is not None and label is not None:
            yield path, data, label_path, label
