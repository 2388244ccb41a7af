"""Shared helpers of the local stack: file layout, tool checks, Maven, detached processes.

Nothing here knows about Kafka or Apicurio specifically; :mod:`conveyor.tools.stack._kafka`
and :mod:`conveyor.tools.stack._registry` build on it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from conveyor.streams.config import env

PACKAGE_DIR = Path(__file__).resolve().parent
POM = PACKAGE_DIR / "pom.xml"
MVN_TIMEOUT_S = 1800.0
"""Maven may download ~200 MB on a first run; that does not count against ``up``'s timeout."""


class StackError(Exception):
    """The local stack cannot be set up, started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Layout:
    """Where one component keeps its files under ``settings.home``."""

    name: str
    home: Path

    @property
    def pid_file(self) -> Path:
        """``home/run/<name>.pid``: the pid ``up`` started, one line."""
        return self.home / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """``home/logs/<name>.log``: the process's stdout and stderr."""
        return self.home / "logs" / f"{self.name}.log"


def template(name: str, **values: object) -> str:
    """The packaged template ``name`` with ``{key}`` placeholders filled from ``values``."""
    return (PACKAGE_DIR / name).read_text(encoding="utf-8").format(**values)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600) from the first byte (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (creating parents) unless it already holds exactly that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def java_major(java: str) -> Optional[int]:
    """Feature version (17, 21, ...) of the ``java`` executable at ``java``, or ``None``."""
    return _java_major(os.path.realpath(java))


@functools.cache
def _java_major(java: str) -> Optional[int]:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major  # "1.8" style


def _java_candidates() -> list[str]:
    """``$JAVA_HOME/bin/java``, ``java`` on PATH, then JDKs installed in the usual places."""
    java_home = os.environ.get(env.JAVA_HOME)
    found = [os.path.join(java_home, "bin", "java")] if java_home else []
    found.append(shutil.which("java") or "")
    for pattern in ("/usr/lib/jvm/*/bin/java", "/Library/Java/JavaVirtualMachines/*/Contents/Home/bin/java"):
        found.extend(sorted(glob.glob(pattern)))
    out: list[str] = []
    for java in found:
        if java and os.access(java, os.X_OK) and os.path.realpath(java) not in map(os.path.realpath, out):
            out.append(java)
    return out


def check_java(minimum: int = 17, needed_by: str = "the local stack") -> str:
    """Path of the first ``java`` of version ``minimum`` or later.

    Looks at ``$JAVA_HOME``, then PATH, then ``/usr/lib/jvm/*`` (and macOS's JDK folder),
    so a second, newer JDK installed beside the default one is found.

    Raises:
        StackError: no such Java; the message says which versions were found and what to install.
    """
    candidates = _java_candidates()
    for java in candidates:
        major = java_major(java)
        if major is not None and major >= minimum:
            return java
    hint = f"install a JDK (e.g. apt-get install openjdk-{minimum}-jdk-headless) or point JAVA_HOME at one"
    if not candidates:
        raise StackError(f"Java {minimum}+ not found on PATH: {hint}")
    seen = ", ".join(f"{j} (Java {java_major(j)})" for j in candidates)
    raise StackError(f"{needed_by} needs Java {minimum}+, found only {seen}: {hint}")


def check_mvn() -> str:
    """Path of ``mvn`` on PATH.

    Raises:
        StackError: Maven is not installed.
    """
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Maven (mvn) not found on PATH: install it (e.g. apt-get install maven); "
            "it fetches Kafka and Apicurio Registry from Maven Central on the first `up`"
        )
    return mvn


def pom_versions() -> dict[str, str]:
    """The ``<properties>`` of the packaged pom whose names end in ``.version``."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(POM).getroot().find("m:properties", ns)
    out = {}
    for el in list(props) if props is not None else []:
        name = el.tag.split("}", 1)[-1]
        if name.endswith(".version"):
            out[name] = (el.text or "").strip()
    return out


def run_mvn(args: Sequence[str], log) -> None:
    """Run ``mvn -B -q -f <packaged pom> ARGS``.

    Raises:
        StackError: Maven is missing, fails (message carries its last output lines) or hangs.
    """
    cmd = [check_mvn(), "-B", "-q", "-f", str(POM), *args]
    log(f"stack: mvn {' '.join(args[:1])} ...")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"mvn did not finish within {MVN_TIMEOUT_S:.0f} s: {' '.join(cmd)}") from exc
    if out.returncode != 0:
        lines = (out.stdout + out.stderr).strip().splitlines()[-25:]
        raise StackError(f"mvn failed (exit {out.returncode}): {' '.join(cmd)}\n" + "\n".join(lines))


def read_marker(path: Path) -> Optional[dict]:
    """The JSON in marker file ``path``, or ``None`` when missing/unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_marker(path: Path, data: dict) -> None:
    """Record ``data`` (what was resolved) as JSON in ``path``."""
    write_if_changed(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``home/stack.lock`` so concurrent ``up``/``down`` calls take turns."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "stack.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> Optional[str]:
    """Command line of live, non-zombie process ``pid`` (NUL-separated args joined by spaces)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if ") Z" in (proc / "stat").read_text():
                return None
            return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    out = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True)
    line = out.stdout.strip()
    if out.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split(None, 1)[-1]


def marker_args(layout: Layout) -> list[str]:
    """JVM system properties that tag a process as this home's ``layout.name`` component."""
    return [f"-Dconveyor.component={layout.name}", f"-Dconveyor.home={layout.home}"]


def live_pid(layout: Layout) -> Optional[int]:
    """Pid from ``layout``'s pid file when that process is alive and is the one ``up`` started.

    A stale pid file (process gone, or the pid reused by something else) is removed.
    """
    try:
        pid = int(layout.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    cmd = _cmdline(pid)
    if cmd and all(arg in cmd for arg in marker_args(layout)):
        return pid
    with contextlib.suppress(OSError):
        layout.pid_file.unlink()
    return None


_CHILDREN: dict[int, subprocess.Popen] = {}
"""Processes started by this Python process, kept so they can be reaped (no zombies)."""


def spawn(layout: Layout, argv: Sequence[str], cwd: Path) -> int:
    """Start ``argv`` detached (own session) with output to ``layout.log_file``; write the pid file.

    The previous log is kept as ``<name>.log.1``. Returns the pid.
    """
    layout.log_file.parent.mkdir(parents=True, exist_ok=True)
    layout.pid_file.parent.mkdir(parents=True, exist_ok=True)
    if layout.log_file.exists():
        layout.log_file.replace(layout.log_file.with_name(layout.log_file.name + ".1"))
    with open(layout.log_file, "ab") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    write_if_changed(layout.pid_file, f"{proc.pid}\n")
    return proc.pid


def _gone(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        _CHILDREN.pop(pid, None)
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.ESRCH
    return _cmdline(pid) is None  # zombie of another parent


def stop(layout: Layout, timeout: float) -> dict:
    """SIGTERM the process of ``layout``'s pid file, SIGKILL it after ``timeout`` seconds.

    Only a pid that :func:`live_pid` recognises is signalled. Returns
    ``{"stopped": bool, "pid": int|None, "forced": bool}``; removes the pid file.
    """
    pid = live_pid(layout)
    result = {"stopped": False, "pid": pid, "forced": False}
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            result["forced"] = True
            deadline = time.monotonic() + 10
            while not _gone(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        result["stopped"] = True
    with contextlib.suppress(OSError):
        layout.pid_file.unlink()
    return result


def exited(pid: int) -> bool:
    """Whether ``pid`` (started by :func:`spawn`) has exited."""
    return _gone(pid)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of text file ``path`` ("" when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def failure(what: str, layout: Layout, why: str) -> StackError:
    """A :class:`StackError` for ``what`` that names the log file and quotes its last lines."""
    return StackError(
        f"{what} {why}; see {layout.log_file}, last lines:\n{tail(layout.log_file) or '(empty)'}"
    )

