"""Log configuration: JSON lines in the cluster (one object per line with incident and step), text locally.

Owns formatting and handler set-up; must not let a secret through: every handler it installs carries the
RedactingFilter.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from tradesense_operator.observability.context import current_object, current_step
from tradesense_operator.observability.redaction import SECRETS, RedactingFilter


class ContextFilter(logging.Filter):
    """Adds `object` and `step` from the task context (and kopf's k8s_ref when present)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach context attributes; never drops a record."""
        obj = current_object.get()
        if obj is None:
            ref = getattr(record, "k8s_ref", None)
            if isinstance(ref, dict) and ref.get("name"):
                obj = f"{ref.get('kind', '')} {ref.get('namespace', '')}/{ref['name']}".strip()
        record.tso_object = obj
        record.tso_step = current_step.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, object, step, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, attr in (("object", "tso_object"), ("step", "tso_step")):
            value = getattr(record, attr, None)
            if value:
                payload[key] = value
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human format with the same context fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(tso_object)s %(tso_step)s] %(message)s")


KOPF_OBJECTS_LOGGER = "kopf.objects"


def configure_logging(*, log_format: Literal["json", "text"], level: str = "INFO") -> logging.Handler:
    """Install one root handler with context and redaction filters; returns it (tests remove it).

    kopf's per-object logger also gets the redacting filter: kopf can post its records as Kubernetes
    Events through a handler of its own (settings.posting.loggers), which a root-handler filter never sees.
    """
    objects = logging.getLogger(KOPF_OBJECTS_LOGGER)
    if not any(isinstance(f, RedactingFilter) for f in objects.filters):
        objects.addFilter(RedactingFilter(SECRETS))
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(SECRETS))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_tso_handler", False):
            root.removeHandler(existing)
    handler._tso_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler
