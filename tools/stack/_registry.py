"""Apicurio Registry part of the local stack: distribution via Maven, config, process.

Files under ``settings.home / "apicurio"``: ``dist/<version>/`` (the unpacked "all"
tar.gz: ``quarkus-run.jar``, ``lib/``, ``app/``, ``quarkus/``), ``config/application.properties``
(Quarkus reads ``config/`` of the working directory), ``data/`` (H2 database), ``tmp/``.
"""
from __future__ import annotations

import shutil
import ssl
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from conveyor.streams.config.settings import Settings
from conveyor.tools.stack._common import (
    Layout,
    StackError,
    marker_args,
    pom_versions,
    port_open,
    read_marker,
    run_mvn,
    template,
    write_if_changed,
    write_marker,
)

JVM_OPTS = [
    "-Xms64m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
    "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
]
MARKER = ".conveyor-stack.json"
CCOMPAT = "/apis/ccompat/v7"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy


def _opener(settings: Settings) -> urllib.request.OpenerDirector:
    """No HTTP proxy; on the TLS stack, HTTPS verified against the stack's CA."""
    if not settings.stack_tls:
        return _OPENER
    from conveyor.tools.stack import _tls

    context = ssl.create_default_context(cafile=str(_tls.tls_dir(settings.home).ca_cert))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def layout(settings: Settings) -> Layout:
    """Pid and log file locations of the registry."""
    return Layout("registry", settings.home)


def apicurio_dir(settings: Settings) -> Path:
    """``settings.home / "apicurio"``: distribution, config, database of the registry."""
    return settings.home / "apicurio"


def url(settings: Settings) -> str:
    """The local registry's Confluent-compatible base URL (``https://`` on the TLS stack)."""
    scheme = "https" if settings.stack_tls else "http"
    return f"{scheme}://127.0.0.1:{settings.registry_port}{CCOMPAT}"


def tls_properties(settings: Settings) -> str:
    """Quarkus settings of the TLS stack's registry: HTTPS only on ``registry_port`` with the
    stack's server certificate (PEM files), plain HTTP not served."""
    from conveyor.tools.stack import _tls

    files = _tls.tls_dir(settings.home)
    return ("\n# TLS (conveyor stack up --tls): HTTPS only, certificate from the stack's private CA\n"
            f"quarkus.http.ssl-port={settings.registry_port}\n"
            f"quarkus.http.ssl.certificate.files={files.server_cert}\n"
            f"quarkus.http.ssl.certificate.key-files={files.server_key}\n"
            "quarkus.http.insecure-requests=disabled\n"
            "quarkus.http.port=0\n")


def ensure_dist(settings: Settings, log, version: Optional[str] = None) -> Path:
    """The unpacked Apicurio distribution, fetched with Maven and untarred unless present.

    Raises:
        StackError: Maven is missing or fails, or the archive lacks ``quarkus-run.jar``.
    """
    version = version or pom_versions()["apicurio.version"]
    dist = apicurio_dir(settings) / "dist" / version
    want = {"apicurio.version": version}
    if read_marker(dist / MARKER) == want and runner_jar(dist) is not None:
        return dist
    download = apicurio_dir(settings) / "download"
    shutil.rmtree(download, ignore_errors=True)
    log(f"stack: resolving Apicurio Registry {version} (~160 MB) into {dist}")
    run_mvn(["dependency:copy", f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
             f"-DoutputDirectory={download}"], log)
    archives = sorted(download.glob("*.tar.gz"))
    if not archives:
        raise StackError(f"mvn ran but no Apicurio tar.gz landed in {download}")
    tmp = dist.with_name(version + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archives[0]) as tar:
        tar.extractall(tmp, filter="data")
    if runner_jar(tmp) is None:
        raise StackError(f"{archives[0].name} has no quarkus-run.jar or *-runner.jar at its top level")
    shutil.rmtree(dist, ignore_errors=True)
    tmp.rename(dist)
    write_marker(dist / MARKER, want)
    shutil.rmtree(download, ignore_errors=True)
    return dist


def runner_jar(dist: Path) -> Optional[Path]:
    """The distribution's launcher: ``quarkus-run.jar`` (3.1+) or ``*-runner.jar`` (3.0.x)."""
    if (dist / "quarkus-run.jar").is_file():
        return dist / "quarkus-run.jar"
    return next(iter(sorted(dist.glob("*-runner.jar"))), None)


def min_java(dist: Path) -> int:
    """Oldest Java that runs ``dist``: read from the class file version of its app jar.

    Apicurio 3.3 is built for Java 21 (class file 65); falls back to 21 when unreadable.
    """
    for jar in sorted((dist / "app").glob("*.jar")) + sorted((dist / "lib").glob("io.apicurio.apicurio-registry-*.jar")):
        with zipfile.ZipFile(jar) as zf:
            for name in zf.namelist():
                if name.endswith(".class") and not name.endswith("module-info.class"):
                    header = zf.read(name)[:8]
                    if header[:4] == b"\xca\xfe\xba\xbe":
                        return int.from_bytes(header[6:8], "big") - 44
    return 21


def write_config(settings: Settings) -> Path:
    """Write ``config/application.properties``; return the working directory to start in."""
    adir = apicurio_dir(settings)
    for sub in ("data", "tmp"):
        (adir / sub).mkdir(parents=True, exist_ok=True)
    props = template(
        "apicurio.properties",
        registry_port=settings.registry_port,
        management_port=0,
        db_path=adir / "data" / "registry",
        tmp_dir=adir / "tmp",
    )
    if settings.stack_tls:
        props += tls_properties(settings)
    write_if_changed(adir / "config" / "application.properties", props)
    return adir


def command(settings: Settings, java: str, dist: Path) -> list[str]:
    """The registry's command line (``java -jar <runner jar>``)."""
    return [java, *JVM_OPTS, *marker_args(layout(settings)), "-jar", str(runner_jar(dist))]


def busy_ports(settings: Settings) -> list[int]:
    """Registry ports that something already listens on."""
    return [settings.registry_port] if port_open(settings.registry_port) else []


def answers(settings: Settings, timeout: float = 3.0) -> bool:
    """Whether ``GET <ccompat>/subjects`` on the local registry returns 200."""
    if not port_open(settings.registry_port):
        return False
    try:
        with _opener(settings).open(url(settings) + "/subjects", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
