"""URL converters for the file API."""

from __future__ import annotations


class AnyPathConverter:
    """Like Django's ``path`` converter, but also matches newlines and other controls.

    Django's ``path`` is ``.+``, which stops at a newline: such a URL would miss
    the file API and get Django's HTML 404. Matching everything lets the path
    sanitiser refuse it with a JSON 400 that says why.
    """

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
