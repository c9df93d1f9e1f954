"""Log entries in zap's console format, as the collector writes them to stdout.

``2024-01-25T10:46:15.423Z<TAB>info<TAB>caller<TAB>message<TAB>{"json": "fields"}``; the caller is
absent on exporter loggers built without one, and error entries end with a stack trace.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Callable

from .zapsampling import Sampler


def zap_time(now: _dt.datetime | None = None) -> str:
    """zap's ISO-8601 encoder in UTC: ``2006-01-02T15:04:05.000Z``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def go_log_time(now: _dt.datetime | None = None) -> str:
    """Go's standard ``log`` prefix: ``2006/01/02 15:04:05``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y/%m/%d %H:%M:%S")


def entry(level: str, caller: str, message: str, fields: dict | None = None, *, capital: bool = False) -> str:
    """One zap console entry (may span lines when the message does)."""
    parts = [zap_time(), level.upper() if capital else level]
    if caller:
        parts.append(caller)
    parts.append(message)
    if fields:
        parts.append(json.dumps(fields, ensure_ascii=False))
    return "\t".join(parts)


class Logger:
    """A zap logger writing to a container log: fixed fields, optional caller and sampling."""

    def __init__(self, sink: Callable[[str], None], fields: dict | None = None, *, capital: bool = False,
                 sampler: Sampler | None = None, with_caller: bool = True, level: str = "info"):
        self.sink = sink
        self.fields = dict(fields or {})
        self.capital = capital
        self.sampler = sampler
        self.with_caller = with_caller
        self.level = level
        self._lock = threading.Lock()

    def child(self, fields: dict, **kw) -> Logger:
        """A logger with more fixed fields (zap's ``With``)."""
        opts = {"capital": self.capital, "sampler": self.sampler, "with_caller": self.with_caller,
                "level": self.level, **kw}
        return Logger(self.sink, {**self.fields, **fields}, **opts)

    def enabled(self, level: str) -> bool:
        order = ["debug", "info", "warn", "error"]
        return order.index(level) >= order.index(self.level)

    def log(self, level: str, caller: str, message: str, fields: dict | None = None, stack: str = "") -> bool:
        """Write one entry if the level and sampling let it through; say whether it was written."""
        if not self.enabled(level):
            return False
        if self.sampler is not None and not self.sampler.allow(level, message):
            return False
        text = entry(level, caller if self.with_caller else "", message, {**self.fields, **(fields or {})},
                     capital=self.capital)
        if stack:
            text += "\n" + stack
        with self._lock:
            self.sink(text)
        return True

    def info(self, caller: str, message: str, fields: dict | None = None) -> bool:
        return self.log("info", caller, message, fields)

    def warn(self, caller: str, message: str, fields: dict | None = None) -> bool:
        return self.log("warn", caller, message, fields)

    def error(self, caller: str, message: str, fields: dict | None = None, stack: str = "") -> bool:
        return self.log("error", caller, message, fields, stack)
