"""Building the container image (``make image``): ``python -m conveyor.tools.image``.

1. The wheel of this checkout and every runtime dependency as wheels into
   ``build/wheelhouse`` (``pip wheel``: pip's cache, nothing compiled), so the image build
   itself needs no network.
2. A base image: ``--base`` if given (e.g. ``python:3.11-slim-bookworm`` where a registry is
   reachable); otherwise a Debian bookworm root file system with ``python3`` (3.11) made by
   ``debootstrap`` from the machine's Debian mirror and imported as
   ``localhost/conveyor-base:bookworm`` (built once; ``--rebuild-base`` again).
3. ``podman build`` of the multi-stage ``Dockerfile`` (or ``docker build`` where that is
   the engine).

Prints one JSON line: image, base, size in bytes, seconds per step.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = REPO / "build" / "wheelhouse"
DEFAULT_IMAGE = "localhost/conveyor:0.1.0"
DEBIAN_BASE = "localhost/conveyor-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
"""How podman runs on a host without systemd (this project's CI machines)."""
RUN_FLAGS = ["--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
"""``podman run`` flags on such a host: the host's network, and limits the sandbox allows."""


class ImageError(RuntimeError):
    """A build step failed (the message holds the tail of its output)."""


def _run(cmd: list[str], *, timeout: float = 1800, cwd: Path = REPO) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise ImageError(f"{' '.join(cmd[:4])} … failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout


def engine() -> list[str]:
    """``podman`` (with the runtime flags this host needs), else ``docker``.

    Raises:
        ImageError: neither is installed.
    """
    if shutil.which("podman"):
        return PODMAN
    if shutil.which("docker"):
        return ["docker"]
    raise ImageError("neither podman nor docker is installed (apt-get install podman runc debootstrap)")


def wheelhouse() -> Path:
    """Build this checkout's wheel and its runtime dependencies into :data:`WHEELHOUSE`."""
    if WHEELHOUSE.exists():
        shutil.rmtree(WHEELHOUSE)
    WHEELHOUSE.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(WHEELHOUSE), str(REPO)])
    [wheel] = WHEELHOUSE.glob("conveyor-*.whl")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE), str(wheel)])
    # rapidocr needs opencv-python, whose cv2 links X11 libraries a server image lacks; the image
    # swaps in the headless build of the same version (same cv2 API, no GUI).
    for cv in WHEELHOUSE.glob("opencv_python-*.whl"):
        version = cv.name.split("-")[1]
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(WHEELHOUSE),
              f"opencv-python-headless=={version}"])
    return WHEELHOUSE


def image_exists(cmd: list[str], name: str) -> bool:
    """Whether the engine has an image called ``name``."""
    return subprocess.run([*cmd, "image", "exists" if cmd[0] == "podman" else "inspect", name],
                          capture_output=True).returncode == 0


def debian_base(cmd: list[str], *, rebuild: bool = False) -> str:
    """:data:`DEBIAN_BASE`: Debian bookworm minbase with python3, python3-venv and CA certificates.

    Raises:
        ImageError: debootstrap is missing or failed.
    """
    if image_exists(cmd, DEBIAN_BASE) and not rebuild:
        return DEBIAN_BASE
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is needed to make the Debian base image (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
        root = Path(tmp) / "rootfs"
        _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
              str(root), DEBIAN_MIRROR])
        _run(["rm", "-rf", *[str(p) for p in (root / "var/cache/apt/archives").glob("*.deb")],
              str(root / "var/lib/apt/lists")])
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run([*cmd, "import", "-", DEBIAN_BASE], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0:
            raise ImageError(f"importing the base failed: {imp.stderr[-2000:]}")
    return DEBIAN_BASE


def build(image: str = DEFAULT_IMAGE, base: str | None = None, *, rebuild_base: bool = False) -> dict:
    """Build ``image``; return the report (see the module docstring).

    Raises:
        ImageError: a step failed.
    """
    cmd = engine()
    times = {}
    t = time.monotonic()
    wheelhouse()
    times["wheelhouse_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    base = base or debian_base(cmd, rebuild=rebuild_base)
    times["base_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    _run([*cmd, "build", "--network", "none" if cmd[0] == "podman" else "default", "--build-arg", f"BASE={base}",
          "-t", image, "-f", "Dockerfile", "."])
    times["build_s"] = round(time.monotonic() - t, 1)
    size = int(_run([*cmd, "image", "inspect", "--format", "{{.Size}}", image]).strip())
    return {"image": image, "base": base, "size_bytes": size, "size_mib": round(size / 2**20), **times}


def main(argv: list[str] | None = None) -> int:
    """``python -m conveyor.tools.image [--image NAME] [--base IMAGE] [--rebuild-base]``."""
    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.image", description="build the container image")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--base", default=None, help="base image (default: a Debian bookworm base made with debootstrap)")
    ap.add_argument("--rebuild-base", action="store_true")
    args = ap.parse_args(argv)
    try:
        print(json.dumps(build(args.image, args.base, rebuild_base=args.rebuild_base)))
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
