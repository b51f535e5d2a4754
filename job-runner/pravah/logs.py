"""How every Pravah process writes its log: plain lines for people, or JSON lines for log
pipelines.

The operator, the API and the runner all call `setup_logging`. With `PRAVAH_LOG_FORMAT=json`
each record is one JSON object on one line: `time` (ISO 8601, UTC), `level`, `logger`,
`message`, then the record's extra fields (`job`, `namespace`, `shard` where the code knows
them; `request_id` on what is done for one API request, from the API to the operator's
handling of the PravahJob it created) and `exc_info` for an exception. Otherwise a record
is the plain `time LEVEL logger: message` line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Iterable, Literal, TextIO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# kopf attaches its settings object and a reference to the resource to the records of its
# handlers: the reference becomes `job` and `namespace`, the rest is not worth a field.
KOPF_ATTRIBUTES = ("settings", "k8s_skip", "k8s_ref")
# The PravahJob annotation naming the API request that created the job, so the operator's
# records and Events about the job can name it too.
REQUEST_ID_ANNOTATION = "pravah.io/request-id"
# Fields of every record written in the current context (one API request, one PravahJob's
# handling): a context variable, so concurrent requests and handlers never mix them up.
CONTEXT_FIELDS: ContextVar[dict[str, Any]] = ContextVar("pravah_log_fields", default={})


class LogSettings(BaseSettings):
    """The log format; read by the operator, the API and the runner alike."""

    model_config = SettingsConfigDict(env_prefix="PRAVAH_", extra="ignore")

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: `time LEVEL logger: message` lines; json: one JSON object per line "
                    "(time, level, logger, message, and job, namespace and shard where known).")


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record, its fixed fields first."""

    def __init__(self) -> None:
        super().__init__(["asctime", "levelname", "name", "message"],
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         reserved_attrs=[*RESERVED_ATTRS, *KOPF_ATTRIBUTES])

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        reference = getattr(record, "k8s_ref", None)
        if isinstance(reference, dict):
            log_data.setdefault("job", reference.get("name"))
            log_data.setdefault("namespace", reference.get("namespace"))


class RecordFields(logging.Filter):
    """Adds fixed fields to every record that does not carry them already."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def current(self) -> dict[str, Any]:
        return self.fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class ContextFields(RecordFields):
    """Adds the fields of the current context (see `log_fields`) to records without them."""

    def __init__(self) -> None:
        super().__init__({})

    def current(self) -> dict[str, Any]:
        return CONTEXT_FIELDS.get()


@contextlib.contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Every record written inside the block carries these fields (fields set to None are left
    out); an outer block's fields stay unless overridden, and come back afterwards."""
    token = CONTEXT_FIELDS.set({**CONTEXT_FIELDS.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        CONTEXT_FIELDS.reset(token)


def setup_logging(log_format: str = "text", level: int | str = logging.INFO,
                  streams: Iterable[TextIO] = (sys.stderr,)) -> list[logging.Handler]:
    """Send every record to each stream in the one format; returns the handlers added."""
    formatter = JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    for stream in streams:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(ContextFields())
        root.addHandler(handler)
        handlers.append(handler)
    root.setLevel(level)
    return handlers


def add_record_fields(handlers: Iterable[logging.Handler], **fields: Any) -> None:
    """Give every record these handlers write the same fields (a runner's job and shard)."""
    for handler in handlers:
        handler.addFilter(RecordFields(fields))
