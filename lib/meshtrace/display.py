"""Display helpers for notebook cells: Markdown, HTML, fenced code and a text progress line that is saved.

Outside IPython every helper prints plain text instead, so the stages run in tests and scripts.

Example::

    display_markdown("**Applied**")
    with TextProgress(total=20, desc="GET /productpage") as bar:
        for _ in range(20):
            bar.update(1)        # the notebook's saved output ends at "20/20 (100%)"
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


def in_ipython() -> bool:
    """Whether the code runs in an IPython kernel (a notebook) rather than a plain interpreter."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kit
        return False
    return get_ipython() is not None


def display_markdown(text: str) -> None:
    """Show Markdown in a notebook, or print it elsewhere."""
    if in_ipython():
        from IPython.display import Markdown, display

        display(Markdown(text))
    else:
        print(text)


def display_html(markup: str, text: str) -> None:
    """Show HTML in a notebook (``text`` is the plain-text fallback), or print ``text`` elsewhere."""
    if in_ipython():
        from IPython.display import display

        display({"text/html": markup, "text/plain": text}, raw=True)
    else:
        print(text)


def fence(text: str, lang: str = "") -> str:
    """A Markdown code fence that survives backticks inside ``text``."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


class TextProgress:
    """A one-line progress display whose last state is what the saved notebook shows.

    In a notebook it updates one output in place (a display handle, so papermill and JupyterLab save the final
    line, never a frozen "0%" widget); elsewhere it prints the line when it finishes. It has the part of tqdm's
    interface the stages use: ``update``, ``n``, ``total``, ``set_postfix_str``, ``refresh``, ``close`` and
    iteration.

    Example: ``bar = TextProgress(total=6, desc="default: deployments available", unit="deploy")``;
    ``bar.n = 6; bar.close()`` → ``default: deployments available: 6/6 deploy (100%) in 4.2s``.
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", mininterval: float = 0.5, **_: Any):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.mininterval = total, desc, unit, mininterval
        self.n = 0
        self.postfix = ""
        self.closed = False
        self._start = time.monotonic()
        self._last = 0.0
        self._handle: Any = None
        if in_ipython():
            from IPython.display import display

            self._handle = display({"text/plain": self.line()}, raw=True, display_id=True)

    def line(self) -> str:
        """The progress as one line of text."""
        done = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        took = time.monotonic() - self._start
        head = f"{self.desc}: " if self.desc else ""
        post = f" · {self.postfix}" if self.postfix else ""
        return f"{head}{done} {self.unit}{pct} in {took:.1f}s{post}"

    def refresh(self) -> None:
        """Show the current state now."""
        self._last = time.monotonic()
        if self._handle is not None:
            self._handle.update({"text/plain": self.line()}, raw=True)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` (shown at most every ``mininterval`` seconds, and at the end)."""
        self.n += n
        if time.monotonic() - self._last >= self.mininterval or (self.total is not None and self.n >= self.total):
            self.refresh()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Text shown after the count (e.g. what is still waited for)."""
        self.postfix = text
        if refresh:
            self.refresh()

    def close(self) -> None:
        """Show the final state (printed once outside a notebook)."""
        if self.closed:
            return
        self.closed = True
        if self._handle is not None:
            self.refresh()
        else:
            print(self.line(), file=sys.stderr)

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
