"""Microsoft's Graph SDK (msgraph-sdk) and Azure Identity pointed at a running sandbox.

    sdk = SdkClient.connect(sandbox, tenant_id, client_id, secret)
    user = sdk.run(sdk.graph.users.by_user_id("ann").get())
    sdk.close()

What it takes (the same as the README's "Microsoft's Graph SDK against the sandbox"):

- `ClientSecretCredential(..., authority=<sandbox URL>, disable_instance_discovery=True,
  connection_verify=<the sandbox's ca.pem>)`: Azure Identity (through MSAL) asks the sandbox's
  `/{tenant}/v2.0/.well-known/openid-configuration` and token endpoint, trusting only the CA;
- scopes `https://graph.microsoft.com/.default`;
- the SDK's httpx client built by `GraphClientFactory` (its middleware: retries, redirects...)
  around an `httpx.AsyncClient` that trusts the CA, and the request adapter's `base_url` set to
  `<sandbox URL>/v1.0`.

The SDK is asynchronous: each client owns an event loop and `run()` drives one coroutine to its
end. Importing the SDK costs seconds, so test modules share one client per module.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from azure.identity import ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

from tests.support.sandbox import GRAPH_SCOPE, SandboxHandle

T = TypeVar("T")


@dataclass
class SdkClient:
    graph: GraphServiceClient
    credential: ClientSecretCredential
    http: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop

    @staticmethod
    def connect(sandbox: SandboxHandle, tenant_id: str, client_id: str, secret: str) -> SdkClient:
        credential = ClientSecretCredential(
            tenant_id,
            client_id,
            secret,
            authority=sandbox.url,
            disable_instance_discovery=True,
            connection_verify=str(sandbox.ca_path),
        )
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
        verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=verify, trust_env=False, timeout=30.0)
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{sandbox.url}/v1.0"
        return SdkClient(
            GraphServiceClient(request_adapter=adapter), credential, http, asyncio.new_event_loop()
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def error(self, coro: Coroutine[Any, Any, Any]) -> APIError:
        """The APIError the call raises (the test fails if it succeeds)."""
        try:
            self.run(coro)
        except APIError as exc:
            return exc
        raise AssertionError("the call succeeded; an APIError was expected")

    def close(self) -> None:
        self.run(self.http.aclose())
        self.credential.close()
        self.loop.close()
