"""Which files a tool call may read: the checks run on real files, symlinks and a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from upwell.mcp.roots import PathRefused, check_file, roots_from_uris


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "a.bin").write_bytes(b"x" * 10)
    return r


def test_a_file_under_the_root_is_allowed_by_absolute_or_relative_path(root: Path) -> None:
    by_abs = check_file(str(root / "sub" / "a.bin"), [root])
    by_rel = check_file("sub/a.bin", [root])
    assert by_abs == by_rel
    assert by_abs.path == (root / "sub" / "a.bin").resolve() and by_abs.size == 10


def test_relative_paths_start_at_the_first_root(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.bin").write_bytes(b"b")
    assert check_file("b.bin", [other, root]).size == 1
    with pytest.raises(PathRefused, match="no such file"):
        check_file("b.bin", [root, other])


def test_a_path_outside_the_roots_is_refused_naming_the_path_and_roots(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("key")
    with pytest.raises(PathRefused) as info:
        check_file(str(outside), [root])
    message = str(info.value)
    assert str(outside) in message and str(root) in message and "outside" in message


def test_dot_dot_is_resolved_before_the_check(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("key")
    with pytest.raises(PathRefused, match="outside the allowed roots"):
        check_file("sub/../../secret.txt", [root])


def test_a_symlink_leading_out_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("key")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PathRefused, match="leads outside the allowed roots"):
        check_file("link", [root])


def test_a_symlinked_directory_leading_out_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f.bin").write_bytes(b"f")
    (root / "dir").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PathRefused, match="outside"):
        check_file("dir/f.bin", [root])


def test_a_symlink_staying_inside_is_allowed(root: Path) -> None:
    (root / "alias").symlink_to(root / "sub" / "a.bin")
    assert check_file("alias", [root]).path == (root / "sub" / "a.bin").resolve()


def test_a_root_that_is_itself_a_symlink_still_holds_its_files(tmp_path: Path, root: Path) -> None:
    (tmp_path / "root-link").symlink_to(root)
    assert check_file("sub/a.bin", [tmp_path / "root-link"]).size == 10


def test_devices_fifos_and_directories_are_refused(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(PathRefused, match="not a regular file"):
        check_file("pipe", [root])
    with pytest.raises(PathRefused, match="not a regular file"):
        check_file("sub", [root])
    with pytest.raises(PathRefused, match="not a regular file"):
        check_file("/dev/null", [Path("/dev")])


def test_a_file_larger_than_the_limit_is_refused(root: Path) -> None:
    with pytest.raises(PathRefused, match="larger than this server's limit"):
        check_file("sub/a.bin", [root], max_size=9)
    assert check_file("sub/a.bin", [root], max_size=10).size == 10


def test_no_roots_means_nothing_is_readable(root: Path) -> None:
    with pytest.raises(PathRefused, match="--root"):
        check_file(str(root / "sub" / "a.bin"), [])


def test_nul_and_empty_paths_are_refused(root: Path) -> None:
    for bad in ("", "a\0b"):
        with pytest.raises(PathRefused, match="not a usable path"):
            check_file(bad, [root])


def test_roots_from_uris_keeps_local_directories_only() -> None:
    found = roots_from_uris(
        ["file:///home/me/my%20docs", "file://localhost/srv", "https://x/y", "file://other/z"]
    )
    assert found == [Path("/home/me/my docs"), Path("/srv")]
