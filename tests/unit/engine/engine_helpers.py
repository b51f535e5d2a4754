"""Shared helpers for the engine extension tests."""

import json


import pravah_engine as pe


def run_op(op, options, files, threads=2):
    """Runs an op to completion and returns the finalized result document."""
    run = pe.start(op, json.dumps(options), files, threads)
    partial = run.wait(60)
    assert partial is not None, "run did not finish in time"
    return json.loads(pe.finalize(op, partial))


def files_of(*paths):
    return [(str(p), p.stat().st_size) for p in sorted(paths, key=lambda p: str(p).encode())]
