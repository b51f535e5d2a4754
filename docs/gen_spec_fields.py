"""The PravahJob field reference of docs/user-guide.md, generated from the CRD.

The CRD (crds/pravahjobs.pravah.io.yaml) is itself generated from the pydantic model
(job-runner/pravah/spec.py), so this table follows the model. Fields whose schema has no
description get one here, and every field has an example; a field added to the model
without one makes `--check` (and tests/deploy/test_docs.py) fail.

    python docs/gen_spec_fields.py           # print the table
    python docs/gen_spec_fields.py --write   # rewrite it in docs/user-guide.md
    python docs/gen_spec_fields.py --check   # exit 1 if docs/user-guide.md is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "pravahjobs.pravah.io.yaml"
GUIDE = ROOT / "docs" / "user-guide.md"
BEGIN, END = "<!-- spec-fields:begin (python docs/gen_spec_fields.py --write) -->", "<!-- spec-fields:end -->"

DESCRIPTIONS = {
    "spec.activeDeadlineSeconds": "Seconds the whole job may run before it is failed (the Job's activeDeadlineSeconds).",
    "spec.ttlSecondsAfterFinished": "Seconds after the end when the Job and its pods are removed; the PravahJob stays.",
    "spec.operation.stats": "Options of `type: stats`.",
    "spec.operation.checksum": "Options of `type: checksum`.",
    "spec.operation.checksum.algorithm": "Digest per file; a `sha256sum -c`/`b3sum -c` manifest is written too.",
    "spec.operation.checksum.decompressed": "A compressed file's digest is that of its stored bytes (what `sha256sum` "
                                            "gives) unless this is true.",
    "spec.operation.grep": "Options of `type: grep`.",
    "spec.operation.grep.ignoreCase": "Match case-insensitively.",
    "spec.operation.convert": "Options of `type: convert` (CSV to Parquet).",
    "spec.operation.convert.to": "Output format.",
    "spec.operation.convert.compression": "Parquet compression codec.",
    "spec.operation.convert.header": "The first row names the columns.",
    "spec.source.s3": "Files in an S3 bucket (AWS or compatible).",
    "spec.source.volume": "Files on a PersistentVolumeClaim in the job's namespace (mounted read-only).",
    "spec.output.s3": "Results to an S3 bucket.",
    "spec.output.volume": "Results to a PersistentVolumeClaim in the job's namespace.",
}

EXAMPLES = {
    "spec.source": "source: {volume: {claimName: datasets, path: data/sales}}",
    "spec.source.volume": "volume: {claimName: datasets, path: data}",
    "spec.source.volume.claimName": "claimName: datasets",
    "spec.source.volume.path": "path: data/sales",
    "spec.source.s3": "s3: {bucket: raw, prefix: sales/2026/, credentialsSecret: s3-creds}",
    "spec.source.s3.bucket": "bucket: raw",
    "spec.source.s3.prefix": "prefix: sales/2026/",
    "spec.source.s3.endpoint": "endpoint: http://minio.pravah-system.svc:9000",
    "spec.source.s3.region": "region: eu-west-1",
    "spec.source.s3.credentialsSecret": "credentialsSecret: s3-creds",
    "spec.include": 'include: ["**/*.csv", "**/*.tsv"]',
    "spec.exclude": 'exclude: ["**/_tmp/**"]',
    "spec.followSymlinks": "followSymlinks: true",
    "spec.operation": "operation: {type: count}",
    "spec.operation.type": "type: grep",
    "spec.operation.format": "format: ndjson",
    "spec.operation.stats": "stats: {delimiter: \",\", header: true, quantiles: [0.5, 0.99], top: 5}",
    "spec.operation.stats.delimiter": "delimiter: \"\\t\"",
    "spec.operation.stats.header": "header: false",
    "spec.operation.stats.encoding": "encoding: windows-1252",
    "spec.operation.stats.quantiles": "quantiles: [0.5, 0.9, 0.99]",
    "spec.operation.stats.top": "top: 10",
    "spec.operation.stats.badRows": "badRows: pad",
    "spec.operation.stats.maxBadRows": "maxBadRows: 1000",
    "spec.operation.stats.headerRows": "headerRows: 2",
    "spec.operation.stats.quote": "quote: \"'\"",
    "spec.operation.stats.escape": "escape: \"\\\\\"",
    "spec.operation.stats.comment": "comment: \"#\"",
    "spec.operation.stats.skipRows": "skipRows: 3",
    "spec.operation.stats.footerRows": "footerRows: 1",
    "spec.operation.checksum": "checksum: {algorithm: blake3}",
    "spec.operation.checksum.algorithm": "algorithm: xxh3",
    "spec.operation.checksum.decompressed": "decompressed: true",
    "spec.operation.grep": "grep: {pattern: \"ERROR .*timeout\", ignoreCase: true}",
    "spec.operation.grep.pattern": "pattern: \"(ERROR|WARN) .*timeout\"",
    "spec.operation.grep.ignoreCase": "ignoreCase: true",
    "spec.operation.grep.maxMatchesPerFile": "maxMatchesPerFile: 20",
    "spec.operation.convert": "convert: {to: parquet, compression: zstd}",
    "spec.operation.convert.to": "to: parquet",
    "spec.operation.convert.compression": "compression: snappy",
    "spec.operation.convert.delimiter": "delimiter: \";\"",
    "spec.operation.convert.header": "header: true",
    "spec.operation.convert.encoding": "encoding: utf-16le",
    "spec.operation.convert.badRows": "badRows: fail",
    "spec.operation.convert.maxBadRows": "maxBadRows: 10",
    "spec.operation.convert.headerRows": "headerRows: auto",
    "spec.operation.convert.quote": "quote: auto",
    "spec.operation.convert.escape": "escape: \"\\\\\"",
    "spec.operation.convert.comment": "comment: \"#\"",
    "spec.operation.convert.skipRows": "skipRows: 3",
    "spec.operation.convert.footerRows": "footerRows: 1",
    "spec.output": "output: {volume: {claimName: results, path: pravah-out/sales}}",
    "spec.output.volume": "volume: {claimName: results, path: pravah-out/sales}",
    "spec.output.volume.claimName": "claimName: results",
    "spec.output.volume.path": "path: pravah-out/sales",
    "spec.output.s3": "s3: {bucket: results, prefix: sales-profile/, credentialsSecret: s3-creds}",
    "spec.output.s3.bucket": "bucket: results",
    "spec.output.s3.prefix": "prefix: sales-profile/",
    "spec.output.s3.endpoint": "endpoint: https://s3.example.internal",
    "spec.output.s3.region": "region: us-east-1",
    "spec.output.s3.credentialsSecret": "credentialsSecret: s3-creds",
    "spec.parallelism": "parallelism: 8",
    "spec.resources": "resources: {cpu: 4, memory: 8Gi}",
    "spec.resources.cpu": "cpu: 2",
    "spec.resources.memory": "memory: 512Mi",
    "spec.maxErrors": "maxErrors: 10",
    "spec.maxRetriesPerShard": "maxRetriesPerShard: 0",
    "spec.activeDeadlineSeconds": "activeDeadlineSeconds: 3600",
    "spec.ttlSecondsAfterFinished": "ttlSecondsAfterFinished: 86400",
    "spec.suspend": "suspend: true",
    "spec.queueName": "queueName: team-a",
    "spec.rerunOf": "rerunOf: nightly-sales",
    "spec.incremental": "incremental: {baseline: latest}",
    "spec.incremental.baseline": "baseline: sales-2026-12-01",
    "spec.checks": "checks: [{column: price, rule: between, min: 0, max: 1000}, {rule: rowCount, min: 1000}]",
    "spec.checks[].rule": "rule: notNull",
    "spec.checks[].column": "column: price",
    "spec.checks[].severity": "severity: warn",
    "spec.checks[].min": "min: 0",
    "spec.checks[].max": "max: 1000",
    "spec.checks[].quantile": "quantile: 0.99",
    "spec.checks[].values": "values: [north, south, east, west]",
    "spec.checks[].type": "type: float",
    "spec.checks[].columns": "columns: [order_id, date, region, product, quantity, unit_price]",
}


def spec_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def rows(schema: dict, path: str = "spec", required: tuple[str, ...] = ()) -> list[tuple[str, dict, bool]]:
    """Every field below `schema`; the fields of a list's objects as LIST[].FIELD."""
    out = []
    for name, sub in sorted((schema.get("properties") or {}).items(), key=lambda kv: kv[0]):
        field = f"{path}.{name}"
        out.append((field, sub, name in required))
        out += rows(sub, field, tuple(sub.get("required") or ()))
        item = sub.get("items") or {}
        out += rows(item, f"{field}[]", tuple(item.get("required") or ()))
    return out


def kind(sub: dict) -> str:
    if sub.get("x-kubernetes-int-or-string"):
        return "integer or `auto`"
    if sub.get("type") == "array":
        return f"list of {(sub.get('items') or {}).get('type', 'any')}"
    return sub.get("type", "any")


def limits(sub: dict) -> str:
    parts = []
    if "enum" in sub:
        parts.append(" \\| ".join(f"`{value}`" for value in sub["enum"]))
    if "minimum" in sub or "maximum" in sub:
        parts.append(f"{sub.get('minimum', '')}..{sub.get('maximum', '')}")
    if "maxItems" in sub:
        parts.append(f"≤ {sub['maxItems']} items")
    if "maxLength" in sub and "enum" not in sub:
        parts.append(f"≤ {sub['maxLength']} chars")
    return ", ".join(parts)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    missing = []
    lines = ["| field | type | default | allowed | what it does | example |", "|---|---|---|---|---|---|"]
    for field, sub, is_required in rows(spec_schema(), required=tuple(spec_schema().get("required") or ())):
        description = sub.get("description") or DESCRIPTIONS.get(field)
        example = EXAMPLES.get(field)
        if not description or not example:
            missing.append(field)
            continue
        default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ("required" if is_required else "")
        lines.append(f"| `{field}` | {kind(sub)} | {cell(default)} | {cell(limits(sub))} | {cell(description)} | "
                     f"`{cell(example)}` |")
    if missing:
        raise SystemExit(f"fields without a description or an example in docs/gen_spec_fields.py: {missing}")
    return "\n".join(lines) + "\n"


def spliced(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        GUIDE.write_text(spliced(GUIDE.read_text()))
        return 0
    if "--check" in argv:
        if spliced(GUIDE.read_text()) != GUIDE.read_text():
            print("docs/user-guide.md is stale: python docs/gen_spec_fields.py --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
