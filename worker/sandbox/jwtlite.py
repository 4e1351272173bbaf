"""Just enough JWT for the sandbox: HS256 access tokens and RS256/PS256 client assertions.

Written on `cryptography` and the standard library so the sandbox needs no JWT package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import Certificate


class JwtError(ValueError):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError("not base64url") from exc


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS, unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("JWT is not well formed: it must have three segments.")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("JWT is not well formed: bad JSON.") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("JWT is not well formed.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2])


def sign_hs256(claims: dict[str, Any], key: bytes, kid: str | None = None) -> str:
    header: dict[str, Any] = {"typ": "JWT", "alg": "HS256"}
    if kid:
        header["kid"] = kid
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def verify_hs256(token: str, key: bytes) -> dict[str, Any]:
    header, claims, signing_input, signature = split(token)
    if header.get("alg") != "HS256":
        raise JwtError("Signature validation failed: unexpected algorithm.")
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise JwtError("Signature validation failed.")
    return claims


def verify_with_certificate(token: str, cert: Certificate) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify an RS256/PS256/ES256 signature with the certificate's public key."""
    header, claims, signing_input, signature = split(token)
    alg = header.get("alg")
    key = cert.public_key()
    try:
        if alg in ("RS256", "PS256") and isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg == "RS256"
                else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            )
            key.verify(signature, signing_input, pad, hashes.SHA256())
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                raise JwtError("bad ES256 signature length")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            raise JwtError(f"unsupported algorithm {alg!r} for this certificate")
    except InvalidSignature as exc:
        raise JwtError("signature does not verify") from exc
    return header, claims
