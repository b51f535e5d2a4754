"""`.env.example` is generated from the settings classes: in sync with them, complete, with no
default for a required value or a secret, and read back by pydantic-settings as the classes'
own defaults."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from pravah import envdoc
from pravah.logs import LogSettings
from pravah.runner import RunnerContext
from pravah.tenancy import TenancySettings
from pravah_api.settings import ApiSettings
from pravah_operator.settings import OperatorSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
SECTIONS = {"operator": OperatorSettings, "api": ApiSettings, "runner": RunnerContext}
NESTED = {"operator": (TenancySettings, LogSettings), "api": (TenancySettings, LogSettings),
          "runner": (LogSettings,)}
TITLE = re.compile(r"^# (\w+) \([\w.]+\)$", re.MULTILINE)
ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)
COMMENTED = re.compile(r"^# ([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# A valid value for each variable a component has no default for, so that its class can be built.
DATABASE = {"PRAVAH_DATABASE_URL": "postgresql://pravah@db.example.internal/pravah"}
REQUIRED = {
    "operator": DATABASE,
    "api": DATABASE,
    "runner": {
        "PRAVAH_JOB_UID": "0b6f3c52-8d7e-4c1a-9f55-1d2e3f4a5b6c",
        "PRAVAH_JOB_NAME": "sales-profile",
        "PRAVAH_SPEC": "{}",
        "PRAVAH_SHARDS": "4",
        "JOB_COMPLETION_INDEX": "3",
        "PRAVAH_THREADS": "2",
        "PRAVAH_REPORT_URL": "http://pravah-operator.pravah-system.svc:8082",
        "PRAVAH_REPORT_TOKEN_FILE": "/var/run/secrets/pravah/token",
    },
}
SECRETS = {"operator": set(), "api": {"PRAVAH_API_JWT_SECRET"}, "runner": set()}


def sections() -> dict[str, str]:
    """The committed file's body under each component's title."""
    parts = TITLE.split(ENV_EXAMPLE.read_text())
    return dict(zip(parts[1::2], parts[2::2]))


def declared_variables(settings: type[BaseSettings]) -> set[str]:
    """Each field's variable, worked out from its declaration: the prefixed field name, or its
    alias (the first of several)."""
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= declared_variables(field.annotation)
        elif alias is None:
            names.add(settings.model_config["env_prefix"] + name.upper())
        else:
            names.add(alias if isinstance(alias, str) else alias.choices[0])
    return names


def test_checked_in_file_matches_the_classes():
    assert ENV_EXAMPLE.exists(), ".env.example is missing: run `python -m pravah.envdoc --write`"
    assert ENV_EXAMPLE.read_text() == envdoc.render(), (
        ".env.example is out of date with the settings classes: run `python -m pravah.envdoc --write`")


def test_cli_check_and_print(capsys):
    assert envdoc.main(["--check"]) == 0
    assert envdoc.main([]) == 0
    assert capsys.readouterr().out == envdoc.render()


def test_one_section_per_component():
    assert list(sections()) == list(SECTIONS)


@pytest.mark.parametrize("component", SECTIONS)
def test_each_section_lists_every_field_of_its_classes_once(component):
    body = sections()[component]
    listed = ASSIGNED.findall(body) + COMMENTED.findall(body)
    expected = declared_variables(SECTIONS[component])
    assert len(listed) == len(set(listed)), f"{component}: a variable is listed twice"
    assert set(listed) == expected
    for nested in NESTED[component]:
        assert declared_variables(nested) <= set(listed), f"{component}: {nested.__name__} is missing"


@pytest.mark.parametrize("settings", [*SECTIONS.values(), TenancySettings, LogSettings], ids=lambda cls: cls.__name__)
def test_every_setting_says_what_it_does(settings):
    undescribed = [name for name, field in settings.model_fields.items() if not (field.description or "").strip()]
    assert undescribed == [], f"{settings.__name__}: fields without a description"


@pytest.mark.parametrize("component", SECTIONS)
def test_required_values_and_secrets_are_commented_out(component):
    body = sections()[component]
    hidden = set(REQUIRED[component]) | SECRETS[component]
    assert hidden <= set(COMMENTED.findall(body))
    assert not hidden & set(ASSIGNED.findall(body))


def test_placeholders_stand_for_what_is_missing():
    text = ENV_EXAMPLE.read_text()
    assert re.search(r"^# PRAVAH_API_JWT_SECRET=<secret>$", text, re.MULTILINE)
    assert re.search(r"^# PRAVAH_JOB_UID=<required>$", text, re.MULTILINE)
    assert re.search(r"^# PRAVAH_DATABASE_URL=postgresql://\S+$", text, re.MULTILINE)


@pytest.mark.parametrize("component", SECTIONS)
def test_listed_defaults_read_back_as_the_classes_defaults(component, monkeypatch):
    """Every uncommented value, as python-dotenv reads it, means what leaving it unset means."""
    for name in list(os.environ):
        if name.startswith("PRAVAH_") or name in ("KUBECONFIG", "JOB_COMPLETION_INDEX"):
            monkeypatch.delenv(name)
    for name, value in REQUIRED[component].items():
        monkeypatch.setenv(name, value)
    settings = SECTIONS[component]
    unset = settings().model_dump()
    listed = dotenv_values(stream=io.StringIO(sections()[component]))
    assert listed and None not in listed.values()
    for name, value in listed.items():
        monkeypatch.setenv(name, value)
    assert settings().model_dump() == unset
