"""The sandbox's token check: a verified token is remembered, but never past its key or expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tenant_sync_sandbox import signing
from tenant_sync_sandbox.signing import Signer, TokenInvalid

pytestmark = pytest.mark.unit

AUD = ("https://graph.microsoft.com",)


def claims(lifetime: int = 3600) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": AUD[0],
        "iss": "https://sts.windows.net/t/",
        "tid": "t",
        "appid": "a",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }


def test_a_token_verifies_again_and_again_with_the_same_claims() -> None:
    signer = Signer()
    token = signer.sign(claims())
    first = signer.verify(token, AUD)
    first["tid"] = "changed by a caller"
    assert signer.verify(token, AUD)["tid"] == "t"
    with pytest.raises(TokenInvalid, match="Invalid audience"):
        signer.verify(token, ("api://other",))


def test_a_remembered_token_fails_once_its_key_is_no_longer_published() -> None:
    signer = Signer()
    token = signer.sign(claims())
    signer.verify(token, AUD)
    signer.rotate()
    assert signer.verify(token, AUD)["appid"] == "a"  # the previous key is still published
    signer.rotate()
    with pytest.raises(TokenInvalid, match="signing key is not known"):
        signer.verify(token, AUD)


def test_a_remembered_token_is_checked_in_full_once_it_has_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = Signer()
    token = signer.sign(claims(lifetime=60))
    signer.verify(token, AUD)
    full_checks: list[str] = []
    real = signer._verify

    def counted(token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        full_checks.append(token)
        return real(token, audiences)

    monkeypatch.setattr(signer, "_verify", counted)
    signer.verify(token, AUD)
    assert full_checks == []  # remembered
    later = time.time() + 120
    monkeypatch.setattr(signing, "clock", lambda: later)
    signer.verify(token, AUD)  # PyJWT's own clock still says valid; the point is it was asked
    assert full_checks == [token]


def test_a_bad_token_is_never_remembered() -> None:
    signer = Signer()
    token = signer.sign(claims())
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(TokenInvalid):
            signer.verify(tampered, AUD)
    expired = signer.sign(claims(lifetime=-10))
    for _ in range(2):
        with pytest.raises(TokenInvalid, match="expired"):
            signer.verify(expired, AUD)
