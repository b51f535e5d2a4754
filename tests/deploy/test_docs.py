"""The docs stay in step with the code: the spec reference is generated from the CRD, the
settings and metrics named in docs/operations.md exist, and the documented layout is there."""

from __future__ import annotations

import re
import subprocess
import sys

from deploy.helpers import ROOT

DOCS = ROOT / "docs"


def test_spec_reference_is_generated_from_the_crd():
    result = subprocess.run([sys.executable, str(DOCS / "gen_spec_fields.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_spec_field_is_in_the_user_guide():
    import yaml

    crd = yaml.safe_load((ROOT / "crds" / "pravahjobs.pravah.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    guide = (DOCS / "user-guide.md").read_text()

    def fields(schema, path="spec"):
        for name, sub in (schema.get("properties") or {}).items():
            yield f"{path}.{name}"
            yield from fields(sub, f"{path}.{name}")

    missing = [field for field in fields(spec) if f"`{field}`" not in guide]
    assert not missing, missing


def test_operations_names_real_settings_and_metrics():
    text = (DOCS / "operations.md").read_text()
    from pravah_api.settings import ApiSettings
    from pravah.logs import LogSettings
    from pravah.tenancy import TenancySettings
    from pravah_operator.settings import OperatorSettings

    known = {f"PRAVAH_{name.upper()}" for model in (OperatorSettings, ApiSettings, TenancySettings, LogSettings)
             for name in model.model_fields}
    named = set(re.findall(r"`(PRAVAH_[A-Z_]+)`", text))
    assert named and named <= known, named - known
    source = (ROOT / "operator" / "pravah_operator" / "metrics.py").read_text() + \
        (ROOT / "api" / "pravah_api" / "health.py").read_text()
    for metric in re.findall(r"^\| `(pravah_[a-z_]+)`", text, re.M):
        assert metric.removesuffix("_total") in source, metric


def test_docs_exist_and_are_clean():
    for name in ("architecture.md", "user-guide.md", "operations.md"):
        text = (DOCS / name).read_text()
        assert len(text) > 2000, name
        assert not re.search(r"/work/|/root/|/home/\w+", text), f"{name} names a machine path"
