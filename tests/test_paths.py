"""The path sanitiser: the one gate between a URL and the storage."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fileshare.exceptions import InvalidPath
from fileshare.store import paths


@pytest.mark.parametrize("raw", ["a.txt", "dir/sub/file.bin", "é/ü.txt", "%2e%2e", "a..b", ".hidden", "x" * 255])
def test_plain_relative_paths_pass_unchanged(raw: str) -> None:
    assert paths.clean(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/etc/passwd",
        "..",
        "a/../b",
        "./a",
        "a//b",
        "a/",
        "a\\b",
        "a\x00b",
        "a\nb",
        "a\u202eb",
        "\u2025",
        "．．",
        "x" * 256,
        "a/" * 600,
    ],
)
def test_unsafe_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath):
        paths.clean(raw)


@given(st.text(max_size=80))
def test_any_accepted_path_stays_inside_the_folder(raw: str) -> None:
    try:
        cleaned = paths.clean(raw)
    except InvalidPath:
        return
    joined = posixpath.normpath(posixpath.join("/root/folder", cleaned))
    assert joined.startswith("/root/folder/")
    assert cleaned == raw


def test_parents_lists_every_enclosing_folder() -> None:
    assert paths.parents("a/b/c") == ["a", "a/b"]
    assert paths.parents("a") == []


def test_blob_suffix_keeps_only_a_harmless_extension() -> None:
    assert paths.blob_suffix("x/photo.JPG") == ".jpg"
    assert paths.blob_suffix("x/evil.sh;rm") == ""
    assert paths.blob_suffix("noext") == ""
