"""The `pravah` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, get_args

import click
import yaml
from pydantic import ValidationError

from pravah import checks, render
from pravah.client_cli import register as register_client_commands
from pravah.dev import dev
from pravah.local import JobFailed, LocalJob, Objects, execute
from pravah.results import write_document
from pravah.spec import FORMATS, OPERATIONS, BadRowPolicy, ChecksFile, Encoding, Location, OperationSpec, PravahJobManifest, describe_errors, refuse_unfit_checks

EXIT_FAILED = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pravah")
def cli() -> None:
    """Pravah processes large numbers of files fast: locally with `pravah run`, or on
    Kubernetes as PravahJob resources.

    \b
    Examples:
      pravah run examples/data --op stats
      pravah run logs/ --op grep --pattern 'ERROR .*timeout' --include '**/*.log'
      pravah run data/ --op checksum --algorithm blake3 --output out/
      pravah run s3://bucket/logs/ --op count --endpoint http://127.0.0.1:9000
      pravah run -f examples/stats-volume.yaml --json
    """


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int]:
    if value is None:
        return (0, 1)
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected INDEX/COUNT, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"index must be in 0..COUNT-1 and COUNT >= 1, got {value}")
    return (index, count)


def parse_quantiles(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("expected numbers between 0 and 1 separated by commas, e.g. 0.5,0.99") from None


class SourceType(click.ParamType):
    """A local path that exists, or an `s3://bucket/prefix` URL (kept as a string)."""

    name = "path"
    local = click.Path(exists=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, str) and value.startswith("s3://"):
            return value
        return self.local.convert(value, param, ctx)


def parse_header_rows(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("expected a number of rows or auto") from None


@cli.command()
@click.argument("path", required=False, type=SourceType())
@click.option("-f", "--file", "manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run a PravahJob manifest locally (its volume path is read relative to the manifest).")
@click.option("--op", type=click.Choice(OPERATIONS), help="Operation to run on every file.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable), e.g. '**/*.csv'.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable); wins over --include.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (loops are detected and reported).")
@click.option("--endpoint", metavar="URL", help="s3:// PATH: the S3-compatible server, e.g. http://127.0.0.1:9000 "
                                                "[default: AWS]. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.")
@click.option("--region", metavar="REGION", help="s3:// PATH: the bucket's region [default: AWS_REGION].")
@click.option("--threads", type=click.IntRange(min=1), help="Worker threads [default: the CPUs this process may use].")
@click.option("--pattern", metavar="RE", help="grep: regular expression to search for.")
@click.option("--ignore-case", "-i", is_flag=True, help="grep: match case-insensitively.")
@click.option("--max-matches", type=click.IntRange(min=0), help="grep: matching lines kept per file [default: 100].")
@click.option("--algorithm", type=click.Choice(["sha256", "blake3", "xxh3"]), help="checksum: digest [default: sha256].")
@click.option("--decompressed", is_flag=True, help="checksum: hash the content of compressed files, not the stored bytes.")
@click.option("--format", "file_format", type=click.Choice(FORMATS["stats"]),
              help="stats/convert: read every file as this format [default: auto, by name then content].")
@click.option("--delimiter", metavar="CHAR", help="stats/convert: field delimiter, '\\t' for TSV, or auto to sniff it "
                                                "per file [default: ,].")
@click.option("--quote", metavar="CHAR", help="stats/convert: quote character, '' for none, or auto [default: \"].")
@click.option("--escape", metavar="CHAR", help="stats/convert: escape character inside quotes, e.g. '\\' "
                                              "[default: none, quotes are doubled].")
@click.option("--comment", metavar="CHAR", help="stats/convert: skip lines starting with CHAR, e.g. '#'.")
@click.option("--skip-rows", type=click.IntRange(min=0), help="stats/convert: lines to skip before the header.")
@click.option("--header-rows", metavar="N|auto", callback=parse_header_rows,
              help="stats/convert: rows naming the columns (names of several joined with '.'), or auto to sniff.")
@click.option("--footer-rows", type=click.IntRange(min=0), help="stats/convert: lines to drop at the end of each file.")
@click.option("--encoding", type=click.Choice(get_args(get_args(Encoding)[0])),
              help="stats/convert: text encoding [default: auto, UTF-8 or UTF-16 by its byte-order mark].")
@click.option("--no-header", is_flag=True, help="stats/convert: the first row is data, not column names.")
@click.option("--bad-rows", type=click.Choice(get_args(get_args(BadRowPolicy)[0])),
              help="stats/convert: CSV rows of another width are skipped, padded, truncated, or fail the file "
                   "[default: skip].")
@click.option("--quantiles", callback=parse_quantiles, metavar="Q,Q", help="stats: quantiles to estimate [default: 0.5,0.9,0.99].")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for result.json, checksum manifests and converted files.")
@click.option("--max-errors", type=click.IntRange(min=0), help="Fail (exit 1) when more files than this cannot be processed.")
@click.option("--checks", "checks_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help="stats: judge the data-quality rules in FILE, a YAML `checks:` list as in "
                                   "spec.checks (in place of a manifest's); see docs/checks.md.")
@click.option("--incremental", is_flag=True, help="Keep one partial per file in the --output directory, so "
                                                   "that a later run with --since reads only what changed.")
@click.option("--since", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RESULT.json",
              help="Reuse the partials of files unchanged (path, size, modification time) since the incremental "
                   "run that wrote RESULT.json; read only new and changed files. Implies --incremental.")
@click.option("--shard", callback=parse_shard, metavar="INDEX/COUNT", help="Process only shard INDEX of COUNT (as a runner pod does).")
@click.option("--json", "as_json", is_flag=True, help="Print the result document alone on stdout.")
def run(path: Path | str | None, manifest: Path | None, op: str | None, **options: Any) -> None:
    """Run an operation over the files under PATH (or the job in a manifest). PATH may be
    s3://bucket/prefix: its objects are read in place, never copied to local disk.

    \b
    Operations:
      stats     per-column profile of CSV, TSV and NDJSON files (types, nulls, min/max,
                mean, stddev, distinct, quantiles, top values)
      count     lines, words and bytes, per file and in total
      checksum  sha256 / blake3 / xxh3 digests and a `sha256sum -c` compatible manifest
      grep      regex matches with line numbers
      convert   CSV, TSV or NDJSON to Parquet (zstd), one output per input file

    Files compressed with gzip, zstd, bzip2 or xz are read decompressed (checksum
    hashes the stored bytes unless --decompressed).

    Exit codes: 0 success (checks of severity warn may have failed: see the warning),
    1 the job failed (more bad files than --max-errors, or a check of severity error
    failed), 2 usage error.
    """
    job = job_from_manifest(manifest, options) if manifest else job_from_options(path, op, options)
    if options["checks_file"]:
        job.checks = read_checks(options["checks_file"], job.operation)
    if options["threads"]:
        job.threads = options["threads"]
    job.shard = options["shard"]
    job.incremental = job.incremental or options["incremental"] or options["since"] is not None
    job.since = options["since"]
    try:
        job.engine_options()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        with render.progress_reporter(enabled=not options["as_json"]) as on_progress:
            document = execute(job, on_progress)
        status = 0
        if document.get("checks", {}).get("warned"):
            click.echo(f"warning: {checks.verdict(checks.summarize(document['checks']))}", err=True)
    except JobFailed as failure:
        document, status = failure.document, EXIT_FAILED
        click.echo(f"error: {failure}", err=True)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if options["as_json"]:
        write_document(sys.stdout, document)
    else:
        render.summary(document)
    sys.exit(status)


@cli.command(add_help_option=False, context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def runner(args: tuple[str, ...]) -> None:
    """Run one shard of a PravahJob, as a runner pod does (`pravah-runner`; see --help)."""
    from pravah.runner import main as run_shard

    run_shard(list(args))


def source_of(path: Path | str, options: dict[str, Any]) -> Path | Objects:
    """The local directory or S3 prefix to read; --endpoint and --region only go with s3://."""
    if isinstance(path, str):
        return Objects(path, endpoint=options["endpoint"], region=options["region"])
    if options["endpoint"] or options["region"]:
        raise click.UsageError("--endpoint and --region apply to an s3://bucket/prefix PATH only")
    return path


def job_from_options(path: Path | str | None, op: str | None, options: dict[str, Any]) -> LocalJob:
    if path is None:
        raise click.UsageError("missing PATH (or use -f MANIFEST)")
    if op is None:
        raise click.UsageError("missing option '--op' (one of: " + ", ".join(OPERATIONS) + ")")
    operation: dict[str, Any] = {"type": op}
    if options["file_format"]:
        operation["format"] = options["file_format"]
    csv_options = {"delimiter": options["delimiter"], "header": False if options["no_header"] else None,
                   "headerRows": options["header_rows"], "quote": options["quote"], "escape": options["escape"],
                   "comment": options["comment"], "skipRows": options["skip_rows"],
                   "footerRows": options["footer_rows"], "encoding": options["encoding"],
                   "badRows": options["bad_rows"]}
    op_options = {
        "stats": {**csv_options, "quantiles": options["quantiles"]},
        "checksum": {"algorithm": options["algorithm"], "decompressed": options["decompressed"] or None},
        "grep": {"pattern": options["pattern"], "ignoreCase": options["ignore_case"] or None,
                 "maxMatchesPerFile": options["max_matches"]},
        "convert": csv_options,
    }.get(op)
    if op == "grep" and not options["pattern"]:
        raise click.UsageError("missing option '--pattern' (grep needs a regular expression)")
    if op_options:
        operation[op] = {key: value for key, value in op_options.items() if value is not None}
    try:
        spec = OperationSpec.model_validate(operation)
    except ValidationError as exc:
        raise click.UsageError("; ".join(describe_errors(exc, "--" + op))) from None
    return LocalJob(root=source_of(path, options), operation=spec, include=options["include"], exclude=options["exclude"],
                    follow_symlinks=options["follow_symlinks"], output_dir=options["output"],
                    max_errors=options["max_errors"])


def read_checks(path: Path, operation: OperationSpec) -> list[checks.Rule]:
    """The rules of a checks file, refused as spec.checks are: naming the field."""
    try:
        rules = ChecksFile.model_validate(yaml.safe_load(path.read_text())).checks
        refuse_unfit_checks(operation, rules, ChecksFile.__name__)
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise click.UsageError(f"{path}: " + "; ".join(describe_errors(exc))) from None
    return rules


def manifest_source(manifest: Path, source: Location) -> Path | Objects:
    """A manifest's source as run here: a volume path relative to the manifest, or the S3 prefix
    read in place with the AWS_* credentials of this shell (a credentialsSecret lives on the cluster)."""
    if source.s3 is not None:
        s3 = source.s3
        return Objects(f"s3://{s3.bucket}/{s3.prefix}", endpoint=s3.endpoint, region=s3.region)
    return manifest.parent / source.volume.path


def job_from_manifest(manifest: Path, options: dict[str, Any]) -> LocalJob:
    try:
        document = yaml.safe_load(manifest.read_text())
        parsed = PravahJobManifest.model_validate(document)
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{manifest}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise click.UsageError(f"{manifest}: " + "; ".join(describe_errors(exc))) from None
    spec = parsed.spec
    if spec.rerunOf is not None:
        raise click.UsageError(f"{manifest}: spec.rerunOf: a re-run builds on a job's records on the cluster; "
                               "locally, --since RESULT.json reads only what changed")
    output_dir = options["output"]
    if output_dir is None and spec.output is not None and spec.output.volume is not None:
        output_dir = manifest.parent / spec.output.volume.path
    return LocalJob(root=manifest_source(manifest, spec.source), operation=spec.operation,
                    include=spec.include, exclude=spec.exclude, follow_symlinks=spec.followSymlinks,
                    output_dir=output_dir, checks=spec.checks or (), incremental=spec.incremental is not None,
                    max_errors=options["max_errors"] if options["max_errors"] is not None else spec.maxErrors)


cli.add_command(dev)
register_client_commands(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
