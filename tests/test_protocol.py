"""The wire format, without a server."""

from __future__ import annotations

import pytest

from fileshare import protocol


@pytest.mark.parametrize("version", ["0.2.0", "0.2.17", "0.2.0-beta.1", "0.2.1+build.5"])
def test_versions_compatible_with_caret_0_2_are_accepted(version: str) -> None:
    assert protocol.is_compatible_version(version)


@pytest.mark.parametrize(
    "version", ["0.3.0", "1.2.0", "0.1.9", "0.2", "v0.2.0", "0.02.0", "", None, 2, "0.2.0 ", "0.2.0\n"]
)
def test_versions_outside_caret_0_2_or_not_semver_are_refused(version: object) -> None:
    assert not protocol.is_compatible_version(version)


@pytest.mark.parametrize("name", ["a", "Alice_01", "x" * 64])
def test_names_of_letters_digits_underscore_are_valid(name: str) -> None:
    assert protocol.is_valid_name(name, 64)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a-b", "é", "a/b", None, 5, "a\n"])
def test_names_that_are_empty_long_or_not_word_characters_are_invalid(name: object) -> None:
    assert not protocol.is_valid_name(name, 64)


@pytest.mark.parametrize("text", ["", "nope", "[1, 2]", '"s"', "{}", '{"type": 5}', "[" * 100000])
def test_frames_that_are_not_objects_with_a_string_type_fail_to_decode(text: str) -> None:
    with pytest.raises(protocol.DecodeError):
        protocol.decode(text)


def test_field_refuses_booleans_where_integers_are_expected() -> None:
    with pytest.raises(protocol.ShapeError, match='"seq" must be an integer'):
        protocol.field({"type": "SELF_SET_SEQ", "seq": True}, "seq", int)


def test_encode_keeps_unicode_and_is_compact() -> None:
    assert protocol.encode({"type": "X", "data": "é"}) == '{"type":"X","data":"é"}'
