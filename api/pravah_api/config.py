"""/config: the operations, their options with JSON Schema, defaults and limits."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aiohttp import web

from pravah import spec as specs
from pravah_api import models
from pravah_api.keys import SETTINGS
from pravah_api.routing import Operation, respond

DESCRIPTIONS = {
    "stats": "Per-column profile of CSV, TSV, NDJSON and Parquet files: types, nulls, min/max, mean, stddev, "
             "distinct, quantiles, top values.",
    "count": "Lines, words and bytes, per file and in total.",
    "checksum": "sha256 / blake3 / xxh3 digests and a `sha256sum -c` compatible manifest.",
    "grep": "Regular-expression matches with line numbers.",
    "convert": "CSV, TSV or NDJSON to Parquet, one output per input file.",
}
OPTIONS = {"stats": specs.StatsOptions, "checksum": specs.ChecksumOptions, "grep": specs.GrepOptions,
           "convert": specs.ConvertOptions}


@lru_cache(maxsize=4)
def document(auth_mode: str, max_body: int, max_page: int, token_ttl: int | None) -> dict[str, Any]:
    operations = []
    for name in specs.OPERATIONS:
        model = OPTIONS.get(name)
        defaults: dict[str, Any] = {}
        if model is not None and name != "grep":
            defaults = model().model_dump(mode="json")
        elif name == "grep":
            defaults = {key: field.default for key, field in model.model_fields.items() if not field.is_required()}
        operations.append(models.OperationInfo(
            type=name, description=DESCRIPTIONS[name],
            options=model.model_json_schema() if model is not None else None, defaults=defaults))
    spec_defaults = {key: field.get_default(call_default_factory=True)
                     for key, field in specs.PravahJobSpec.model_fields.items() if not field.is_required()}
    spec_defaults["resources"] = specs.Resources().model_dump(mode="json")
    limits = models.Limits(
        maxGlobs=specs.MAX_GLOBS, maxGlobLength=specs.MAX_GLOB_LENGTH,
        parallelism=models.Range(minimum=specs.PARALLELISM_RANGE[0], maximum=specs.PARALLELISM_RANGE[1]),
        cpuPerRunner=models.Range(minimum=specs.CPU_RANGE[0], maximum=specs.CPU_RANGE[1]),
        maxRetriesPerShard=models.Range(minimum=0, maximum=10),
        maxBodyBytes=max_body, maxPageSize=max_page, tokenTtlSeconds=token_ttl)
    info = models.ConfigInfo(apiVersion="pravah.io/v1alpha1", kind="PravahJob", authMode=auth_mode,
                             operations=operations, spec=models.JobCreate.model_json_schema(),
                             defaults=spec_defaults, limits=limits)
    return info.model_dump(mode="json")


async def get_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    ttl = settings.api_jwt_ttl_seconds if settings.api_auth_mode == "standalone" else None
    return respond(document(settings.api_auth_mode, settings.api_max_body_bytes, settings.api_max_page_size, ttl))


ROUTES = [
    Operation("GET", "/config", get_config, "Operations, their options (JSON Schema), defaults and limits",
              "config", {200: models.ConfigInfo}, public=True),
]
