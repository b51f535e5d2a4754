"""What a runner pod runs: one shard of a PravahJob.

The job's source is listed once: the runner that claims the listing first lists it (the
others wait), plans the shards and stores that list through the operator; every shard and every
retry reads its own files from the stored list, so a file added later is not in the job and
a file whose size changed since is an error record, never counted twice. The shard's files
are cut into deterministic batches. Each finished batch's outputs are written to the output
storage, then its partial result and file records are sent to the operator, which stores
them in PostgreSQL in one transaction, so a retried pod skips what is done and nothing is
counted twice; a batch is stored while the engine reads the next one. The shard that
finishes last merges every partial into the result document, judges the spec's checks on
it, and writes it to the output storage. The runner holds no database credentials (see
pravah.reporting).

Exit codes (the Job's podFailurePolicy relies on them): 0 done, 3 bad spec or input that
a retry cannot fix, anything else is retried.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import logging
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

import pravah_engine
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pravah import checks
from pravah.logs import LogSettings, add_record_fields, setup_logging
from pravah import reuse
from pravah.pipeline import BATCH_BYTES, BATCH_FILES, Engine, Merge, Progress, plan_batches
from pravah.results import (ERROR_SAMPLES, FILE_LISTS, Spool, manifest_line, manifest_name, merged, summarize,
                            write_streamed)
from pravah.sharding import FileEntry, assign, list_digest
from pravah.spec import PravahJobSpec, describe_errors
from pravah.storage import Output, Source, inside_mounts
from pravah.reporting import EXIT_BAD_INPUT, OperatorReports

EXIT_TERMINATED = 128 + signal.SIGTERM
PROGRESS_SECONDS = 1.0
LISTING_PAGE = 10_000
LISTING_WAIT_SECONDS = 2.0
INLINE_RESULT_BYTES = 1 << 20  # a result up to this size is also kept for the REST API
MERGE_PAGE = 16  # partials per request: each can list a batch's files
SKIPPED_PAGE = 1_600  # error records of unread files per request
log = logging.getLogger("pravah.runner")


class BadInput(Exception):
    """A problem in the job itself: retrying the pod cannot help."""


class RunnerContext(BaseSettings):
    """Everything the operator tells a runner pod, through its environment."""

    model_config = SettingsConfigDict(env_prefix="PRAVAH_")
    job_uid: str = Field(description="The PravahJob's uid: the key of its records.")
    job_name: str = Field(description="The PravahJob's name.")
    job_namespace: str = Field(default="default", description="The PravahJob's namespace.")
    spec: str = Field(description="The PravahJob spec as JSON.")
    shards: int = Field(ge=1, description="How many shards the job's files are split into.")
    shard: int = Field(ge=0, validation_alias="JOB_COMPLETION_INDEX",
                       description="This pod's shard (the Indexed Job sets it).")
    threads: int = Field(ge=1, description="Engine worker threads (the pod's whole CPUs).")
    report_url: str = Field(description="The operator's report endpoint.")
    report_token_file: Path = Field(description="The projected service-account token for it.")
    source_dir: Path = Field(default=Path("/data/source"), description="A volume source's directory in its mount.")
    output_dir: Path = Field(default=Path("/data/output"), description="A volume output's directory in its mount.")
    scratch_dir: Path = Field(default=Path("/tmp/pravah"),
                              description="Local space: outputs before upload, the merge.")
    batch_files: int = Field(default=BATCH_FILES, ge=1, description="Files per stored batch: the unit of resumption.")
    batch_bytes: int = Field(default=BATCH_BYTES, ge=1, description="Bytes per stored batch.")
    log: LogSettings = Field(default_factory=LogSettings, description="How the log is written.")


async def paged(fetch: Callable[[Any, int], Awaitable[list[Any]]], after: Any, limit: int,
                cursor: Callable[[Any], Any]) -> AsyncIterator[Any]:
    """Every row of a list the operator serves a page at a time, each page after the `cursor` of
    the last row seen. A page shorter than `limit` is the last: no request is made only to learn
    that the list has ended (the operator's pages are SQL `LIMIT`s)."""
    while True:
        page = await fetch(after, limit)
        for row in page:
            yield row
        if len(page) < limit:
            return
        after = cursor(page[-1])


def shard_spool(shard: int) -> str:
    return f"shard-{shard}"


def disk_use(directory: Path) -> int:
    """Bytes of the files under `directory` (0 when it does not exist)."""
    return sum(entry.stat().st_size for entry in directory.rglob("*") if entry.is_file() and not entry.is_symlink())


def changed_record(path: str, how: str) -> dict[str, Any]:
    """An error record for a file that is no longer what the job's list says."""
    return {"path": path, "reason": f"changed during the job: {how}", "skipped": True}


def output_paths(document: dict[str, Any]) -> list[str]:
    """The files a finished batch wrote (convert's Parquet files)."""
    return [output["path"] for output in document["result"].get("outputs", [])]


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
    def __init__(self, context: RunnerContext, reports: OperatorReports, logs: LogArchive):
        self.context = context
        self.reports = reports
        self.logs = logs
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
        self.source_dir = source_dir
        self.scratch_dir = context.scratch_dir / context.job_uid
        self.peak_scratch = 0  # bytes: S3 sources are read in place, so only outputs waiting for upload count
        self.source = Source(self.spec, source_dir, self.scratch_dir)
        self.output = Output(self.spec.output, output_dir, self.scratch_dir)
        # An incremental job keeps one partial per file, for the runs that build on it.
        self.per_file = self.spec.incremental is not None
        self.reuse: dict[str, Any] | None = None
        self.versions: dict[str, str | None] = {}
        # The engine honours the cgroup CPU quota (v1 cfs_quota_us and v2 cpu.max) and affinity.
        self.threads = min(context.threads, pravah_engine.threads_available())
        self.engine = Engine(self.op, self.engine_options(), self.threads, self.source.engine_root(),
                             self.spec.followSymlinks, poll_seconds=PROGRESS_SECONDS)

    def engine_options(self) -> dict[str, Any]:
        options = self.spec.operation.engine_options()
        if self.op == "convert":
            options["output_dir"] = str(self.output.local_dir / "parquet")
        return options

    async def run(self) -> None:
        shard = self.context.shard
        self.reuse = await self.reports.reuse()
        listing = await self.job_listing()
        mine = await self.listed_files()
        batch_files = min(self.context.batch_files, reuse.PER_FILE_BATCH_FILES) if self.per_file \
            else self.context.batch_files
        batches = plan_batches(mine, batch_files, self.context.batch_bytes)
        log.info("shard %d/%d: %d files, %d bytes, %d batches, %d threads (list of %d files, sha256 %s)",
                 shard, self.context.shards, len(mine), listing["shard_bytes"], len(batches), self.threads,
                 listing["files"], listing["digest"])
        await self.reports.start_shard(len(mine), listing["shard_bytes"], self.threads)
        finished = await self.reports.finished_batches()
        progress = Progress(len(mine), listing["shard_bytes"],
                            [sum(counts[i] for counts in finished.values()) for i in range(3)])
        if finished:
            log.info("resuming: %d of %d batches already stored", len(finished), len(batches))
        pending = [(index, batch) for index, batch in enumerate(batches) if index not in finished]
        # The only shard, starting afresh, folds its batches as it reads them: its merge then
        # need not fetch back and parse again every partial it stored.
        held = self.merge_area() if self.context.shards == 1 and not finished and self.reuse is None else None
        # A batch is stored while the engine reads the next one, so the engine does not wait on
        # the upload and the operator; one store at a time keeps the batches stored in order.
        storing: asyncio.Task | None = None
        try:
            for index, batch in pending:
                unchanged, changed = await self.split_changed(batch)
                partial, file_partials = await self.read_batch(unchanged, progress)
                self.peak_scratch = max(self.peak_scratch, disk_use(self.scratch_dir))
                finished_batch = held.add(shard_spool(shard), partial, self.relocated) if held \
                    else json.loads(pravah_engine.finalize(self.op, partial))
                errors = finished_batch["errors"] + changed
                progress.finished(batch, len(errors))
                if storing is not None:
                    await storing
                storing = asyncio.create_task(self.store_batch(index, batch, partial, finished_batch, errors,
                                                               file_partials))
            if storing is not None:
                await storing
        finally:
            if storing is not None and not storing.done():  # the shard stops: a retry stores that batch again
                storing.cancel()
                await asyncio.gather(storing, return_exceptions=True)
        log.info("peak scratch disk use: %d bytes", self.peak_scratch)
        await self.logs.save()
        if await self.reports.finish_shard():
            await self.merge(listing, held)
        elif held is not None:
            held.close()

    async def store_batch(self, index: int, batch: list[FileEntry], partial: str, finished_batch: dict[str, Any],
                          errors: list[dict[str, Any]], file_partials: list) -> None:
        """The batch's outputs first, then its record: a stored batch never lacks an output."""
        await self.output.store_outputs(output_paths(finished_batch))
        await self.reports.save_batch(index, batch, partial, errors, file_partials)

    async def job_listing(self) -> dict[str, Any]:
        """The job's file list: stored already, listed here, or waited for from the runner listing it."""
        waiting_for = None
        while (listing := await self.reports.listing()) is None:
            claim = await self.reports.claim_listing()
            if claim["claimed"]:
                return await self.store_listing()
            if claim["holder"] != waiting_for:
                waiting_for = claim["holder"]
                log.info("waiting for pod %s to list the source", waiting_for)
            await asyncio.sleep(LISTING_WAIT_SECONDS)
        return listing

    async def store_listing(self) -> dict[str, Any]:
        """List the source, plan the shards, and store both (the first committed list stays the job's).

        A re-run keeps only the files its earlier job must read again; an incremental run drops
        the files unchanged since its baseline and has the baseline's partials of them copied."""
        try:
            files, scan_errors = await self.source.list()
        except FileNotFoundError as exc:
            raise BadInput(str(exc)) from None
        listing = str(uuid.uuid4())
        plan = await self.reuse_plan(files) if self.reuse else None
        if plan is not None:
            files = [(entry.local, entry.bytes) for entry in plan.read]
            for page, start in enumerate(range(0, len(plan.reused), LISTING_PAGE)):
                await self.reports.stage_reused(listing, page, plan.reused[start:start + LISTING_PAGE])
            log.info("%s over %s: %s", self.reuse["mode"], self.reuse["name"] or "no baseline yet",
                     ", ".join(f"{count} {kind}" for kind, count in plan.counts.items()))
        versions = {entry.local: entry.version for entry in plan.read} if plan else {}
        rows = ((*row, versions.get(row[2])) for row in assign(files, self.context.shards))
        for page in itertools.count():
            if not (chunk := list(itertools.islice(rows, LISTING_PAGE))):
                break
            await self.reports.stage_listing(listing, page, chunk)
        stored = await self.reports.commit_listing(listing, len(files), sum(size for _, size in files),
                                                   list_digest(files), scan_errors, plan and plan.counts)
        log.info("listed %d files%s", len(files), "" if stored["won"] else "; another runner's list was stored first")
        return stored

    async def reuse_plan(self, files: list[FileEntry]) -> reuse.Plan:
        """Which of the listed files this job reads, and which partials it reuses."""
        current = [reuse.Listed(self.display(path), path, size, self.source.version(path) if self.per_file else None)
                   for path, size in files]
        if self.reuse["uid"] is None:  # an incremental run without a baseline yet reads everything
            return reuse.incremental_plan(current, {})
        if self.reuse["mode"] == "incremental":
            baseline = {path: reuse.Before(size, version, failed) async for path, size, version, failed
                        in paged(self.reports.baseline_files, "", LISTING_PAGE, itemgetter(0))}
            return reuse.incremental_plan(current, baseline)
        prefix, display_prefix = self.earlier_prefix(), self.source.display_prefix()
        redo = {relocate_path("path", path, prefix, display_prefix, None)
                async for path in paged(self.reports.rerun_paths, "", LISTING_PAGE, lambda path: path)}
        return reuse.rerun_plan(current, redo, self.reuse["good_files"])

    def display(self, path: str) -> str:
        """A listed file as users see it: the key that matches it across jobs."""
        return relocate_path("path", path, str(self.source.local_root) + "/", self.source.display_prefix(), None)

    def earlier_prefix(self) -> str:
        """Where the earlier job's runners saw the source (S3 objects are read from a scratch
        directory of that job's own)."""
        earlier = Source(self.spec, self.source_dir, self.context.scratch_dir / self.reuse["uid"])
        return str(earlier.local_root) + "/"

    async def listed_files(self) -> list[FileEntry]:
        """This shard's files, page by page from the stored list."""
        files: list[FileEntry] = []
        async for _, path, size, version in paged(self.reports.listed_files, -1, LISTING_PAGE, itemgetter(0)):
            files.append((path, size))
            if version is not None:
                self.versions[path] = version
        return files

    async def split_changed(self, batch: list[FileEntry]) -> tuple[list[FileEntry], list[dict[str, Any]]]:
        """The batch's files still as listed, and error records for those changed or gone since."""
        unchanged, changed = [], []
        sizes = await self.source.sizes_now(batch)
        for path, size in batch:
            now = sizes[path]
            if now is None:
                changed.append(changed_record(path, "removed since it was listed"))
            elif now == size:
                unchanged.append((path, size))
            else:
                changed.append(changed_record(path, f"listed with {size} bytes, now {now} bytes"))
        return unchanged, changed

    async def read_batch(self, batch: list[FileEntry],
                         progress: Progress) -> tuple[str, list[tuple[str, int, str | None, str, bool]]]:
        """The batch's partial, and for an incremental job each file's own partial as stored:
        (path as users see it, bytes, version, partial, failed)."""
        async def heartbeat(batch_progress: dict[str, int]) -> None:
            now = progress.now(batch_progress)
            try:
                await self.reports.report_progress(now["files_done"], now["bytes_done"], now["errors"])
            except Exception as exc:  # progress is best effort: the batch itself is what counts
                log.warning("progress not recorded (%s); continuing", exc.__class__.__name__)

        try:
            partial, singles = await self.engine.read_batch(self.source.engine_files(batch), heartbeat,
                                                            per_file=self.per_file)
        except ValueError as exc:  # the engine refused an option (e.g. a pattern): a retry gives the same
            raise BadInput(f"spec.operation: {exc}") from None
        records = [(self.display(path), size, self.versions.get(path), json.dumps(self.relocated(single)),
                    reuse.has_failed(single)) for (path, size), single in zip(batch, singles)]
        return partial, records

    def merge_area(self) -> Merge:
        """An empty merge, its spools on the scratch disk."""
        work = self.context.scratch_dir / self.context.job_uid / "merge"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return Merge(self.op, work)

    async def merge(self, listing: dict[str, Any], held: Merge | None = None) -> None:
        """Merge every shard's partials into the result and publish it, with bounded memory:
        partials are fetched a page at a time (unless `held` already folded them all), their
        aggregate parts merged in memory and their errors and per-file lists spooled to disk
        per shard, then streamed, in order, into result.json (and the checksum manifest)."""
        merge = held if held is not None else await self.stored_partials()
        await self.merge_reused(merge)
        skipped = merge.spool("skipped")
        async for error in paged(self.reports.skipped_errors, "", SKIPPED_PAGE, itemgetter("path")):
            skipped.add("errors", (self.relocated(error),))
        merge.close()
        document = await merge.document(self.engine)
        document.update(shards=self.context.shards,
                        listing={"files": listing["files"], "bytes": listing["bytes"], "sha256": listing["digest"]})
        if self.reuse:
            target = await self.reports.reuse()  # now with what the job's listing found
            document["reuse"] = {"mode": target["mode"], "of": target["name"], **(target["counts"] or {})}
        if self.spec.checks:
            document["checks"] = checks.judge(self.spec.checks, document["result"])
            log.info("%s", checks.verdict(checks.summarize(document["checks"])))
        summary = await self.publish(document, list(merge.spools.values()))
        written = self.output.local_dir / "result.json"
        inline = written.read_text() if written.stat().st_size <= INLINE_RESULT_BYTES else None
        shutil.rmtree(merge.work, ignore_errors=True)
        log.info("merged %d shards: %d files, %d errors", self.context.shards, document["files"], summary["errors"])
        await self.logs.save()
        await self.reports.save_result(summary, self.output.uri("result.json"), inline)

    async def stored_partials(self) -> Merge:
        """Every shard's stored partials, folded in (shard, batch) order."""
        merge = self.merge_area()
        async for shard, batch, partial in paged(self.reports.merge_input, (-1, -1), MERGE_PAGE, itemgetter(0, 1)):
            merge.add(shard_spool(shard), partial, self.relocated)
        return merge

    async def merge_reused(self, merge: Merge) -> None:
        """Add what this job reuses: an incremental run its baseline's partials of unchanged
        files; a re-run its earlier job's partials (without the failed files it read again)
        and, when that job was incremental, the partials it reused."""
        if self.reuse is None or self.reuse["uid"] is None:
            return
        # an incremental job's unchanged files; those a re-run job had itself reused
        async for _, partial in paged(self.reports.merge_reused, "", MERGE_PAGE, itemgetter(0)):
            merge.add("reused", partial, self.relocated)
        if self.reuse["mode"] == "incremental":
            return
        prefix = self.earlier_prefix()
        relocate = lambda value: relocate_paths(value, prefix, self.source.display_prefix(), self.output)  # noqa: E731
        async for shard, _, partial, failed, failed_bytes in paged(self.reports.merge_rerun, (-1, -1), MERGE_PAGE,
                                                                   itemgetter(0, 1)):
            merge.add(f"rerun-{shard}", reuse.without_failed(partial, failed, failed_bytes), relocate)

    def relocated(self, value: dict[str, Any]) -> dict[str, Any]:
        return relocate_paths(value, str(self.source.local_root) + "/", self.source.display_prefix(), self.output)

    async def publish(self, document: dict[str, Any], spools: list[Spool]) -> dict[str, Any]:
        """Write result.json (and the manifest) from the spools, upload them; return the summary."""
        self.output.local_dir.mkdir(parents=True, exist_ok=True)
        errors, samples, names = 0, [], ["result.json"]

        def count_error(error: dict[str, Any]) -> None:
            nonlocal errors
            errors += 1
            if len(samples) < ERROR_SAMPLES:
                samples.append({key: error[key] for key in ("path", "reason", "line") if key in error})

        streams: dict[tuple[str, ...], Any] = {("errors",): merged(spools, "errors")}
        callbacks = {("errors",): count_error}
        if self.op in FILE_LISTS:
            streams[("result", FILE_LISTS[self.op])] = merged(spools, "files")
        with contextlib.ExitStack() as stack:
            if self.op == "checksum":
                names.append(manifest_name(document))
                document["result"]["manifest"] = self.output.uri(names[-1])
                manifest = stack.enter_context((self.output.local_dir / names[-1]).open("w"))
                callbacks[("result", "files")] = lambda entry: manifest.write(manifest_line(entry))
            out = stack.enter_context((self.output.local_dir / "result.json").open("w"))
            write_streamed(out, document, streams, callbacks)
        await self.output.publish(names)
        return {"files": document["files"], "bytes": document["bytes"], "errors": errors,
                "summary": summarize(document, errors), "error_samples": samples}


class LogArchive:
    """The runner's log, kept for the operator's archive. It is sent before each report that
    can finish the job (the job is Succeeded as soon as its result is recorded, while its pods
    are still exiting), and once more at exit if anything was logged since. Best effort: a log
    the operator does not take (e.g. over its body limit) is no reason to fail the shard."""

    def __init__(self, text: io.StringIO, reports: OperatorReports):
        self.text = text
        self.reports = reports
        self.sent: int | None = None  # length of the log last sent

    async def save(self) -> None:
        log_text = self.text.getvalue()
        if len(log_text) == self.sent:
            return
        try:
            await self.reports.save_log(log_text)
        except Exception as exc:
            log.warning("could not archive the log: %s", exc)
            return
        self.sent = len(log_text)


def configure_logging() -> io.StringIO:
    """Log to stderr (the pod log) and keep a copy that the operator archives in PostgreSQL."""
    archive = io.StringIO()
    try:
        log_format = LogSettings().log_format
    except ValidationError:
        log_format = "text"  # reading RunnerContext then names the bad value
    setup_logging(log_format, streams=(sys.stderr, archive))
    return archive


async def run_shard(context: RunnerContext, archive: io.StringIO) -> int:
    # The runner is its container's PID 1, which the kernel shields from signals it has no
    # handler for: without this, a deleted pod or a cancelled job would run on until the
    # grace period ends in SIGKILL.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    reports = OperatorReports(context.report_url, context.report_token_file)
    logs = LogArchive(archive, reports)
    try:
        await ShardRunner(context, reports, logs).run()
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
        await logs.save()
    except asyncio.CancelledError:
        pass  # stopped while leaving: what it did is reported, and its exit status stands
    return status


def main(argv: list[str] | None = None) -> None:
    """`pravah-runner`, the runner container's command (also `pravah runner`). It imports
    only what a shard needs, not the whole command-line tool: a pod starts its work sooner."""
    argparse.ArgumentParser(
        prog="pravah-runner", description="Run one shard of a PravahJob, as a runner pod does.",
        epilog="Reads its job from PRAVAH_* environment variables set by the operator (PRAVAH_JOB_UID, "
               "PRAVAH_SPEC, PRAVAH_SHARDS, PRAVAH_THREADS, PRAVAH_REPORT_URL, ...) and its shard from "
               "JOB_COMPLETION_INDEX. Exit code 3 means bad input: not retried.").parse_args(argv)
    archive = configure_logging()
    try:
        context = RunnerContext()
    except ValidationError as exc:
        log.error("runner environment is incomplete: %s", "; ".join(describe_errors(exc)))
        sys.exit(EXIT_BAD_INPUT)
    add_record_fields(logging.getLogger().handlers, job=context.job_name, namespace=context.job_namespace,
                      shard=context.shard)
    sys.exit(asyncio.run(run_shard(context, archive)))
