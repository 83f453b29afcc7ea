"""The concierge: a meeting point for programs over a websocket, with per-client files over HTTP."""
