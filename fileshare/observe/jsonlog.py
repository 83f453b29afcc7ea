"""One JSON object per log line, for log shippers (``CONCIERGE_LOG_FORMAT=json``).

Each line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``event`` (the message),
``process`` (the pid), and ``client`` (a client's public id) when the call passed
``extra={"client": ...}``; ``exception`` holds a traceback when there is one. The
concierge never logs a key or a session token, in either format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "process": record.process,
        }
        client = getattr(record, "client", None)
        if client is not None:
            line["client"] = str(client)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
