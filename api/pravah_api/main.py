"""`pravah-api`: serve the REST API."""

from __future__ import annotations

import logging

import click
from aiohttp import web
from pydantic import ValidationError

from pravah.logs import setup_logging

from pravah_api.app import create_app
from pravah_api.settings import ApiSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default=None, help="Address to listen on [default: PRAVAH_API_HOST or 0.0.0.0].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on [default: PRAVAH_API_PORT or 8000].")
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def main(host: str | None, port: int | None, log_level: str) -> None:
    """Serve the Pravah REST API (settings from PRAVAH_* environment variables)."""
    try:
        settings = ApiSettings()
    except ValidationError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from None
    setup_logging(settings.log.log_format, log_level)
    app = create_app(settings)
    web.run_app(app, host=host or settings.api_host, port=port if port is not None else settings.api_port,
                access_log=None, print=lambda line: logging.getLogger("pravah.api").info(line))


if __name__ == "__main__":
    main()
