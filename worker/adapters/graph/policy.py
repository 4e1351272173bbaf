"""Graph's cross-tenant access policy of one tenant, as `check --fix` reads and writes it.

Reads: a partner entry (`/policies/crossTenantAccessPolicy/partners/{id}`) and its
`identitySynchronization`, None when absent (404). Writes: the plan's requests as they are
(docs/onboarding.md); a POST that meets 409 (someone created the entry since it was read) becomes
a PATCH of the same settings, so a repeated or raced `--fix` still ends in the same state.
Writes need `Policy.ReadWrite.CrossTenantAccess`; Graph answers 403 without it (a StopSync with
status 403 here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.adapters.graph.client import GraphClient
from worker.domain.errors import Conflict, NotFound
from worker.domain.onboarding import PARTNERS_PATH

WRITE_PERMISSION = "Policy.ReadWrite.CrossTenantAccess"


class GraphCrossTenantPolicy:
    """`ports.CrossTenantPolicy` over one tenant's Graph client."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def partner(self, partner_id: str) -> Mapping[str, Any] | None:
        try:
            return self.client.get_json(f"{PARTNERS_PATH}/{partner_id}")
        except NotFound:
            return None

    def identity_sync(self, partner_id: str) -> Mapping[str, Any] | None:
        try:
            return self.client.get_json(f"{PARTNERS_PATH}/{partner_id}/identitySynchronization")
        except NotFound:
            return None

    def write(self, method: str, path: str, body: Mapping[str, Any]) -> None:
        try:
            self.client.request(method, path, json=dict(body))
        except Conflict:
            if method != "POST" or path != PARTNERS_PATH:
                raise
            rest = {k: v for k, v in body.items() if k != "tenantId"}
            self.client.request("PATCH", f"{PARTNERS_PATH}/{body['tenantId']}", json=rest)
