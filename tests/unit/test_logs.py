"""Logs: JSON lines with PRAVAH_LOG_FORMAT=json, the plain line otherwise, for the operator,
the API and the runner alike."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta

import kopf
import pytest
from pydantic import ValidationError

from pravah.logs import LogSettings, add_record_fields, setup_logging
from pravah.spec import describe_errors
from pravah_api.settings import ApiSettings
from pravah_operator.planning import Sizing, runner_env
from pravah_operator.settings import OperatorSettings
from unit.test_planning import spec

DATABASE_URL = "postgresql://pravah@db.example.internal/pravah"
EXIT_BAD_INPUT = 3  # the runner's exit code for what a retry cannot fix
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)")


@pytest.fixture
def configure():
    """setup_logging writing to a buffer; the root logger is as it was afterwards."""
    root = logging.getLogger()
    level, added = root.level, []

    def setup(log_format: str) -> tuple[io.StringIO, list[logging.Handler]]:
        stream = io.StringIO()
        added.extend(setup_logging(log_format, streams=[stream]))
        return stream, added

    yield setup
    for handler in added:
        root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_line_has_time_level_logger_message_and_the_extra_fields(configure):
    stream, _ = configure("json")
    logging.getLogger("pravah.operator").warning("shard %d of %s failed", 2, "sales-profile",
                                                 extra={"job": "sales-profile", "namespace": "analytics", "shard": 2})
    (line,) = lines(stream)
    record = json.loads(line)
    assert list(record)[:4] == ["time", "level", "logger", "message"]
    assert record["level"] == "WARNING"
    assert record["logger"] == "pravah.operator"
    assert record["message"] == "shard 2 of sales-profile failed"
    assert (record["job"], record["namespace"], record["shard"]) == ("sales-profile", "analytics", 2)
    assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)


def test_json_line_carries_the_traceback(configure):
    stream, _ = configure("json")
    try:
        int("twelve")
    except ValueError:
        logging.getLogger("pravah.runner").exception("shard failed")
    (line,) = lines(stream)
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["exc_info"].startswith("Traceback")
    assert record["exc_info"].endswith("ValueError: invalid literal for int() with base 10: 'twelve'")


def test_kopf_handler_records_name_their_job_not_kopf_internals(configure):
    stream, _ = configure("json")
    body = {"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob",
            "metadata": {"name": "sales-profile", "namespace": "analytics", "uid": "u-1"}}
    kopf.ObjectLogger(body=body, settings=kopf.OperatorSettings()).info("handler succeeded")
    record = json.loads(lines(stream)[0])
    assert (record["job"], record["namespace"], record["message"]) == ("sales-profile", "analytics", "handler succeeded")
    assert not {"settings", "k8s_ref", "k8s_skip"} & set(record)


def test_record_fields_reach_every_record_and_explicit_extras_win(configure):
    stream, handlers = configure("json")
    add_record_fields(handlers, job="sales-profile", namespace="analytics", shard=1)
    log = logging.getLogger("pravah.runner")
    log.info("listed 12 files")
    log.info("resuming", extra={"shard": 3})
    first, second = (json.loads(line) for line in lines(stream))
    assert (first["job"], first["namespace"], first["shard"]) == ("sales-profile", "analytics", 1)
    assert second["shard"] == 3


def test_text_format_is_the_plain_line_without_extras(configure):
    stream, _ = configure("text")
    logging.getLogger("pravah.api").info("listening on %s", "0.0.0.0:8000", extra={"job": "sales-profile"})
    (line,) = lines(stream)
    match = TEXT_LINE.fullmatch(line)
    assert match, line
    assert match.groupdict() == {"level": "INFO", "logger": "pravah.api", "message": "listening on 0.0.0.0:8000"}


@pytest.mark.parametrize("settings", [OperatorSettings, ApiSettings])
def test_log_format_is_a_setting_and_a_bad_value_is_named(settings, monkeypatch):
    monkeypatch.setenv("PRAVAH_LOG_FORMAT", "json")
    assert settings(database_url=DATABASE_URL).log.log_format == "json"
    monkeypatch.setenv("PRAVAH_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError) as raised:
        settings(database_url=DATABASE_URL)
    assert describe_errors(raised.value) == ["log_format: Input should be 'text' or 'json'"]
    monkeypatch.delenv("PRAVAH_LOG_FORMAT")
    assert LogSettings().log_format == "text"


def test_runner_pods_log_in_the_operators_format(monkeypatch):
    monkeypatch.setenv("PRAVAH_LOG_FORMAT", "json")
    env = runner_env(spec(), "sales-profile", "analytics", "u-1", Sizing(cpu_per_runner=1, shards=1),
                     OperatorSettings(database_url=DATABASE_URL))
    assert {"name": "PRAVAH_LOG_FORMAT", "value": "json"} in env


def run_runner(**variables: str) -> subprocess.CompletedProcess:
    """`pravah runner` with only these PRAVAH_* variables."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("PRAVAH_") and name != "JOB_COMPLETION_INDEX"}
    return subprocess.run([sys.executable, "-m", "pravah.cli", "runner"], env=env | variables,
                          capture_output=True, text=True, timeout=120)


def test_runner_logs_json_lines():
    done = run_runner(PRAVAH_LOG_FORMAT="json")
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    (line,) = done.stderr.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("ERROR", "pravah.runner")
    assert record["message"].startswith("runner environment is incomplete: ")
    assert "job_uid: Field required" in record["message"]


def test_runner_names_a_bad_log_format_in_a_plain_line():
    done = run_runner(PRAVAH_LOG_FORMAT="xml")
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    (line,) = done.stderr.splitlines()
    match = TEXT_LINE.fullmatch(line)
    assert match, line
    assert match["message"] == "runner environment is incomplete: log_format: Input should be 'text' or 'json'"
