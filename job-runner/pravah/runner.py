"""What a runner pod runs: one shard of a PravahJob.

The shard's files are cut into deterministic batches. Each finished batch's partial result
and file records are sent to the operator, which stores them in PostgreSQL in one
transaction, so a retried pod skips what is done and nothing is counted twice. The shard
that finishes last merges every partial into the result document and writes it to the
output storage. The runner holds no database credentials (see pravah.reporting).

Exit codes (the Job's podFailurePolicy relies on them): 0 done, 3 bad spec or input that
a retry cannot fix, anything else is retried.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import pravah_engine
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pravah.results import write_checksum_manifest
from pravah.sharding import FileEntry, shard_files
from pravah.spec import PravahJobSpec, describe_errors
from pravah.storage import Output, Source, inside_mounts
from pravah.reporting import OperatorReports

EXIT_BAD_INPUT = 3
EXIT_TERMINATED = 128 + signal.SIGTERM
PROGRESS_SECONDS = 1.0
log = logging.getLogger("pravah.runner")


class BadInput(Exception):
    """A problem in the job itself: retrying the pod cannot help."""


class RunnerContext(BaseSettings):
    """Everything the operator tells a runner pod, through its environment."""

    model_config = SettingsConfigDict(env_prefix="PRAVAH_")
    job_uid: str
    job_name: str
    job_namespace: str = "default"
    spec: str = Field(description="The PravahJob spec as JSON.")
    shards: int = Field(ge=1)
    shard: int = Field(ge=0, validation_alias="JOB_COMPLETION_INDEX")
    threads: int = Field(ge=1)
    report_url: str = Field(description="The operator's report endpoint.")
    report_token_file: Path = Field(description="The projected service-account token for it.")
    source_dir: Path = Path("/data/source")
    output_dir: Path = Path("/data/output")
    scratch_dir: Path = Path("/tmp/pravah")
    batch_files: int = Field(default=4096, ge=1, description="Files per stored batch: the unit of resumption.")
    batch_bytes: int = Field(default=256 << 20, ge=1, description="Bytes per stored batch.")


def plan_batches(files: list[FileEntry], max_files: int, max_bytes: int) -> list[list[FileEntry]]:
    """Consecutive groups of a shard's files, the same on every attempt."""
    batches: list[list[FileEntry]] = []
    current: list[FileEntry] = []
    size = 0
    for entry in files:
        if current and (size + entry[1] > max_bytes or len(current) >= max_files):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry[1]
    if current:
        batches.append(current)
    return batches


def merge_all(op: str, partials: list[str]) -> str:
    """Pairwise tree merge: each partial is parsed O(log n) times, not n times."""
    while len(partials) > 1:
        merged = [pravah_engine.merge(op, a, b) for a, b in zip(partials[::2], partials[1::2])]
        partials = merged + ([partials[-1]] if len(partials) % 2 else [])
    return partials[0]


def relocate_paths(value: Any, local_prefix: str, display_prefix: str, output: Output | None = None) -> Any:
    """Replace this pod's local paths in a result document with what users know them by."""
    if isinstance(value, dict):
        return {key: relocate_path(key, item, local_prefix, display_prefix, output)
                if isinstance(item, str) else relocate_paths(item, local_prefix, display_prefix, output)
                for key, item in value.items()}
    if isinstance(value, list):
        return [relocate_paths(item, local_prefix, display_prefix, output) for item in value]
    return value


def relocate_path(key: str, value: str, local_prefix: str, display_prefix: str, output: Output | None) -> str:
    if key in ("path", "source") and value.startswith(local_prefix):
        return display_prefix + value[len(local_prefix):]
    if key == "path" and output is not None and value.startswith(str(output.local_dir) + "/"):
        return output.display_path(value)
    return value


class ShardRunner:
    def __init__(self, context: RunnerContext, reports: OperatorReports):
        self.context = context
        self.reports = reports
        try:
            self.spec = PravahJobSpec.model_validate_json(context.spec)
        except ValidationError as exc:
            raise BadInput("invalid spec: " + "; ".join(describe_errors(exc, "spec"))) from None
        if self.spec.output is None:
            raise BadInput("spec.output is required to run on the cluster")
        self.op = self.spec.operation.type
        try:
            source_dir, output_dir = inside_mounts(context.source_dir, context.output_dir)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        self.source = Source(self.spec, source_dir, context.scratch_dir / context.job_uid)
        self.output = Output(self.spec.output, output_dir, context.scratch_dir / context.job_uid)
        # The engine honours the cgroup CPU quota (v1 cfs_quota_us and v2 cpu.max) and affinity.
        self.threads = min(context.threads, pravah_engine.threads_available())

    def engine_options(self) -> dict[str, Any]:
        options = self.spec.operation.engine_options()
        if self.op == "convert":
            options["output_dir"] = str(self.output.local_dir / "parquet")
        return options

    async def run(self) -> None:
        shard = self.context.shard
        try:
            files, scan_errors = await self.source.list()
        except FileNotFoundError as exc:
            raise BadInput(str(exc)) from None
        mine = shard_files(files, shard, self.context.shards)
        batches = plan_batches(mine, self.context.batch_files, self.context.batch_bytes)
        log.info("shard %d/%d: %d files, %d bytes, %d batches, %d threads", shard, self.context.shards,
                 len(mine), sum(size for _, size in mine), len(batches), self.threads)
        await self.reports.start_shard(len(mine), sum(size for _, size in mine), self.threads)
        if shard == 0 and scan_errors:
            await self.reports.save_scan_errors(scan_errors)
        finished = await self.reports.finished_batches()
        done = [sum(counts[i] for counts in finished.values()) for i in range(3)]
        if finished:
            log.info("resuming: %d of %d batches already stored", len(finished), len(batches))
        pending = [(index, batch) for index, batch in enumerate(batches) if index not in finished]
        prefetch = asyncio.create_task(self.source.fetch(pending[0][1])) if pending else None
        for position, (index, batch) in enumerate(pending):
            await prefetch
            if position + 1 < len(pending):
                prefetch = asyncio.create_task(self.source.fetch(pending[position + 1][1]))
            partial = await self.run_batch(batch, done)
            errors = self.batch_errors(partial)
            await self.reports.save_batch(index, batch, partial, errors)
            self.source.release(batch)
            done = [done[0] + len(batch), done[1] + sum(size for _, size in batch), done[2] + len(errors)]
        if await self.reports.finish_shard():
            await self.merge()

    def batch_errors(self, partial: str) -> list[dict[str, Any]]:
        document = json.loads(pravah_engine.finalize(self.op, partial))
        return document["errors"]

    async def run_batch(self, batch: list[FileEntry], done: list[int]) -> str:
        """Run the engine on one batch, heartbeating progress; a lost operator only delays it."""
        run = pravah_engine.start(self.op, json.dumps(self.engine_options()), batch, self.threads,
                                  root=str(self.source.local_root), follow_symlinks=self.spec.followSymlinks)
        while True:
            try:
                partial = await asyncio.to_thread(run.wait, PROGRESS_SECONDS)
            except asyncio.CancelledError:
                run.cancel()
                raise
            progress = run.progress()
            try:
                await self.reports.report_progress(done[0] + progress["files_done"],
                                                   done[1] + progress["bytes_done"], done[2] + progress["errors"])
            except Exception as exc:  # progress is best effort: the batch itself is what counts
                log.warning("progress not recorded (%s); continuing", exc.__class__.__name__)
            if partial is not None:
                return partial

    async def merge(self) -> None:
        """Merge every shard's partials into the result and publish it."""
        partials, scan_errors = await self.reports.merge_input()
        document = json.loads(pravah_engine.finalize(self.op, merge_all(self.op, partials)))
        document["errors"] = sorted(document["errors"] + scan_errors, key=lambda e: e["path"])
        document = relocate_paths(document, str(self.source.local_root) + "/", self.source.display_prefix(),
                                  self.output)
        document["threads"] = self.threads
        document["shards"] = self.context.shards
        self.output.local_dir.mkdir(parents=True, exist_ok=True)
        names = ["result.json"]
        if self.op == "checksum":
            names.append(self.write_manifest(document))
        if self.op == "convert":
            names += self.converted_files()
        (self.output.local_dir / "result.json").write_text(json.dumps(document, indent=2) + "\n")
        await self.output.publish(names)
        await self.reports.save_result(document, self.output.uri("result.json"))
        log.info("merged %d partials: %d files, %d errors", len(partials), document["files"],
                 len(document["errors"]))

    def converted_files(self) -> list[str]:
        root = self.output.local_dir
        return [str(path.relative_to(root)) for path in sorted((root / "parquet").rglob("*.parquet"))]

    def write_manifest(self, document: dict[str, Any]) -> str:
        """The manifest lists paths relative to the source root, as the result does."""
        name = write_checksum_manifest(document, self.output.local_dir)
        document["result"]["manifest"] = self.output.uri(name)
        return name


def configure_logging() -> io.StringIO:
    """Log to stderr (the pod log) and keep a copy that the operator archives in PostgreSQL."""
    archive = io.StringIO()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for stream in (sys.stderr, archive):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    return archive


async def run_shard(context: RunnerContext, archive: io.StringIO) -> int:
    # The runner is its container's PID 1, which the kernel shields from signals it has no
    # handler for: without this, a deleted pod or a cancelled job would run on until the
    # grace period ends in SIGKILL.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    async with OperatorReports(context.report_url, context.report_token_file) as reports:
        try:
            await ShardRunner(context, reports).run()
            status = 0
        except asyncio.CancelledError:
            log.warning("stopped by SIGTERM; a retry resumes after the last stored batch")
            status = EXIT_TERMINATED
        except BadInput as exc:
            log.error("bad input: %s", exc)
            status = EXIT_BAD_INPUT
        except Exception:
            log.exception("shard failed; the Job will retry it")
            status = 1
        try:
            await reports.save_log(archive.getvalue())
        except Exception as exc:
            log.warning("could not archive the log: %s", exc)
        return status


def main() -> None:
    archive = configure_logging()
    try:
        context = RunnerContext()
    except ValidationError as exc:
        log.error("runner environment is incomplete: %s", "; ".join(describe_errors(exc)))
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(asyncio.run(run_shard(context, archive)))
