"""A private certificate authority for the local stack, made with the ``openssl`` command line.

``conveyor stack up --tls`` calls :func:`ensure` once per ``up``: it makes the CA the first time
and a server certificate signed by it, and reissues the server certificate when it is missing,
expires within a day, or does not name the stack's hosts. Files under ``settings.home / "tls"``:

* ``ca.crt`` / ``ca.key`` — the CA (RSA 2048, 10 years, ``basicConstraints=CA:true``); clients
  trust ``ca.crt`` (``CONVEYOR_KAFKA_SSL_CA_LOCATION``, ``CONVEYOR_SCHEMA_REGISTRY_SSL_CA_LOCATION``);
* ``server.crt`` / ``server.key`` — the Kafka nodes' and the registry's certificate (RSA 2048,
  PKCS#8 key, ``subjectAltName`` ``IP:127.0.0.1, DNS:localhost``, ``extendedKeyUsage=serverAuth``);
* ``server.pem`` — key and certificate chain in one file, Kafka's PEM keystore (KIP-651);
* ``credentials.json`` — the SASL/PLAIN passwords of the broker's users (``admin``, ``conveyor``);
* ``client.env`` — ``CONVEYOR_*`` lines that point a client at the TLS stack.

Private keys and secrets are written with mode 0600.

:func:`issue` also makes the certificates the tests use to show each failure: one signed by
another CA, one that expires a minute after it is made, one for another host name.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from conveyor.tools.stack._common import StackError, write_private

HOSTS = ("IP:127.0.0.1", "DNS:localhost")
"""``subjectAltName`` entries of the stack's server certificate: the addresses clients use."""
CA_DAYS = 3650
SERVER_DAYS = 825
"""Validity of a server certificate; the CA/Browser Forum's former maximum for TLS server certificates."""
RENEW_BEFORE = dt.timedelta(days=1)
CLIENT_USER = "conveyor"
"""The SASL user clients of the TLS stack authenticate as (``admin`` is the brokers' own)."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the stack's CA and server certificate live (all under ``directory``)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def keystore(self) -> Path:
        """Kafka's PEM keystore: the PKCS#8 key, then the certificate."""
        return self.directory / "server.pem"

    @property
    def credentials(self) -> Path:
        return self.directory / "credentials.json"

    @property
    def client_env(self) -> Path:
        return self.directory / "client.env"


def tls_dir(home: Path) -> TlsFiles:
    """The stack's TLS files under ``home / "tls"``."""
    return TlsFiles(home / "tls")


def openssl(args: Sequence[str], cwd: Optional[Path] = None) -> str:
    """Run ``openssl *args``; return its stdout.

    Raises:
        StackError: ``openssl`` is not installed or exits non-zero (its stderr is quoted).
    """
    try:
        out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise StackError("the TLS stack needs the openssl command (Debian package openssl)") from exc
    if out.returncode != 0:
        raise StackError(f"openssl {args[0]} failed (exit {out.returncode}): {out.stderr.strip()[-1500:]}")
    return out.stdout


def _private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (or make it 0600), so that openssl, which truncates
    and keeps the mode, writes a private key nobody else could read at any moment."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_ca(directory: Path, name: str = "Conveyor local CA", days: int = CA_DAYS) -> tuple[Path, Path]:
    """A self-signed CA in ``directory``: ``ca.crt`` and ``ca.key`` (0600).

    Returns:
        ``(ca.crt, ca.key)``.

    Raises:
        StackError: openssl failed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "ca.key"
    _private(key)
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", str(days), "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:true",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return cert, key


def issue(ca_cert: Path, ca_key: Path, out_dir: Path, stem: str = "server", *,
          hosts: Sequence[str] = HOSTS, days: int = SERVER_DAYS,
          expires: Optional[dt.datetime] = None) -> tuple[Path, Path]:
    """A server certificate signed by the CA: ``<stem>.crt`` and ``<stem>.key`` (PKCS#8, 0600),
    and ``<stem>.pem`` (key + certificate, Kafka's PEM keystore).

    Args:
        hosts: ``subjectAltName`` entries (``IP:…``/``DNS:…``); the first one's value is the CN.
        days: validity from now.
        expires: an exact expiry (UTC) instead of ``days``, e.g. a minute from now, for a
            certificate that expires while a server uses it (``openssl ca -enddate``; Kafka
            refuses to start with one that has already expired).

    Returns:
        ``(<stem>.crt, <stem>.key)``.

    Raises:
        StackError: openssl failed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cert, key, pem = out_dir / f"{stem}.crt", out_dir / f"{stem}.key", out_dir / f"{stem}.pem"
    _private(key)
    openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)])
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        ext.write_text(f"subjectAltName={','.join(hosts)}\nextendedKeyUsage=serverAuth\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n", encoding="utf-8")
        openssl(["req", "-new", "-key", str(key), "-subj", f"/CN={hosts[0].split(':', 1)[1]}", "-out", str(csr)])
        if expires is None:
            openssl(["x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                     "-set_serial", str(secrets.randbits(63)), "-days", str(days), "-extfile", str(ext),
                     "-out", str(cert)])
        else:
            _sign_until(Path(tmp), csr, ext, ca_cert, ca_key, cert, expires)
    write_private(pem, key.read_text(encoding="utf-8") + cert.read_text(encoding="utf-8"))
    return cert, key


def _sign_until(tmp: Path, csr: Path, ext: Path, ca_cert: Path, ca_key: Path, cert: Path,
                expires: dt.datetime) -> None:
    """Sign ``csr`` valid from an hour ago until ``expires`` with ``openssl ca`` (the only
    openssl 3.0 command that takes exact dates), using a throwaway CA database in ``tmp``."""
    (tmp / "index.txt").write_text("", encoding="utf-8")
    (tmp / "serial").write_text(f"{secrets.randbits(63):016X}\n", encoding="utf-8")
    (tmp / "ca.cnf").write_text(
        "[ca]\ndefault_ca = local\n[local]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n", encoding="utf-8")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    openssl(["ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", str(ca_cert), "-keyfile", str(ca_key),
             "-in", str(csr), "-out", str(cert), "-extfile", str(ext),
             "-startdate", f"{start:%Y%m%d%H%M%SZ}", "-enddate", f"{expires.astimezone(dt.UTC):%Y%m%d%H%M%SZ}"],
            cwd=tmp)


def not_after(cert: Path) -> dt.datetime:
    """The certificate's expiry (UTC).

    Raises:
        StackError: openssl cannot read it.
    """
    text = openssl(["x509", "-in", str(cert), "-noout", "-enddate"]).strip()  # notAfter=Dec  5 21:00:05 2026 GMT
    return dt.datetime.strptime(text.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)


def _names(cert: Path) -> str:
    return openssl(["x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"])


def subject_alt_names(cert: Path) -> set[str]:
    """The certificate's ``subjectAltName`` entries as ``{"IP:127.0.0.1", "DNS:localhost", ...}``.

    Raises:
        StackError: openssl cannot read it.
    """
    text = _names(cert).replace("IP Address:", "IP:")
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    return {name.strip() for line in lines for name in line.split(",")}


def _needs_new(files: TlsFiles) -> bool:
    """Whether the server certificate must be (re)issued: a file is missing or unreadable, it is
    not signed by the current CA, it does not name exactly :data:`HOSTS`, or it expires within
    :data:`RENEW_BEFORE`."""
    if not all(p.exists() for p in (files.server_cert, files.server_key, files.keystore)):
        return True
    try:
        openssl(["verify", "-CAfile", str(files.ca_cert), str(files.server_cert)])
        if subject_alt_names(files.server_cert) != set(HOSTS):
            return True
        return not_after(files.server_cert) - dt.datetime.now(dt.UTC) < RENEW_BEFORE
    except StackError:  # unreadable, expired, or signed by another CA
        return True


def credentials(files: TlsFiles) -> dict[str, str]:
    """The SASL/PLAIN passwords ``{"admin": ..., "conveyor": ...}``, made (random) once.

    Raises:
        StackError: ``credentials.json`` exists but is not such a JSON object.
    """
    if files.credentials.exists():
        try:
            creds = json.loads(files.credentials.read_text(encoding="utf-8"))
            if all(isinstance(creds.get(n), str) and creds[n] for n in ("admin", CLIENT_USER)):
                return creds
        except (ValueError, AttributeError):
            pass
        raise StackError(f"{files.credentials} is not a JSON object with the passwords of 'admin' and "
                         f"'{CLIENT_USER}'; delete it (and restart the stack) to make new ones")
    creds = {"admin": secrets.token_hex(16), CLIENT_USER: secrets.token_hex(16)}
    write_private(files.credentials, json.dumps(creds))
    return creds


def ensure(home: Path, log=print) -> TlsFiles:
    """The stack's CA, server certificate and SASL credentials, made or renewed as needed.

    Raises:
        StackError: openssl is missing or failed.
    """
    files = tls_dir(home)
    new_ca = not (files.ca_cert.exists() and files.ca_key.exists())
    if new_ca:
        log(f"stack: making a private CA in {files.directory}")
        make_ca(files.directory)
    if new_ca or _needs_new(files):
        issue(files.ca_cert, files.ca_key, files.directory)
        log(f"stack: issued a server certificate for {', '.join(HOSTS)} "
            f"(valid until {not_after(files.server_cert):%Y-%m-%d})")
    credentials(files)
    return files


def client_environ(settings) -> dict[str, str]:
    """``CONVEYOR_*`` settings of a client of the TLS stack ``settings`` describes: its home and
    ports, SASL_SSL with PLAIN as ``conveyor``, the CA for Kafka and the HTTPS registry."""
    from conveyor.streams.config import env
    from conveyor.tools.stack import _kafka, _registry

    files = tls_dir(settings.home)
    return {env.HOME: str(settings.home), env.KAFKA_PORT: str(settings.kafka_port),
            env.REGISTRY_PORT: str(settings.registry_port), env.KAFKA_BROKERS: str(settings.kafka_brokers),
            env.STACK_TLS: "1", env.BOOTSTRAP_SERVERS: _kafka.address(settings),
            env.KAFKA_SECURITY_PROTOCOL: "SASL_SSL", env.KAFKA_SASL_MECHANISM: "PLAIN",
            env.KAFKA_SASL_USERNAME: CLIENT_USER, env.KAFKA_SASL_PASSWORD: credentials(files)[CLIENT_USER],
            env.KAFKA_SSL_CA_LOCATION: str(files.ca_cert),
            env.SCHEMA_REGISTRY_URL: _registry.url(settings), env.SCHEMA_REGISTRY_SSL_CA_LOCATION: str(files.ca_cert)}


def write_client_env(settings) -> Path:
    """Write :func:`client_environ` to ``tls/client.env`` (0600; ``set -a; . client.env`` loads it)."""
    files = tls_dir(settings.home)
    lines = [f"{k}={shlex.quote(v)}" for k, v in client_environ(settings).items()]
    write_private(files.client_env, "# clients of the local TLS stack: set -a; . this file; set +a\n"
                  + "\n".join(lines) + "\n")
    return files.client_env
