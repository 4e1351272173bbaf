"""App-only tokens for Microsoft Graph through MSAL (client secret or certificate).

MSAL caches the token and renews it before it expires. The authority may be Entra itself or any
compatible endpoint (the sandbox): instance discovery is off and the HTTP session trusts the
configured CA bundle only, never a CA bundle leaking in from the environment.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from worker.domain.errors import StopSync, Transient

GRAPH_HOSTS = {
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
}
PUBLIC_GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def graph_scope(graph_url: str) -> str:
    """National clouds have their own Graph resource; anything else stands in for public Graph."""
    host = graph_url.split("://", 1)[-1].split("/", 1)[0].lower()
    return f"https://{host}/.default" if host in GRAPH_HOSTS else PUBLIC_GRAPH_SCOPE


def certificate_credential(path: Path) -> dict[str, str]:
    """MSAL's certificate credential from one PEM file holding the certificate and private key."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise StopSync(f"cannot read certificate_path {path}: {exc.strerror}") from exc
    try:
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise StopSync(
            f"certificate_path {path} must be a PEM file with the certificate and an "
            f"unencrypted private key: {exc}"
        ) from exc
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "private_key": private_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


class MsalTokenProvider:
    """Bearer tokens for one tenant's app registration."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        authority_host: str,
        graph_url: str,
        client_secret: str | None = None,
        certificate_path: Path | None = None,
        ca_bundle: Path | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.scope = graph_scope(graph_url)
        self._credential: Any = (
            client_secret if client_secret else certificate_credential(certificate_path or Path())
        )
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
        session.verify = str(ca_bundle) if ca_bundle else True
        self._session = session
        self._timeout_s = timeout_s
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._credential,
                    authority=self.authority,
                    instance_discovery=False,
                    http_client=self._session,
                    timeout=self._timeout_s,
                )
            except requests.RequestException as exc:
                raise Transient(f"cannot reach the authority {self.authority}: {exc}") from exc
            except ValueError as exc:
                raise StopSync(f"the authority {self.authority} is not usable: {exc}") from exc
        return self._app

    def token(self) -> str:
        with self._lock:
            try:
                result = self._application().acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise Transient(f"cannot reach the token endpoint: {exc}") from exc
            except ValueError as exc:  # an answer MSAL cannot read (a proxy's page, say)
                raise Transient(f"the token endpoint's answer is unreadable: {exc}") from exc
        if "access_token" in result:
            return str(result["access_token"])
        error = str(result.get("error", "unknown_error"))
        description = str(result.get("error_description", "")).split("\r\n")[0]
        if error in ("temporarily_unavailable", "server_error"):
            raise Transient(f"token endpoint: {error}: {description}", code=error)
        raise StopSync(
            f"tenant {self.tenant_id}: the app {self.client_id} could not sign in: "
            f"{error}: {description}",
            code=error,
        )
