"""The concierge: a meeting point for programs over a websocket, with per-client files over HTTP."""

__version__ = "0.3.0"
"""The package's version (pyproject.toml reads it). The protocol version the server
announces in HELLO is ``fileshare.conf.SERVER_VERSION``, a separate number."""
