"""A smoke job: one real PravahJob end to end, as `helm test` runs it.

Creates a PravahJob that counts the files under a directory of a PersistentVolumeClaim,
waits for it to finish, prints its phase and result summary, and deletes it. The exit code
says whether Pravah works on this cluster: 0 only when the job Succeeded having counted at
least one file. It needs nothing but create, get and delete on pravahjobs in the namespace,
and get on the claims it names (the tenant admission policy admits a job only from whoever
may read them).

    python -m pravah_operator.smoke --namespace analytics --claim datasets --path samples \\
        --output-claim results --output-path pravah-smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from kubernetes import client, config

from pravah_operator.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION
from pravah_operator.status import TERMINAL_PHASES

NAME_PREFIX = "pravah-smoke-"
# Exit codes: the job did not prove Pravah works (1); the smoke job could not be run at all (2,
# as for a usage error).
FAILED, NOT_RUN = 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pravah_operator.smoke",
        description="Run one PravahJob end to end (operation count, generated name), print its phase and "
                    "summary, delete it. Exit 0 only if it Succeeded and counted at least one file; 1 if it "
                    "did not; 2 if it could not be created or read. Uses the in-cluster service account, "
                    "else the kubeconfig; needs create, get and delete on pravahjobs in NAMESPACE and get on "
                    "the claims it names.",
        epilog="The namespace must be ready for PravahJobs: the runners' service account (pravah-runner) "
               "and the claims exist. `helm test` runs this from the chart's tests.smoke values.",
    )
    parser.add_argument("--namespace", required=True, help="namespace to run the job in")
    parser.add_argument("--claim", required=True, help="PersistentVolumeClaim holding the files to count")
    parser.add_argument("--path", default="", help="directory inside the claim (default: all of it)")
    parser.add_argument("--output-claim", default="",
                        help="PersistentVolumeClaim the result goes to (default: --claim)")
    parser.add_argument("--output-path", default="pravah-smoke",
                        help="directory inside the output claim; keep it outside --path, or the next run "
                             "counts this run's result too (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=240,
                        help="seconds to wait for a terminal phase (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=2, help="seconds between reads (default: %(default)s)")
    return parser.parse_args(argv)


def manifest(args: argparse.Namespace) -> dict[str, Any]:
    """One shard (it is a smoke test, not a benchmark) counting the files of the source."""
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"generateName": NAME_PREFIX, "labels": {"app.kubernetes.io/name": "pravah-smoke"}},
        "spec": {
            "source": {"volume": {"claimName": args.claim, "path": args.path}},
            "operation": {"type": "count"},
            "output": {"volume": {"claimName": args.output_claim or args.claim, "path": args.output_path}},
            "parallelism": 1,
        },
    }


def verdict(status: dict[str, Any]) -> str | None:
    """Why a finished job does not show that Pravah works; None when it does."""
    phase = status.get("phase")
    if phase != "Succeeded":
        return f"the job ended {phase}: {status.get('reason', '')} {status.get('message', '')}".rstrip()
    files = ((status.get("result") or {}).get("summary") or {}).get("files", 0)
    if files < 1:
        return "the job Succeeded but counted no files: is the directory empty?"
    return None


def wait_finished(api: client.CustomObjectsApi, namespace: str, name: str, timeout: float,
                  interval: float) -> dict[str, Any] | None:
    """The job's status once its phase is terminal; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while True:
        try:
            status = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}
        except client.ApiException as exc:
            # An API server that is busy or restarting answers again soon; anything else is final.
            if exc.status != 429 and exc.status < 500:
                raise
        if status.get("phase") in TERMINAL_PHASES:
            return status
        if time.monotonic() >= deadline:
            print(f"timed out after {timeout:g}s; last status: {json.dumps(status)}", flush=True)
            return None
        time.sleep(interval)


def delete(api: client.CustomObjectsApi, namespace: str, name: str) -> None:
    """A smoke job leaves nothing behind, whatever became of it; a job already gone is fine."""
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        print(f"deleted pravahjob/{name}", flush=True)
    except client.ApiException as exc:
        if exc.status != 404:
            print(f"could not delete pravahjob/{name}: {exc.status} {exc.reason}", file=sys.stderr)


def run(api: client.CustomObjectsApi, args: argparse.Namespace) -> int:
    try:
        created = api.create_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, manifest(args))
    except client.ApiException as exc:
        print(f"could not create the smoke job in {args.namespace}: {exc.status} {exc.reason}: {exc.body}",
              file=sys.stderr)
        return NOT_RUN
    name = created["metadata"]["name"]
    print(f"created pravahjob/{name} in {args.namespace}", flush=True)
    try:
        status = wait_finished(api, args.namespace, name, args.timeout, args.interval)
    except client.ApiException as exc:
        print(f"could not read pravahjob/{name}: {exc.status} {exc.reason}: {exc.body}", file=sys.stderr)
        return NOT_RUN
    finally:
        delete(api, args.namespace, name)
    if status is None:
        return FAILED
    summary = (status.get("result") or {}).get("summary") or {}
    print(f"phase: {status.get('phase')}\nsummary: {json.dumps(summary, sort_keys=True)}", flush=True)
    problem = verdict(status)
    if problem:
        print(problem, file=sys.stderr)
        return FAILED
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return run(client.CustomObjectsApi(), args)


if __name__ == "__main__":
    sys.exit(main())
