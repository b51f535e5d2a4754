"""Pure logic of the API (no platform): the generated OpenAPI document, cursors, caches."""

from __future__ import annotations

import asyncio

import pytest

from pravah_api import jobs, models
from pravah_api.app import create_app, operations
from pravah_api.auth import TtlCache
from pravah_api.errors import ApiError
from pravah_api.k8s import caller_configuration
from pravah_api.keys import OPENAPI
from pravah_api.settings import ApiSettings


def settings(mode: str) -> ApiSettings:
    return ApiSettings(database_url="postgresql://unused", kubeconfig="unused", api_auth_mode=mode,
                       api_jwt_secret="s" * 40)


@pytest.mark.parametrize("mode", ["kubernetes", "standalone"])
def test_openapi_document_is_generated_from_the_routes_and_models(mode):
    app = create_app(settings(mode))
    document = app[OPENAPI]
    assert document["openapi"] == "3.1.0"
    routes = {(op.method.lower(), op.path) for op in operations(settings(mode))}
    documented = {(method, path) for path, methods in document["paths"].items() for method in methods}
    assert routes == documented
    assert ("/users" in document["paths"]) is (mode == "standalone")
    schemas = document["components"]["schemas"]
    # The job spec is the CRD's own model; every reference resolves.
    assert set(models.JobCreate.model_fields) - {"name", "namespace"} == set(
        schemas["PravahJobSpec"]["properties"])
    text = str(document)
    for name in {ref.split("/")[-1] for ref in _refs(document)}:
        assert name in schemas, name
    assert "$defs" not in text
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            assert "422" in op["responses"] and "ErrorResponse" in str(op["responses"]["404"]), (method, path)


def _refs(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_continue_tokens_round_trip_and_reject_garbage():
    for place in (("team-a", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"), (None, "abc"), ("team-b", None)):
        assert jobs.decode_cursor(jobs.encode_cursor(*place)) == place
    for garbage in ("", "%%%", "bm90IGpzb24", "WzFd", "WzEsIDJd"):
        with pytest.raises(ApiError) as caught:
            jobs.decode_cursor(garbage)
        assert caught.value.status == 400 and caught.value.field == "continue"


def test_a_caller_client_presents_only_the_callers_token():
    """Same API server and CA as the service, none of the service's credentials."""
    from kubernetes_asyncio import client

    service = client.Configuration(host="https://10.0.0.1:6443", api_key={"BearerToken": "service-token"},
                                   api_key_prefix={"BearerToken": "Bearer"}, ssl_ca_cert="/ca.crt")
    service.cert_file, service.key_file, service.tls_server_name = "/client.crt", "/client.key", "kubernetes"
    service.refresh_api_key_hook = lambda configuration: None
    caller = caller_configuration(service, "caller-token")
    assert (caller.host, caller.ssl_ca_cert, caller.tls_server_name) == ("https://10.0.0.1:6443", "/ca.crt", "kubernetes")
    assert (caller.cert_file, caller.key_file, caller.refresh_api_key_hook) == (None, None, None)
    headers = asyncio.run(caller.auth_settings())
    assert headers == {"BearerToken": {"type": "api_key", "in": "header", "key": "authorization",
                                       "value": "Bearer caller-token"}}


def test_ids_must_be_uuids():
    assert jobs.parse_id("7D4A3C9E-0000-4000-8000-000000000000") == "7d4a3c9e-0000-4000-8000-000000000000"
    with pytest.raises(ApiError) as caught:
        jobs.parse_id("default.my-job")
    assert caught.value.status == 404


def test_cache_loads_a_key_once_for_concurrent_misses():
    calls = []

    async def scenario():
        cache = TtlCache(10)

        async def load():
            calls.append(1)
            await asyncio.sleep(0.01)
            return "value"

        answers = await asyncio.gather(*(cache.get_or_load("key", load) for _ in range(50)))
        assert answers == ["value"] * 50
        assert await cache.get_or_load("key", load) == "value"

    asyncio.run(scenario())
    assert len(calls) == 1


def test_cache_shares_a_failure_without_keeping_it():
    async def scenario():
        cache = TtlCache(10)
        attempts = []

        async def failing():
            attempts.append(1)
            await asyncio.sleep(0.01)
            raise ConnectionError("down")

        results = await asyncio.gather(*(cache.get_or_load("k", failing) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(result, ConnectionError) for result in results)
        assert len(attempts) == 1
        assert cache.get("k") == (False, None)

    asyncio.run(scenario())
