"""TLS material for the sandbox: a local CA (kept across restarts) and a fresh server cert.

Files in the TLS directory: `ca.pem` (what clients trust), `ca-key.pem`, `server.pem`,
`server-key.pem`. The CA is reused when present so clients configured with it keep working;
the server certificate is reissued at every start (it is cheap) to cover the current host.
The certificates are made by trustme, the same test-CA library the tests' SMTP server uses.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DEFAULT_TLS_DIR = Path(".tenant-sync/sandbox-tls")
DEFAULT_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    directory: Path
    ca: Path
    ca_key: Path
    cert: Path
    key: Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_ca(files: TlsFiles) -> trustme.CA | None:
    """The CA in `files` if it is there, readable and valid for two more days, else None."""
    if not (files.ca.is_file() and files.ca_key.is_file()):
        return None
    try:
        cert_pem, key_pem = files.ca.read_bytes(), files.ca_key.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, OSError):
        return None
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=2):
        return None
    return trustme.CA.from_pem(cert_pem, key_pem)


def _new_ca(files: TlsFiles) -> trustme.CA:
    ca = trustme.CA(organization_name="tenant-sync sandbox", organization_unit_name="local CA")
    write_atomic(files.ca_key, ca.private_key_pem.bytes(), 0o600)
    write_atomic(files.ca, ca.cert_pem.bytes())
    return ca


def ensure_tls(tls_dir: Path, extra_names: tuple[str, ...] = ()) -> TlsFiles:
    """Create or reuse the CA in `tls_dir` and issue a server certificate for loopback."""
    directory = tls_dir.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        directory,
        directory / "ca.pem",
        directory / "ca-key.pem",
        directory / "server.pem",
        directory / "server-key.pem",
    )
    # Two sandboxes starting on one directory must not each mint a CA.
    with open(directory / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ca = _load_ca(files) or _new_ca(files)
            names = DEFAULT_NAMES + tuple(
                n
                for n in extra_names
                if n and n not in ("0.0.0.0", "::")  # noqa: S104 - wildcards are not names
            )
            now = dt.datetime.now(dt.UTC)
            server = ca.issue_cert(
                *dict.fromkeys(names),
                common_name="tenant-sync sandbox",
                organization_name="tenant-sync sandbox",
                organization_unit_name="server",
                not_before=now - dt.timedelta(hours=1),
                not_after=now + dt.timedelta(days=365),
            )
            write_atomic(files.key, server.private_key_pem.bytes(), 0o600)
            write_atomic(files.cert, b"".join(pem.bytes() for pem in server.cert_chain_pems))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return files
