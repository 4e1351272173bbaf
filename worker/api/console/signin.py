"""Console sign-in with Entra ID: the authorization-code flow with PKCE, through MSAL.

MSAL builds the authorize URL (state, nonce, PKCE challenge) and later redeems the code,
checking the state and the ID token's nonce. The access token it returns, issued for the API's
own audience (`{api.auth.audience}/.default`), is then checked by the same Authenticator as a
bearer token, so a console user has exactly the roles their token would give them on the API.
As in the workers' token provider, instance discovery is off and the HTTP session trusts the
tenant's `ca_bundle` only, so the sandbox can stand in for Entra.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import msal
import requests

from worker.config import ApiAuthConfig, TenantConfig

TIMEOUT_S = 15.0


class SignInFailed(Exception):
    """The authority refused or could not be reached; the message is safe to show."""


class EntraSignIn:
    def __init__(self, auth: ApiAuthConfig, tenant: TenantConfig) -> None:
        assert auth.client_id is not None
        assert auth.audience is not None
        self.client_id = auth.client_id
        self.secret = auth.client_secret.get_secret_value() if auth.client_secret else None
        self.authority = f"{tenant.authority_host.rstrip('/')}/{tenant.tenant_id}"
        self.scopes = [f"{auth.audience.rstrip('/')}/.default"]
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
        session.verify = str(tenant.ca_bundle) if tenant.ca_bundle else True
        self._session = session
        self._app: msal.ClientApplication | None = None
        self._lock = threading.Lock()

    def _application(self) -> msal.ClientApplication:
        with self._lock:
            if self._app is None:
                options: dict[str, Any] = {
                    "authority": self.authority,
                    "instance_discovery": False,
                    "http_client": self._session,
                    "timeout": TIMEOUT_S,
                }
                try:
                    # A registration without a secret is a public client: PKCE alone protects
                    # the code (Entra then wants the redirect URI on a "Mobile and desktop"
                    # platform).
                    self._app = (
                        msal.ConfidentialClientApplication(
                            self.client_id, client_credential=self.secret, **options
                        )
                        if self.secret
                        else msal.PublicClientApplication(self.client_id, **options)
                    )
                except requests.RequestException as exc:
                    raise SignInFailed(
                        f"cannot reach the sign-in authority {self.authority}: "
                        f"{exc.__class__.__name__}"
                    ) from None
                except ValueError as exc:
                    raise SignInFailed(
                        f"the sign-in authority {self.authority} is not usable: {exc}"
                    ) from None
            return self._app

    def begin(self, redirect_uri: str) -> dict[str, Any]:
        """A new flow: MSAL's dict with `auth_uri` (where to send the browser), the state, the
        nonce and the PKCE verifier, to keep server-side until the callback."""
        application = self._application()
        with warnings.catch_warnings():
            # MSAL suggests form_post. The code comes back in the query instead: form_post is a
            # cross-site POST, which would not carry the SameSite=Lax cookie that finds this
            # flow again; the code is single-use and bound to the PKCE verifier, the callback
            # answers with a redirect, and the query string is never logged.
            warnings.filterwarnings("ignore", message=".*form_post", category=UserWarning)
            flow: dict[str, Any] = application.initiate_auth_code_flow(
                self.scopes, redirect_uri=redirect_uri, response_mode="query"
            )
        return flow

    def complete(self, flow: dict[str, Any], answer: dict[str, str]) -> str:
        """Redeem the authorization code of `answer` (the callback's query); the access token."""
        try:
            result = self._application().acquire_token_by_auth_code_flow(
                flow, answer, scopes=self.scopes
            )
        except ValueError:
            # MSAL's refusal of a state that does not match the flow it started.
            raise SignInFailed(
                "the sign-in answer does not belong to this sign-in (state mismatch): start again"
            ) from None
        except requests.RequestException as exc:
            raise SignInFailed(
                f"cannot reach the sign-in authority {self.authority}: {exc.__class__.__name__}"
            ) from None
        token = result.get("access_token")
        if token:
            return str(token)
        error = str(result.get("error", "unknown_error"))
        # The first line only: Entra appends trace and correlation ids.
        description = str(result.get("error_description", "")).split("\r\n")[0].split("\n")[0]
        raise SignInFailed(f"{error}: {description}" if description else error)
