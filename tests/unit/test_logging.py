"""Secrets never reach a log line, in JSON or console output."""

from __future__ import annotations

import io
import json

import pytest

from worker.logging import configure_logging, get_logger

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_credentials_are_masked(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(fmt, "INFO", stream=stream)
    get_logger("t").info(
        "signing in",
        client_secret="s3cret-value",
        headers={"Authorization": "Bearer eyJhbGciOi.abc.def"},
        note="sent Bearer eyJzzz.yyy.xxx upstream",
        job_id="contoso-to-fabrikam",
    )
    text = stream.getvalue()
    assert "s3cret-value" not in text
    assert "eyJ" not in text
    assert "contoso-to-fabrikam" in text
    if fmt == "json":
        event = json.loads(text)
        assert event["client_secret"] == "[REDACTED]"
        assert event["headers"]["Authorization"] == "[REDACTED]"
