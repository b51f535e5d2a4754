""".env.example: every setting of the operator, the API and the runner, generated from their
settings classes so that the file and the code cannot disagree.

    python -m pravah.envdoc            # print it
    python -m pravah.envdoc --write    # write .env.example at the repository root
    python -m pravah.envdoc --check    # exit 1 if the checked-in file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, get_args, get_origin

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings

from pravah.runner import RunnerContext
from pravah_api.settings import ApiSettings
from pravah_operator.settings import OperatorSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = REPO_ROOT / ".env.example"
WIDTH = 100
RULE = "# " + "-" * (WIDTH - 2)
# Values made only of these need no quotes in a shell, python-dotenv or Docker Compose.
PLAIN_VALUE = re.compile(r"[\w./:@,+=%-]*")

HEADER = """\
# Every setting of the Pravah operator, API and runner: its environment variable, its default
# and what it does, one section per component. A variable in two sections is read by both.
# Commented-out lines have no default: required values (with a placeholder), secrets, and
# settings that are unset unless given.
# Generated from the settings classes: change them, then run `python -m pravah.envdoc --write`.
"""


@dataclass(frozen=True)
class Component:
    name: str
    about: str
    settings: type[BaseSettings]


COMPONENTS = (
    Component("operator", "pravah-operator, from the ConfigMaps pravah-operator-config and pravah-tenancy and "
                          "the Secret pravah-database.", OperatorSettings),
    Component("api", "pravah-api, from the ConfigMaps pravah-api-config and pravah-tenancy and the Secret "
                     "pravah-database.", ApiSettings),
    Component("runner", "`pravah-runner` in each runner pod: the operator sets these on the pod; set them "
                        "yourself only to run a shard by hand.", RunnerContext),
)


def nested_settings(field: FieldInfo) -> type[BaseSettings] | None:
    """A field holding a settings class of its own (it reads its own variables)."""
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseSettings) else None


def variables(settings: type[BaseSettings]) -> Iterator[tuple[list[str], FieldInfo]]:
    """Each setting's variable names (the first is the usual one), nested classes in place."""
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in settings.model_fields.items():
        nested = nested_settings(field)
        if nested is not None:
            yield from variables(nested)
        elif isinstance(field.validation_alias, AliasChoices):
            yield [str(choice) for choice in field.validation_alias.choices], field
        elif isinstance(field.validation_alias, str):
            yield [field.validation_alias], field
        else:
            yield [(prefix + name).upper()], field


def env_value(value: Any) -> str:
    """A default as pydantic-settings reads it back: lists and objects as JSON."""
    plain = to_jsonable_python(value)
    if isinstance(plain, (list, dict)):
        text = json.dumps(plain, separators=(",", ":"))
    elif isinstance(plain, bool):
        text = str(plain).lower()
    else:
        text = str(plain)
    return text if PLAIN_VALUE.fullmatch(text) else f"'{text}'"


def is_secret(field: FieldInfo) -> bool:
    return SecretStr in (field.annotation, *get_args(field.annotation))


def assignment(name: str, field: FieldInfo) -> tuple[str, str]:
    """The variable's line and what the comment says about its default."""
    example = field.examples[0] if field.examples else None
    if field.is_required():
        return f"# {name}={example or '<required>'}", "Required."
    if is_secret(field):
        return f"# {name}=<secret>", "A secret; unset by default."
    if field.default_factory is not None or field.default is None:
        return f"# {name}={example or ''}", "Unset by default."
    return f"{name}={env_value(field.default)}", ""


def comment(text: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False,
                         break_long_words=False)


def entry(names: list[str], field: FieldInfo) -> str:
    line, default_note = assignment(names[0], field)
    notes = [field.description or ""]
    if get_origin(field.annotation) is Literal:
        notes.append("One of: " + ", ".join(str(choice) for choice in get_args(field.annotation)) + ".")
    if len(names) > 1:
        notes.append("Also read from " + ", ".join(names[1:]) + ".")
    notes.append(default_note)
    return f"{comment(' '.join(filter(None, notes)))}\n{line}\n"


def section(component: Component) -> str:
    settings = component.settings
    title = f"# {component.name} ({settings.__module__}.{settings.__qualname__})"
    body = "\n".join(entry(names, field) for names, field in variables(settings))
    return f"{RULE}\n{title}\n{comment(component.about)}\n{RULE}\n\n{body}"


def render() -> str:
    """The whole file, the same on every machine."""
    return HEADER + "".join("\n" + section(component) for component in COMPONENTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pravah.envdoc", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {ENV_FILE.name}")
    action.add_argument("--check", action="store_true", help=f"exit 1 if the checked-in {ENV_FILE.name} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        ENV_FILE.write_text(text)
        print(f"wrote {ENV_FILE.name}", file=sys.stderr)
    elif args.check:
        if not ENV_FILE.exists() or ENV_FILE.read_text() != text:
            print(f"{ENV_FILE.name} is stale: run `python -m pravah.envdoc --write`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
