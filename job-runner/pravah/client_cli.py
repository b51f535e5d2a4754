"""`pravah submit | get | list | results | cancel | rerun | watch`: the REST API from the command line.

The API's address and token come from --api-url / --token or PRAVAH_API_URL / PRAVAH_TOKEN.
Register the commands on the `pravah` group with `register(cli)`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

if TYPE_CHECKING:
    import aiohttp

DEFAULT_URL = "http://localhost:8000"
TERMINAL = ("Succeeded", "Failed", "Cancelled")


class ApiFailure(click.ClickException):
    """An error answer of the API, shown as `error: <message> (field)`."""

    def __init__(self, status: int, body: Any):
        detail = body.get("error", {}) if isinstance(body, dict) else {}
        message = detail.get("message") or f"HTTP {status}"
        if detail.get("field"):
            message += f" (field: {detail['field']})"
        super().__init__(f"{message} [HTTP {status}]")
        self.exit_code = 1


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 60):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout

    def session(self, **timeout: float | None) -> aiohttp.ClientSession:
        """aiohttp is imported here, not with the module: importing it took longer than a
        `pravah run` over a small directory, which never talks to the API."""
        import aiohttp

        return aiohttp.ClientSession(headers=self.headers,
                                     timeout=aiohttp.ClientTimeout(**(timeout or {"total": self.timeout})))

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session() as session, session.request(method, self.url + path, **kwargs) as answer:
            text = await answer.text()
            body: Any = None
            if text:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
            if answer.status >= 400:
                raise ApiFailure(answer.status, body)
            return body

    async def download(self, path: str, target: Path) -> int:
        written = 0
        async with self.session() as session, session.get(self.url + path) as answer:
            if answer.status >= 400:
                raise ApiFailure(answer.status, await answer.json(content_type=None))
            with target.open("wb") as out:
                async for chunk in answer.content.iter_chunked(1 << 16):
                    out.write(chunk)
                    written += len(chunk)
        return written

    async def events(self, path: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs of a Server-Sent Events stream."""
        async with self.session(total=None, sock_read=120) as session, session.get(
                self.url + path, headers={"Accept": "text/event-stream"}) as answer:
            if answer.status >= 400:
                raise ApiFailure(answer.status, await answer.json(content_type=None))
            event, data = "message", []
            async for raw in answer.content:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield event, json.loads("\n".join(data))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def api_options(command):
    command = click.option("--token", envvar="PRAVAH_TOKEN", help="Bearer token [env: PRAVAH_TOKEN].")(command)
    command = click.option("--api-url", envvar="PRAVAH_API_URL", default=DEFAULT_URL, show_default=True,
                           help="Base URL of the Pravah API [env: PRAVAH_API_URL].")(command)
    return command


def job_body(path: Path, name: str | None, namespace: str | None) -> dict[str, Any]:
    """A POST /jobs body from a manifest (kind: PravahJob) or a bare spec, in YAML or JSON."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{path}: not valid YAML or JSON: {exc}") from None
    if not isinstance(document, dict):
        raise click.UsageError(f"{path}: expected a PravahJob manifest or a spec (a mapping)")
    if document.get("kind") == "PravahJob":
        metadata = document.get("metadata") or {}
        body = dict(document.get("spec") or {})
        name = name or metadata.get("name")
        namespace = namespace or metadata.get("namespace")
    else:
        body = dict(document)
    if name:
        body["name"] = name
    if namespace:
        body["namespace"] = namespace
    return body


def show(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Job name [default: the manifest's, or generated].")
@click.option("-n", "--namespace", help="Namespace [default: the manifest's, or the API's default].")
@click.option("--idempotency-key", help="Retries with the same key return the same job.")
@click.option("--watch", "follow", is_flag=True, help="Follow the job's progress until it ends.")
@api_options
def submit(manifest: Path, name: str | None, namespace: str | None, idempotency_key: str | None, follow: bool,
           api_url: str, token: str | None) -> None:
    """Submit a PravahJob (a manifest or a bare spec, YAML or JSON) to the API; print its id."""
    client = Client(api_url, token)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    job = run(client.call("POST", "/jobs", json=job_body(manifest, name, namespace), headers=headers))
    click.echo(job["id"])
    click.echo(f"created {job['namespace']}/{job['name']}", err=True)
    if follow:
        sys.exit(watch_job(client, job["id"]))


@click.command()
@click.argument("job_id")
@api_options
def get(job_id: str, api_url: str, token: str | None) -> None:
    """Show a job: spec, status, progress, timings, errors (JSON)."""
    show(run(Client(api_url, token).call("GET", f"/jobs/{job_id}")))


@click.command(name="list")
@click.option("-n", "--namespace", help="Only this namespace.")
@click.option("--phase", type=click.Choice(["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled"]))
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Jobs per page.")
@click.option("--all", "every_page", is_flag=True, help="Follow every page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@api_options
def list_jobs(namespace: str | None, phase: str | None, limit: int, every_page: bool, as_json: bool,
              api_url: str, token: str | None) -> None:
    """List jobs, by namespace then name (the API server's order), a page at a time."""
    client = Client(api_url, token)

    async def fetch() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": str(limit)}
            params.update({key: value for key, value in (("namespace", namespace), ("phase", phase),
                                                         ("continue", cursor)) if value})
            page = await client.call("GET", "/jobs", params=params)
            items += page["items"]
            cursor = page.get("next")
            if not (every_page and cursor):
                return items

    items = run(fetch())
    if as_json:
        show(items)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "NAMESPACE", "NAME", "PHASE", "PROGRESS", "CREATED")
    for job in items:
        percent = "" if job.get("percent") is None else f"{job['percent']}%"
        table.add_row(job["id"], job["namespace"], job["name"], job.get("phase") or "", percent,
                      job.get("createdAt") or "")
    Console().print(table)


@click.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result to this file instead of standard output.")
@api_options
def results(job_id: str, output: Path | None, api_url: str, token: str | None) -> None:
    """The merged result of a finished job (JSON)."""
    client = Client(api_url, token)
    if output is not None:
        size = run(client.download(f"/jobs/{job_id}/results", output))
        click.echo(f"wrote {size} bytes to {output}", err=True)
    else:
        show(run(client.call("GET", f"/jobs/{job_id}/results")))


@click.command()
@click.argument("job_id")
@click.option("--purge", is_flag=True, help="Delete the PravahJob instead of cancelling it.")
@api_options
def cancel(job_id: str, purge: bool, api_url: str, token: str | None) -> None:
    """Cancel a job (or delete it with --purge)."""
    client = Client(api_url, token)
    run(client.call("DELETE", f"/jobs/{job_id}", params={"purge": "true"} if purge else None))
    click.echo(f"{'deleted' if purge else 'cancelled'} {job_id}")


@click.command()
@click.argument("job")
@click.option("-n", "--namespace", help="The job's namespace, when JOB is a name [default: any].")
@click.option("--name", "new_name", help="Name of the new job [default: JOB's name + -rerun- + 5 characters].")
@click.option("--watch", "follow", is_flag=True, help="Follow the new job's progress until it ends.")
@api_options
def rerun(job: str, namespace: str | None, new_name: str | None, follow: bool, api_url: str, token: str | None) -> None:
    """Re-run only the files that failed or never finished in a finished job (its id or name).

    The new job has the same spec with spec.rerunOf set: it reads just those files and its
    result merges them with the good partials of JOB, so once the files are fixed it equals
    a clean run over all of them. Prints the new job's id.
    """
    client = Client(api_url, token)
    job_id = run(resolve_id(client, job, namespace))
    created = run(client.call("POST", f"/jobs/{job_id}/rerun", json={"name": new_name} if new_name else {}))
    click.echo(created["id"])
    click.echo(f"created {created['namespace']}/{created['name']}", err=True)
    if follow:
        sys.exit(watch_job(client, created["id"]))


async def resolve_id(client: Client, job: str, namespace: str | None) -> str:
    """A job's id from its id or its name (exactly one job of that name must be visible)."""
    try:
        return str(uuid.UUID(job))
    except ValueError:
        pass
    params = {"name": job, "limit": "500", **({"namespace": namespace} if namespace else {})}
    found = [item for item in (await client.call("GET", "/jobs", params=params))["items"] if item["name"] == job]
    if len(found) != 1:
        where = f" in namespace {namespace}" if namespace else ""
        raise click.ClickException(f"{len(found)} jobs named {job}{where}" +
                                   ("; give -n NAMESPACE or the job's id" if found else ""))
    return found[0]["id"]


@click.command()
@click.argument("job_id")
@api_options
def watch(job_id: str, api_url: str, token: str | None) -> None:
    """Follow a job's progress live until it ends (exit 1 unless it succeeds)."""
    sys.exit(watch_job(Client(api_url, token), job_id))


def watch_job(client: Client, job_id: str) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)

    async def follow() -> dict[str, Any]:
        last: dict[str, Any] = {}
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[files]} files  {task.fields[rate]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("Pending", total=100, files="-", rate="")
            while True:  # the API ends long streams with `reconnect`: follow on with a new one
                async for event, data in client.events(f"/jobs/{job_id}/events"):
                    if event == "deleted":
                        return {"phase": "Deleted"}
                    if event in ("forbidden", "error"):
                        raise click.ClickException(data.get("message") or f"the event stream ended: {event}")
                    if event == "reconnect":
                        break
                    last = data
                    progress = data.get("progress") or {}
                    bar.update(task, completed=progress.get("percent") or 0,
                               description=data.get("phase") or "Pending",
                               files=progress.get("files") or "-", rate=progress.get("throughput") or "")
                    if event == "end":
                        if data.get("phase") == "Succeeded":
                            bar.update(task, completed=100)
                        return last

    final = run(follow())
    phase = final.get("phase")
    message = final.get("message") or ""
    console.print(f"{phase}{': ' + message if message else ''}")
    return 0 if phase == "Succeeded" else 1


COMMANDS = (submit, get, list_jobs, results, cancel, rerun, watch)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
