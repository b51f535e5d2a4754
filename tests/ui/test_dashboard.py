"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
API, operator and cluster: log in both ways, submit a stats job from the generated form and
watch it run to Succeeded without a reload, read its column cards, cancel a running job and
re-run the files it never finished, see
a refused field marked, and be refused a job of another namespace.

Expected values come from the data the jobs read (csv, statistics), never from the engine."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from api.helpers import ADMIN, CLAIMS, DeployedApi, service_account
from e2e import reference
from e2e.harness import freeze_mid_run, manifest_for, thaw, write_csv_files
from ui.conftest import NARROW, screenshot

ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
FILES, BATCH_FILES = 40, "5"
RUNNING = re.compile(r"^([1-9]|[1-9][0-9])$")  # a percentage strictly between 0 and 100
SLOW = 240_000  # ms: a job on the cluster, end to end


def log_in_with_token(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    page.get_by_test_id("login-token").fill(token)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("jobs-table")).to_be_visible()


def column_values(root: Path) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {}
    for path in sorted(root.glob("*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                for name, value in row.items():
                    columns.setdefault(name, []).append(value)
    return columns


def fill_location(page: Page, which: str, claim: str, path: str) -> None:
    page.locator(f"#job_{which}_volume_claimName").fill(claim)
    page.locator(f"#job_{which}_volume_path").fill(path)


@pytest.mark.parametrize("cluster", [{"runner_batch_files": BATCH_FILES}], indirect=True)
def test_a_stats_job_submitted_from_the_form_is_followed_live_to_its_column_cards(cluster, page):
    root = cluster.datasets / "ui"
    write_csv_files(root, FILES)
    token = service_account(cluster.control_plane, cluster.namespace, "analyst", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    log_in_with_token(page, api.url, token)

    page.get_by_test_id("new-job").click()
    page.get_by_test_id("operation-stats").check()
    page.locator("#job_name").fill("ui-profile")
    page.locator("#job_namespace").fill(cluster.namespace)
    fill_location(page, "source", "datasets", "ui")
    fill_location(page, "output", "results", "ui-profile")
    preview = page.get_by_test_id("manifest-preview")
    expect(preview).to_contain_text("kind: PravahJob")
    expect(preview).to_contain_text("name: ui-profile")
    expect(preview).to_contain_text(f"namespace: {cluster.namespace}")
    expect(preview).to_contain_text("claimName: datasets")
    screenshot(page, "submit-form")
    page.get_by_test_id("submit-job").click()
    expect(page.get_by_test_id("job-page")).to_be_visible()

    # The runner is held mid-run: the bar shows a share strictly between 0 and 100 ...
    uid, pids = freeze_mid_run(cluster, "ui-profile", batches_total=FILES // int(BATCH_FILES))
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("aria-valuenow", RUNNING, timeout=60_000)
    page.evaluate("window.pravahSamePage = true")  # gone if the page were loaded again
    thaw(pids)
    # ... then, from the event stream alone, reaches 100 and Succeeded.
    expect(page.get_by_test_id("job-phase")).to_have_text(re.compile("Succeeded"), timeout=SLOW)
    expect(progress).to_have_attribute("aria-valuenow", "100")
    shard_bars = page.get_by_test_id("job-shards").get_by_role("progressbar")
    expect(shard_bars.first).to_be_visible()
    for index in range(shard_bars.count()):
        expect(shard_bars.nth(index)).to_have_attribute("aria-valuenow", "100")
    assert page.evaluate("window.pravahSamePage") is True
    assert page.url.endswith(f"/ui/jobs/{uid}")

    columns = column_values(root)
    for name, values in columns.items():
        card = page.get_by_test_id(f"column-card-{name}")
        expect(card).to_be_visible(timeout=60_000)
        expect(card).to_contain_text(f"of {len(values):,}")
    ids = [int(value) for value in columns["id"]]
    card = page.get_by_test_id("column-card-id")
    expect(card.locator("dt:has-text('Min') + dd")).to_have_text(f"{min(ids):,}")
    expect(card.locator("dt:has-text('Max') + dd")).to_have_text(f"{max(ids):,}")
    expect(page.get_by_test_id("column-card-label")).to_contain_text(f"≈ {len(set(columns['label']))}")
    page.get_by_test_id("column-card-value").scroll_into_view_if_needed()
    screenshot(page, "stats-result")

    page.get_by_test_id("stats-view-toggle").click()
    expect(page.get_by_test_id("stats-table")).to_be_visible()
    page.goto(f"{api.url}/ui/")
    log_in_again = page.get_by_test_id("login-token")
    if log_in_again.is_visible():
        log_in_with_token(page, api.url, token)
    row = page.get_by_test_id("job-row-ui-profile")
    expect(row).to_be_visible()
    expect(page.get_by_test_id("progress-ui-profile")).to_have_attribute("aria-valuenow", "100")
    screenshot(page, "jobs-list")


@pytest.mark.parametrize("cluster", [{"runner_batch_files": BATCH_FILES}], indirect=True)
def test_a_running_job_is_cancelled_from_its_page_after_confirmation(cluster, page):
    write_csv_files(cluster.datasets / "many", FILES)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=FILES // int(BATCH_FILES))
    token = service_account(cluster.control_plane, cluster.namespace, "operator-on-call", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    log_in_with_token(page, api.url, token)
    page.get_by_test_id("job-row-data-count").get_by_role("link").first.click()
    expect(page.get_by_test_id("job-phase")).to_have_text(re.compile("Running"))
    page.get_by_test_id("job-cancel").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    assert cluster.get("data-count")["spec"].get("suspend") is not True, "nothing happens before the confirmation"
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("job-phase")).to_have_text(re.compile("Cancelled"), timeout=SLOW)
    thaw(pids)
    assert cluster.wait_phase("data-count", ("Cancelled",))["spec"]["suspend"] is True

    # The files it never finished are re-run from its page; the new job's result is the whole count.
    page.get_by_test_id("job-rerun").click()
    expect(page.get_by_test_id("job-phase")).to_have_text(re.compile("Succeeded"), timeout=SLOW)
    [rerun] = [job for job in json.loads(cluster.kubectl("get", "pj", "-o", "json").stdout)["items"]
               if job["spec"].get("rerunOf") == "data-count"]
    assert page.url.endswith(f"/ui/jobs/{rerun['metadata']['uid']}")
    finished = cluster.wait_phase(rerun["metadata"]["name"])
    reference.count(cluster.result(finished), cluster.source_files(manifest["spec"]))
    expect(page.get_by_test_id("job-rerun")).to_have_count(0)  # a re-run is not re-run again


def test_a_refused_field_is_marked_and_another_namespaces_job_is_refused(cluster, page, other_namespace):
    token = service_account(cluster.control_plane, cluster.namespace, "analyst", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    log_in_with_token(page, api.url, token)
    page.get_by_test_id("new-job").click()
    page.get_by_test_id("operation-grep").check()
    page.locator("#job_namespace").fill(cluster.namespace)
    fill_location(page, "source", "datasets", "data")
    fill_location(page, "output", "results", "refused")
    # A look-around: valid JSON Schema, refused by the API because the engine cannot run it.
    page.locator("#job_operation_grep_pattern").fill("(?<=ERROR )timeout")
    page.get_by_test_id("submit-job").click()
    field = page.locator(".form-group", has=page.locator("#job_operation_grep_pattern")).last
    expect(field).to_contain_text("look-around", timeout=30_000)
    expect(page.get_by_test_id("submit-error")).to_be_visible()
    assert not cluster.kubectl("get", "pj", "-o", "name").stdout.strip(), "a refused job was created"

    foreign = manifest_for("count")
    foreign["metadata"]["namespace"] = other_namespace
    cluster.control_plane.kubectl("apply", "-f", "-", input=json.dumps(foreign))
    foreign_uid = cluster.control_plane.kubectl("get", "pj", "data-count", "-n", other_namespace,
                                                "-o", "jsonpath={.metadata.uid}").stdout
    page.goto(f"{api.url}/ui/jobs/{foreign_uid}")
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text(re.compile("no job|not allowed|forbidden", re.IGNORECASE))
    expect(page.get_by_test_id("job-spec")).to_have_count(0)
    assert other_namespace not in page.content().replace(f"/ui/jobs/{foreign_uid}", "")


def test_standalone_login_by_keyboard_and_a_narrow_window(standalone_api, page):
    page.goto(f"{standalone_api.url}/ui/")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.get_by_test_id("login-username").focus()
    page.keyboard.type(ADMIN[0])
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-password")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("login-error")).to_be_visible()
    page.get_by_test_id("login-password").fill(ADMIN[1])
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    assert "token" not in page.url.lower() and ADMIN[1] not in page.url
    page.set_viewport_size(NARROW)
    new_job = page.get_by_test_id("new-job")
    expect(new_job).to_be_visible()
    box = new_job.bounding_box()
    assert box is not None and box["x"] + box["width"] <= NARROW["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
