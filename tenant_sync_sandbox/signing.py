"""The sandbox's token-signing keys: RS256 JWTs through PyJWT, published as a JWKS.

One RSA key per process, shared by every tenant. Entra does the same (one set of signing keys
for all tenants; `iss` and `tid`, not the key, tell tenants apart), so a validator that trusts
the key but forgets to check the issuer is caught here as it would be there; and a 2048-bit key
per tenant would slow down the start of seeds with many tenants. Keys live only in memory:
tokens of an earlier run never verify. Each key comes with a self-signed certificate so its JWK
carries `x5c` and `x5t`, and its `kid` is that thumbprint, as in Entra's JWKS.

`rotate()` makes a new key the signing key and keeps the previous one published (Entra's key
roll-over), so clients can rehearse refreshing their JWKS cache on an unknown `kid`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
KEEP_KEYS = 2  # the signing key and the one before it
VERIFIED_CACHE = 1024  # tokens whose verified claims are kept (a client reuses one for an hour)
clock = time.time  # the expiry clock of remembered tokens (tests replace it)


class TokenInvalid(ValueError):
    """A token failed validation; the message is safe to show (it never holds the token)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    jwk: dict[str, Any]  # the public key as Entra publishes it (without the per-tenant issuer)


def new_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenant-sync sandbox token signing")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    x5t = b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by RFC 7517
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk = {
        "kty": "RSA",
        "use": "sig",
        "kid": x5t,
        "x5t": x5t,
        "n": public["n"],
        "e": public["e"],
        "x5c": [base64.b64encode(der).decode("ascii")],
        "cloud_instance_name": "microsoftonline.com",
    }
    return SigningKey(x5t, key, jwk)


class Signer:
    """Signs tokens with the current key; verifies with any published key."""

    def __init__(self) -> None:
        # Newest (the signing key) first; made on first use, so building a state is cheap.
        self._keys: list[SigningKey] = []
        # (token, audiences) -> (its claims, the kid that verified it, its exp): a token's
        # signature and claims cannot change, so a token verified once is not checked again
        # (an RS256 check per Graph call was a tenth of the sandbox's CPU) while its key is
        # still published and it has not expired; then it takes the full check again.
        self._verified: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Any], str, float]] = {}

    @property
    def keys(self) -> list[SigningKey]:
        if not self._keys:
            self._keys = [new_key()]
        return self._keys

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def rotate(self) -> str:
        """A new signing key; the previous one stays in the JWKS. Returns the new kid."""
        self._keys = [new_key(), *self.keys][:KEEP_KEYS]
        return self.current.kid

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.current
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"typ": "JWT", "kid": key.kid, "x5t": key.kid},
        )

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [{**k.jwk, "issuer": issuer} for k in self.keys]}

    def verify(self, token: str, audiences: Iterable[str]) -> dict[str, Any]:
        """The claims of a token this sandbox signed for one of `audiences`, not expired."""
        wanted = tuple(audiences)
        hit = self._verified.get((token, wanted))
        if hit is not None:
            token_claims, kid, exp = hit
            # A second's margin: near its expiry the full check decides, as PyJWT would.
            if clock() < exp - 1 and any(k.kid == kid for k in self.keys):
                return dict(token_claims)
            del self._verified[(token, wanted)]
        token_claims = self._verify(token, wanted)
        if len(self._verified) >= VERIFIED_CACHE:
            del self._verified[next(iter(self._verified))]  # the oldest
        kid = str(jwt.get_unverified_header(token).get("kid"))
        self._verified[(token, wanted)] = (dict(token_claims), kid, float(token_claims["exp"]))
        return token_claims

    def _verify(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("JWT is not well formed.") from exc
        kid = header.get("kid")
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise TokenInvalid("Signature validation failed: the signing key is not known.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[ALGORITHM],
                audience=list(audiences),
                options={"require": ["exp", "iat", "aud", "iss", "tid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenInvalid("Invalid audience.") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenInvalid("Signature validation failed.") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"{exc}.") from exc
        return claims
