"""How a client proves itself at the token endpoint: a secret, a certificate, or nothing (public).

A client assertion is a JWT the client signs with its certificate's key (RS256 or PS256, as MSAL
sends; ES256 too); it is verified with PyJWT against the certificates the seed lists, picked by
the assertion's `x5t` / `x5t#S256` header. The result is the `azpacr` / `appidacr` value of the
tokens: "0" public client, "1" secret, "2" certificate.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.responses import JSONResponse

from .claims import CERTIFICATE, PUBLIC, SECRET
from .entra import oauth_error
from .signing import b64url
from .state import Client

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_S = 300
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


def _thumbprints(cert: x509.Certificate) -> set[str]:
    return {
        b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - x5t is SHA-1 by spec
        b64url(cert.fingerprint(hashes.SHA256())),
    }


def _signature_checked(assertion: str, cert: x509.Certificate) -> dict[str, Any] | None:
    """The assertion's claims if this certificate's key signed it; the claims are checked later,
    one by one, so that each problem gets Entra's own error code."""
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            cert.public_key(),  # type: ignore[arg-type]
            algorithms=ASSERTION_ALGORITHMS,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError:
        return None
    return claims


def _key_not_found(thumbprint: str, more: str = "") -> JSONResponse:
    return oauth_error(
        400,
        "invalid_client",
        700027,
        "Client assertion failed signature validation. [Reason - The key was not found., "
        f"Thumbprint of key used by client: '{thumbprint}'.]{more}",
    )


def check_assertion(client: Client, assertion: str, audiences: set[str]) -> JSONResponse | None:
    if not client.certificates:
        return _key_not_found(
            "unknown",
            f" The application '{client.client_id}' has no certificate credentials in the "
            "sandbox seed.",
        )
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        return oauth_error(
            400, "invalid_request", 50027, f"JWT token is invalid or malformed: {exc}."
        )
    # MSAL pads its x5t with "=", the RFC does not: compare without padding.
    wanted = {str(header[k]).rstrip("=") for k in ("x5t", "x5t#S256") if k in header}
    certs = [c for c in client.certificates if not wanted or wanted & _thumbprints(c)]
    if not certs:
        return _key_not_found(", ".join(sorted(wanted)))
    claims = next(
        (found for c in certs if (found := _signature_checked(assertion, c)) is not None), None
    )
    if claims is None:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature "
            "value did not match the expected signature value.]",
        )
    if claims.get("aud") not in audiences:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion audience claim does not match Realm issuer. Review the "
            "documentation at https://aka.ms/certCredentials. Expected one of "
            f"{sorted(audiences)}.",
        )
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        return oauth_error(
            400,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    now = time.time()
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if (
        not isinstance(exp, int | float)
        or exp <= now
        or (isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_S)
    ):
        return oauth_error(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )
    return None


def authenticate_client(
    client: Client, form: dict[str, str], secret: str | None, audiences: set[str]
) -> str | JSONResponse:
    """The client's `azpacr` ("0", "1" or "2") once it has proved itself, or Entra's error."""
    assertion = form.get("client_assertion")
    if client.public:
        if assertion or secret:
            return oauth_error(
                400,
                "invalid_request",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be "
                "presented.",
            )
        return PUBLIC
    if assertion:
        if form.get("client_assertion_type") != JWT_BEARER:
            return oauth_error(
                400, "invalid_request", 50027, f"client_assertion_type must be '{JWT_BEARER}'."
            )
        problem = check_assertion(client, assertion, audiences)
        return problem if problem is not None else CERTIFICATE
    if secret:
        if client.secret is None or not hmac.compare_digest(
            client.secret.encode("utf-8"), secret.encode("utf-8")
        ):
            return oauth_error(
                400,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client.client_id}'.",
            )
        return SECRET
    return oauth_error(
        400,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )
