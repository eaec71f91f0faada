"""The Jinja2 templates of the status pages (package data), autoescaped: every name a client
sent is shown as text."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from exporter import __version__


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("exporter.ui", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env


def render(template: str, pause: Callable[[], None] | None = None, **context: Any) -> str:
    """The page. ``pause`` is called between chunks of the output (every 200 template
    events) so that a caller can let more urgent work have the interpreter."""
    stream = environment().get_template(template).generate(**context)
    if pause is None:
        return "".join(stream)
    parts: list[str] = []
    for i, part in enumerate(stream):
        parts.append(part)
        if i % 200 == 199:
            pause()
    return "".join(parts)
