"""The PravahJob spec: one pydantic model shared by `pravah run -f`, the operator and the CRD.

Field names are the camelCase names users write in manifests; everything that reads a
manifest goes through `PravahJobSpec.model_validate`, so a bad field is reported with its
dotted path in the same words everywhere.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Self

import pravah_engine
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from pravah.checks import MAX_CHECKS, Check, Rule

OPERATIONS = ("stats", "count", "checksum", "grep", "convert")
Operation = Literal["stats", "count", "checksum", "grep", "convert"]
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
# Kubernetes object names: Secrets and PersistentVolumeClaims are DNS subdomains; the Kueue
# queue name ends up in a label value, so it must be a DNS label.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A volume path stays inside its volume: relative, and no segment is `..`. The CRD states
# this twice: as a schema pattern (RE2 has no lookahead, hence the spelled-out segments) and
# as a CEL rule built from PARENT_SEGMENT, which the Python check below uses as well.
PARENT_SEGMENT = r"(^|/)\.\.(/|$)"
_SEGMENT = r"\.?[^/.][^/]*|\.\.[^/]+"
VOLUME_PATH = rf"^(({_SEGMENT}|\.)(/({_SEGMENT}|\.?))*)?$"
VOLUME_PATH_MESSAGE = "must be a relative path inside the volume, without '..' segments"

# Bounds shared by the Python validation and the CRD schema generated from these models.
# Every list has a maximum length and every string a maximum size, so that the API server
# can bound the cost of the CEL rules in the CRD.
MAX_GLOBS = 64
MAX_GLOB_LENGTH = 1024
PARALLELISM_RANGE = (1, 1000)
CPU_RANGE = (1, 256)

Glob = Annotated[str, Field(max_length=MAX_GLOB_LENGTH)]


def within(value: int | str, bounds: tuple[int, int], name: str, unit: str = "") -> int | str:
    """Check an int-or-'auto' field against its range (the CRD's CEL rule uses the same bounds)."""
    low, high = bounds
    if isinstance(value, int) and not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}{unit}, or 'auto'")
    return value


class SpecModel(BaseModel):
    """Base for every spec part: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class S3Location(SpecModel):
    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    prefix: str = Field(default="", max_length=1024, description="Key prefix; only keys below it are used.")
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        description="S3 endpoint URL for S3-compatible servers (MinIO, Ceph).",
    )
    region: str | None = Field(default=None, max_length=64, description="Region of the bucket.")
    credentialsSecret: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Secret in the job's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
    )


class VolumeLocation(SpecModel):
    claimName: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PersistentVolumeClaim holding the files (cluster runs).",
    )
    path: str = Field(
        default="",
        max_length=4096,
        description="Directory inside the volume, relative and without '..' segments "
                    "(locally: relative to the manifest's folder).",
        # Checked by _inside_the_volume, whose message says why; the CRD carries the pattern.
        json_schema_extra={"pattern": VOLUME_PATH},
    )

    @field_validator("path")
    @classmethod
    def _inside_the_volume(cls, path: str) -> str:
        if path.startswith("/") or re.search(PARENT_SEGMENT, path):
            raise ValueError(VOLUME_PATH_MESSAGE)
        return path


class Location(SpecModel):
    """Exactly one of `s3` or `volume`."""

    s3: S3Location | None = None
    volume: VolumeLocation | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.s3 is None) == (self.volume is None):
            raise ValueError("exactly one of s3 or volume must be set")
        return self


def _single_byte(delimiter: str) -> str:
    delimiter = delimiter.replace("\\t", "\t")
    if delimiter != AUTO and len(delimiter.encode()) != 1:
        raise ValueError("delimiter must be a single byte, e.g. ',' or '\\t', or auto")
    return delimiter


def _byte_or_none(value: str | None) -> str | None:
    if value not in (None, "", AUTO) and len(value.encode()) != 1:
        raise ValueError("must be a single byte, or empty for none")
    return value


# Sniffed from each file's first bytes (the result lists what was found under `dialects`).
AUTO = "auto"

Delimiter = Annotated[
    str, AfterValidator(_single_byte),
    Field(max_length=4, description="Field delimiter; \\t for TSV; auto to sniff it per file (one of , ; tab | :).")
]
Quote = Annotated[
    Annotated[str, Field(max_length=4)] | None, AfterValidator(_byte_or_none),
    Field(description="Quote character; empty for no quoting; auto to sniff \" or ' per file.")]
OneByte = Annotated[Annotated[str, Field(max_length=1)] | None, AfterValidator(_byte_or_none)]
Lines = Annotated[int, Field(ge=0, le=pravah_engine.MAX_TRIMMED_LINES)]
HeaderRows = Annotated[
    int | Literal["auto"] | None,
    Field(description="Rows naming the columns: 0 (none), 1, or several, whose names are joined with '.' column by "
                      "column (empty parts left out); auto to sniff 0 or 1 per file. In place of header.",
          json_schema_extra={"minimum": 0, "maximum": pravah_engine.MAX_HEADER_ROWS})]


Encoding = Annotated[
    Literal["auto", "utf-8", "utf-16le", "utf-16be", "latin-1", "windows-1252"],
    Field(description="Text encoding: auto (UTF-8, or UTF-16 where a byte-order mark says so), or one for every "
                      "file, transcoded to UTF-8 (latin-1 is read as windows-1252, its superset).")]


BadRowPolicy = Annotated[
    Literal["skip", "pad", "truncate", "fail"],
    Field(description="CSV rows whose field count differs from the header's (or the first row's): skip leaves them "
                      "out, pad fills short rows with nulls and cuts long ones, truncate cuts long rows and leaves "
                      "short ones out, each row listed in the result's badRows; fail makes the file an error record.")]

MaxBadRows = Annotated[
    int, Field(ge=0, le=pravah_engine.MAX_BAD_ROWS, description="Bad rows listed per file (all of them are counted).")]

# The engine's name of each CSV option whose name differs in the spec.
CSV_ENGINE_NAMES = {"badRows": "bad_rows", "maxBadRows": "max_bad_rows", "skipRows": "skip_rows",
                    "headerRows": "header_rows", "footerRows": "footer_rows"}


class CsvReading(SpecModel):
    """Options of the operations that read CSV: the engine knows some of them by other names."""

    delimiter: Delimiter = ","
    header: bool = Field(default=True, description="The first row names the columns (see headerRows for more).")
    headerRows: HeaderRows = None
    quote: Quote = '"'
    escape: OneByte = Field(default=None, description="Character making the next one in a quoted field literal, "
                                                      "e.g. \\ (doubled quotes are then not special); default none.")
    comment: OneByte = Field(default=None, description="Lines starting with this character are skipped, e.g. #.")
    skipRows: Lines = Field(default=0, description="Lines skipped before the header (a preamble).")
    footerRows: Lines = Field(default=0, description="Lines dropped at the end of each file (a footer).")
    encoding: Encoding = "auto"
    badRows: BadRowPolicy = "skip"
    maxBadRows: MaxBadRows = 100

    def engine_options(self) -> dict[str, Any]:
        options = {CSV_ENGINE_NAMES.get(field, field): value for field, value in self.model_dump().items()}
        if options["quote"] is None:
            options["quote"] = ""
        if options.pop("header_rows") is not None:
            options["header_rows"] = self.headerRows
            del options["header"]
        return options

    @field_validator("headerRows")
    @classmethod
    def _header_rows_range(cls, value: int | str | None) -> int | str | None:
        return value if value is None else within(value, (0, pravah_engine.MAX_HEADER_ROWS), "headerRows")

    @model_validator(mode="after")
    def _dialect_is_readable(self) -> Self:
        # The CRD defaults header to true on every stored job, so only header: false conflicts.
        if self.headerRows is not None and not self.header:
            raise ValueError("give headerRows or header, not both")
        seen: dict[str, str] = {}
        for name in ("delimiter", "quote", "escape", "comment"):
            value = getattr(self, name)
            if value in (None, "", AUTO) or (name == "escape" and value == self.quote):
                continue
            if value in "\r\n":
                raise ValueError(f"{name} must not be a line end")
            if value in seen:
                raise ValueError(f"{name} must differ from the {seen[value]}")
            seen[value] = name
        return self


class StatsOptions(CsvReading):
    quantiles: list[float] = Field(
        default=[0.5, 0.9, 0.99],
        max_length=32,
        description="Quantiles to estimate per numeric column, each in [0, 1].",
        # Checked by _in_unit_interval below; stated here so the CRD schema says the same.
        json_schema_extra={"items": {"type": "number", "minimum": 0, "maximum": 1}},
    )
    top: int = Field(default=5, ge=0, le=100, description="Most frequent values kept per column.")

    @field_validator("quantiles")
    @classmethod
    def _in_unit_interval(cls, quantiles: list[float]) -> list[float]:
        for q in quantiles:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q} is outside [0, 1]")
        return quantiles


class ChecksumOptions(SpecModel):
    algorithm: Literal["sha256", "blake3", "xxh3"] = "sha256"
    decompressed: bool = Field(
        default=False,
        description="Hash the content of compressed files (gzip, zstd, bzip2, xz) instead of their stored bytes.")


# The engine's name of each grep option.
GREP_ENGINE_NAMES = {"pattern": "pattern", "ignoreCase": "ignore_case", "maxMatchesPerFile": "max_matches_per_file"}


class GrepOptions(SpecModel):
    pattern: str = Field(min_length=1, max_length=4096, description="Regular expression (Rust regex syntax).")
    ignoreCase: bool = False
    maxMatchesPerFile: int = Field(
        default=100, ge=0, le=pravah_engine.MAX_MATCHES_PER_FILE, description="Matching lines kept per file.")

    def engine_options(self) -> dict[str, Any]:
        return {engine: getattr(self, field) for field, engine in GREP_ENGINE_NAMES.items()}

    @model_validator(mode="after")
    def _engine_accepts(self) -> Self:
        """The engine runs the pattern, so the engine judges it, with the flags it will use.

        Its message starts with the engine's option name (`grep.pattern: ...`); the error is
        reported on the matching field, so it reads spec.operation.grep.pattern everywhere.
        """
        try:
            pravah_engine.check_options("grep", json.dumps(self.engine_options()))
        except pravah_engine.UsageError as exc:
            option, _, reason = str(exc).partition(": ")
            field = next((name for name, engine in GREP_ENGINE_NAMES.items() if option == f"grep.{engine}"), None)
            if field is None:
                raise ValueError(str(exc)) from None
            error = InitErrorDetails(type="value_error", loc=(field,), input=getattr(self, field),
                                     ctx={"error": reason})
            raise ValidationError.from_exception_data(type(self).__name__, [error]) from None
        return self


class ConvertOptions(CsvReading):
    to: Literal["parquet"] = "parquet"
    compression: Literal["zstd", "snappy", "none"] = "zstd"


# How each operation reads a file, beyond its bytes: the formats it may be told to use. Files are
# otherwise read by the format their name (compression suffixes aside) or first bytes announce.
FORMATS = {"stats": ("auto", "csv", "tsv", "ndjson", "parquet"), "convert": ("auto", "csv", "tsv", "ndjson")}
Format = Literal["auto", "csv", "tsv", "ndjson", "parquet"]


def format_refusal(op: str) -> str:
    """Why a format is refused for an operation: the one message of the model and the CRD."""
    allowed = FORMATS.get(op)
    if allowed is None:
        return f"{op} reads every file as it is; format applies to " + ", ".join(FORMATS)
    return f"{op} reads " + ", ".join(allowed[1:]) + " (or auto)"


class OperationSpec(SpecModel):
    type: Operation = Field(description="The operation; only the options block of this type may be given.")
    format: Format = Field(
        default="auto",
        description="How files are read: auto (by name, then content: .csv, .tsv, .ndjson/.jsonl, .parquet, a "
                    "first `{`, Parquet's magic bytes), or one format for every file. stats and convert (which does not "
                    "read Parquet).")
    stats: StatsOptions | None = None
    checksum: ChecksumOptions | None = None
    grep: GrepOptions | None = None
    convert: ConvertOptions | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> Self:
        for name in ("stats", "checksum", "grep", "convert"):
            if name != self.type and getattr(self, name) is not None:
                raise ValueError(f"options for '{name}' given but the operation type is '{self.type}'")
        if self.type == "grep" and self.grep is None:
            raise ValueError("grep needs grep.pattern")
        if self.format not in FORMATS.get(self.type, ("auto",)):
            error = InitErrorDetails(type="value_error", loc=("format",), input=self.format,
                                     ctx={"error": format_refusal(self.type)})
            raise ValidationError.from_exception_data(type(self).__name__, [error])
        return self

    def engine_options(self) -> dict[str, Any]:
        """Options in the engine's snake_case vocabulary, defaults filled in."""
        if self.type == "count":
            return {}
        defaults = {"stats": StatsOptions, "checksum": ChecksumOptions, "convert": ConvertOptions}
        options = getattr(self, self.type) or defaults[self.type]()
        if self.type == "grep":
            return options.engine_options()
        if self.type in FORMATS:
            return {**options.engine_options(), "format": self.format}
        return options.model_dump()


class Resources(SpecModel):
    cpu: int | Literal["auto"] = Field(
        default="auto",
        description="Whole cores per runner, or auto.",
        json_schema_extra={"minimum": CPU_RANGE[0], "maximum": CPU_RANGE[1]},
    )
    memory: str = Field(default="2Gi", max_length=32, pattern=QUANTITY, description="Memory per runner.")

    _cpu_range = field_validator("cpu")(lambda value: within(value, CPU_RANGE, "cpu", " whole cores"))


LATEST = "latest"
# The fields that decide what a job computes from each file: a re-run or an incremental run
# merges partials of another job, so it must agree with that job on every one of them (the
# file set, include and exclude, may differ).
COMPUTED_FIELDS = ("source", "followSymlinks", "operation")


class Incremental(SpecModel):
    baseline: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN,
        description="The finished PravahJob whose per-file partials are reused for unchanged files, "
                    "or 'latest': the newest Succeeded job in the namespace that computes the same.")


class PravahJobSpec(SpecModel):
    source: Location = Field(description="Where the input files are: exactly one of s3 or volume.")
    include: list[Glob] = Field(
        default_factory=list, max_length=MAX_GLOBS, description="Globs of files to take, relative to the source."
    )
    exclude: list[Glob] = Field(
        default_factory=list, max_length=MAX_GLOBS, description="Globs of files to skip; wins over include."
    )
    followSymlinks: bool = Field(default=False, description="Follow symbolic links when listing a volume.")
    operation: OperationSpec = Field(description="What to compute for every file.")
    output: Location | None = Field(
        default=None, description="Where results go: exactly one of s3 or volume."
    )
    parallelism: int | Literal["auto"] = Field(
        default="auto",
        description="Number of shards (runner pods), or auto.",
        json_schema_extra={"minimum": PARALLELISM_RANGE[0], "maximum": PARALLELISM_RANGE[1]},
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per runner pod.")
    maxErrors: int | None = Field(default=None, ge=0, description="Fail the job when more files than this fail.")
    maxRetriesPerShard: int = Field(default=2, ge=0, le=10, description="Retries of a failed shard.")
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    ttlSecondsAfterFinished: int | None = Field(default=None, ge=0)
    suspend: bool = Field(default=False, description="true stops a running job (phase Cancelled).")
    queueName: str | None = Field(
        default=None, max_length=63, pattern=DNS_LABEL, description="Kueue LocalQueue to submit to."
    )
    checks: list[Check] | None = Field(
        default=None, max_length=MAX_CHECKS,
        description="Data-quality rules judged on the stats result (operation type stats only); "
                    "a failed rule of severity error fails the job (reason ChecksFailed).")

    rerunOf: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="A finished PravahJob in this namespace: process only its files that ended as errors "
                    "or never finished, and merge them with its good partials.")
    incremental: Incremental | None = Field(
        default=None,
        description="Reuse the partials of files unchanged since a baseline job (same path, size and "
                    "modification time; same key, size and ETag on S3); only new and changed files are read.")

    _parallelism_range = field_validator("parallelism")(
        lambda value: within(value, PARALLELISM_RANGE, "parallelism"))

    @model_validator(mode="after")
    def _checks_fit_the_operation(self) -> Self:
        refuse_unfit_checks(self.operation, self.checks, type(self).__name__)
        return self

    @model_validator(mode="after")
    def _one_way_to_reuse(self) -> Self:
        if self.rerunOf is not None and self.incremental is not None:
            raise ValueError(RERUN_OR_INCREMENTAL)
        return self


RERUN_OR_INCREMENTAL = "rerunOf and incremental cannot both be set"


CHECKS_NEED_STATS = "checks judge a stats result: operation.type must be stats"


class ChecksFile(SpecModel):
    """A file of checks for `pravah run --checks`: the `checks` list of a spec, alone."""

    checks: list[Check] = Field(max_length=MAX_CHECKS)


def refuse_unfit_checks(operation: OperationSpec, checks: list[Rule] | None, title: str) -> None:
    """Checks judge a stats result, and only what its options measure (the quantiles it
    estimates, the top values it keeps); anything else is refused, naming the field."""
    if not checks:
        return
    if operation.type != "stats":
        errors = [InitErrorDetails(type="value_error", loc=("checks",), input=operation.type,
                                   ctx={"error": CHECKS_NEED_STATS})]
    else:
        stats = operation.stats or StatsOptions()
        errors = [InitErrorDetails(type="value_error", loc=("checks", index, field), input=getattr(check, field),
                                   ctx={"error": why})
                  for index, check in enumerate(checks)
                  for field, why in filter(None, [check.unmeasured(stats.quantiles, stats.top)])]
    if errors:
        raise ValidationError.from_exception_data(title, errors)


class PravahJobManifest(SpecModel):
    """A whole manifest as users write it; metadata is kept loose on purpose."""

    model_config = ConfigDict(extra="ignore")
    apiVersion: Literal["pravah.io/v1alpha1"]
    kind: Literal["PravahJob"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: PravahJobSpec


def describe_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """Turn pydantic errors into 'spec.operation.type: ...' lines that name the field."""
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-after"))
        where = ".".join(filter(None, [prefix, loc]))
        lines.append(f"{where or '(root)'}: {item['msg']}")
    return lines
