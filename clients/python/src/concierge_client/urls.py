"""The server's endpoints, derived from its base URL (``http://host:port`` or ``https://...``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_URL = "http://127.0.0.1:64209"


@dataclass(frozen=True)
class Endpoints:
    """Where the websocket, the file API and the tus endpoint of one server are."""

    base: str
    """``http(s)://host:port`` plus any path prefix, without a trailing slash."""

    @classmethod
    def from_url(cls, url: str) -> Endpoints:
        """Accepts ``http(s)://host[:port][/prefix]``; ``ws(s)://.../ws`` is taken back to its base."""
        parts = urlsplit(url.strip())
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r} (expected http://host:port)")
        path = parts.path.rstrip("/")
        if parts.scheme in ("ws", "wss") and path.endswith("/ws"):
            path = path[: -len("/ws")]
        return cls(urlunsplit((scheme, parts.netloc, path, "", "")))

    @property
    def ws(self) -> str:
        """The websocket URL, ``ws(s)://host:port/ws``."""
        scheme, rest = self.base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    @property
    def fs(self) -> str:
        """The file API's root, ``.../fs/``."""
        return f"{self.base}/fs/"

    @property
    def tus(self) -> str:
        """The tus endpoint's root, ``.../tus/``."""
        return f"{self.base}/tus/"

    def file(self, client: str, path: str = "") -> str:
        """The URL of ``path`` in ``client``'s folder (each segment percent-encoded)."""
        return f"{self.fs}{quote(client, safe='')}/{quote(path, safe='/')}"

    def listing(self, path: str = "") -> str:
        """The HTTP listing URL of a pw_file path (``""``: the root; ``alice/logs``: a folder)."""
        path = path.strip("/")
        return self.fs if not path else f"{self.fs}{quote(path, safe='/')}/"

    def tus_folder(self, client: str) -> str:
        """Where ``client`` creates tus uploads."""
        return f"{self.tus}{quote(client, safe='')}/"
