"""scan(): ordering, globs, symlinks and unreadable entries."""

import json
import os

from unit.engine.engine_helpers import pe


def make_tree(root):
    (root / "x" / "y").mkdir(parents=True)
    (root / "b.csv").write_text("1\n")
    (root / "a.csv").write_text("12\n")
    (root / "x" / "y" / "a.csv").write_text("123\n")
    (root / "x" / "note.txt").write_text("t\n")


def rel(root, files):
    return [os.path.relpath(p, root) for p, _ in files]


def test_scan_sorted_with_sizes(tmp_path):
    make_tree(tmp_path)
    files, errors = pe.scan(str(tmp_path))
    assert errors == []
    assert rel(tmp_path, files) == ["a.csv", "b.csv", "x/note.txt", "x/y/a.csv"]
    assert dict((os.path.relpath(p, tmp_path), s) for p, s in files)["x/y/a.csv"] == 4
    assert all(p.startswith(str(tmp_path)) for p, _ in files)


def test_scan_include_exclude(tmp_path):
    make_tree(tmp_path)
    files, _ = pe.scan(str(tmp_path), include=["**/*.csv"])
    assert rel(tmp_path, files) == ["a.csv", "b.csv", "x/y/a.csv"]
    files, _ = pe.scan(str(tmp_path), include=["**/*.csv"], exclude=["x/**"])
    assert rel(tmp_path, files) == ["a.csv", "b.csv"]
    files, _ = pe.scan(str(tmp_path), exclude=["**/a.csv"])
    assert rel(tmp_path, files) == ["b.csv", "x/note.txt"]


def test_scan_root_is_file(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("hello")
    assert pe.scan(str(f)) == ([(str(f), 5)], [])


def test_scan_missing_root_is_an_error_not_exception(tmp_path):
    files, errors = pe.scan(str(tmp_path / "missing"))
    assert files == [] and len(errors) == 1


def test_scan_symlink_loop_and_dangling_link(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("x")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    files, errors = pe.scan(str(tmp_path), follow_symlinks=True)
    assert rel(tmp_path, files) == ["d/f.txt"]
    reasons = " | ".join(r for _, r in errors)
    assert "loop" in reasons
    assert any(p.endswith("dangling") and "broken symlink" in r for p, r in errors)
    # Not following: links are skipped, the dangling one is still reported.
    files, errors = pe.scan(str(tmp_path))
    assert rel(tmp_path, files) == ["d/f.txt"]
    assert [os.path.basename(p) for p, _ in errors] == ["dangling"]


def test_scan_follows_links_only_when_asked(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert len(pe.scan(str(tmp_path))[0]) == 1
    assert len(pe.scan(str(tmp_path), follow_symlinks=True)[0]) == 2


def outside_marker(tmp_path):
    """A source root with one plain file, next to a file outside it that holds a marker."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "plain.txt").write_text("inside\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("OUTSIDE-MARKER\n")
    return root, secret


def test_followed_links_out_of_the_root_are_error_records(tmp_path):
    root, secret = outside_marker(tmp_path)
    os.symlink(secret, root / "to-secret")
    os.symlink(tmp_path, root / "to-parent")
    files, errors = pe.scan(str(root), follow_symlinks=True)
    assert rel(root, files) == ["plain.txt"]
    assert sorted((os.path.basename(p), r) for p, r in errors) == [
        ("to-parent", "symbolic link leads outside the source root"),
        ("to-secret", "symbolic link leads outside the source root")]


def test_a_file_swapped_for_a_link_after_the_scan_is_not_read(tmp_path):
    root, secret = outside_marker(tmp_path)
    files, _ = pe.scan(str(root), follow_symlinks=True)
    (root / "plain.txt").unlink()
    os.symlink(secret, root / "plain.txt")
    for follow, reason in ((False, "is a symbolic link, and symbolic links are not followed"),
                           (True, "symbolic link leads outside the source root")):
        run = pe.start("grep", json.dumps({"pattern": "MARKER"}), files, 1, root=str(root), follow_symlinks=follow)
        document = json.loads(pe.finalize("grep", run.wait(30)))
        assert document["errors"] == [{"path": str(root / "plain.txt"), "reason": reason}]
        assert document["result"]["matches"] == 0
        assert "OUTSIDE-MARKER" not in json.dumps(document)
