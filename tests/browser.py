"""Headless Chromium for the UI tests: the machine's Chromium (Debian's ``chromium``, which
scripts/install-system-packages installs) driven by Playwright; Playwright downloads no browser.

Fixtures (imported by tests/conftest.py):

* ``browser``: one Chromium for the session, headless, with a fresh empty profile (Playwright
  gives every launch a new temporary ``--user-data-dir``);
* ``browser_context_factory``: ``browser_context_factory(**options)`` makes a new context
  (``options`` as ``Browser.new_context``'s: ``java_script_enabled=False``, a viewport...),
  :data:`TIMEOUT_MS` for every wait and navigation. Every request to a host other than
  127.0.0.1 is aborted and recorded, and the network outside 127.0.0.1 is cut underneath too
  (:func:`new_context`): a page under test is offline, as in an air-gapped cluster. At
  teardown the contexts are closed, and the test fails if any of their pages logged a console
  error, threw an uncaught exception or asked for anything outside 127.0.0.1, unless the test
  declared it beforehand on ``page_log``;
* ``page``: a page in such a context, the usual way in;
* ``page_log``: that record (:class:`PageLog`), for the declarations
  (``page_log.expect_external(regex)``, ``page_log.expect_console_error(regex)``) and for a
  test's own assertions.

:func:`screenshot` saves a full-page PNG under ``.artifacts/screenshots`` (or
``$MODEL_EXPORTER_SCREENSHOTS``).

Playwright's ``context.set_offline(True)`` is no way to go offline here: it cuts 127.0.0.1 too
(``net::ERR_INTERNET_DISCONNECTED``), so the pages under test could not load.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    sync_playwright,
)

from tests.helpers import ROOT

__all__ = [
    "CHROMIUM_ARGS",
    "TIMEOUT_MS",
    "Browser",
    "BrowserContext",
    "Page",
    "PageLog",
    "new_context",
    "screenshot",
]

#: Chromium's flags: no sandbox (root), no GPU, and none of its own traffic (updates, sync,
#: QUIC probes), which this machine's closed network would refuse at every start.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)
#: The bound of every wait and navigation, in milliseconds.
TIMEOUT_MS: Final = 10_000
#: The only host a page may reach: the servers under test listen there.
LOCAL_HOST: Final = "127.0.0.1"
#: Schemes that are no network request (inline data, the page's own objects).
_LOCAL_SCHEMES: Final = frozenset({"data", "blob", "about"})
#: Where anything outside 127.0.0.1 is sent when the routing does not see it (the favicon,
#: workers): the discard port of loopback, closed, so the connection is refused at once.
_NOWHERE: Final = "http://127.0.0.1:9"
#: The console's words for a resource that failed to load (the URL is the message's location).
_FAILED_LOAD: Final = "Failed to load resource"
SCREENSHOTS_ENV: Final = "MODEL_EXPORTER_SCREENSHOTS"


def find_chromium() -> str | None:
    """The machine's Chromium: ``chromium`` (Debian) or ``chromium-browser``, else ``None``."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _missing(reason: str) -> NoReturn:
    """Skip (a developer's machine) or fail (CI, which must have it): as tests/helpers.py's
    ``require_binary``."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, but CI must have it (scripts/test runs the installer)")
    pytest.skip(reason)


def require_chromium() -> str:
    """The path of the machine's Chromium, or skip; fail in CI."""
    path = find_chromium()
    if path is None:
        _missing("chromium is not on PATH (scripts/install-system-packages installs it)")
    return path


def is_local(url: str) -> bool:
    """Whether a page may fetch ``url``: 127.0.0.1, or no network at all.

    >>> is_local("http://127.0.0.1:8000/docs"), is_local("data:image/png;base64,AA==")
    (True, True)
    >>> is_local("https://cdn.example/x.js"), is_local("http://localhost:8000/")
    (False, False)
    """
    parts = urlsplit(url)
    return parts.scheme in _LOCAL_SCHEMES or parts.hostname == LOCAL_HOST


@dataclass
class PageLog:
    """What a page did that a test must not do unless it says so: console errors, uncaught
    exceptions, requests outside 127.0.0.1 (each aborted).

    A test that expects one declares it before it happens: :meth:`expect_external` (a regular
    expression searched in the URL; the console's "Failed to load resource" for it is then
    expected too) or :meth:`expect_console_error` (searched in the message's text).
    """

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    _expected_external: list[re.Pattern[str]] = field(default_factory=list)
    _expected_console: list[re.Pattern[str]] = field(default_factory=list)

    def expect_external(self, pattern: str) -> None:
        """Requests whose URL matches ``pattern`` are expected (still aborted)."""
        self._expected_external.append(re.compile(pattern))

    def expect_console_error(self, pattern: str) -> None:
        """Console errors whose text matches ``pattern`` are expected."""
        self._expected_console.append(re.compile(pattern))

    def _external_expected(self, url: str) -> bool:
        return any(p.search(url) for p in self._expected_external)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text, url = message.text, message.location.get("url", "")
        if text.startswith(_FAILED_LOAD) and self._external_expected(url):
            return
        if any(p.search(text) for p in self._expected_console):
            return
        self.console_errors.append(f"{text} (at {url})" if url else text)

    def on_page_error(self, error: Error) -> None:
        self.page_errors.append(error.stack or f"{error.name}: {error.message}")

    def on_route(self, route: Route) -> None:
        url = route.request.url
        if is_local(url):
            route.fallback()
            return
        if not self._external_expected(url):
            self.external.append(f"{route.request.method} {url}")
        route.abort("blockedbyclient")

    def problems(self) -> list[str]:
        """Everything unexpected, one line each: empty when the page behaved."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"uncaught exception: {m}" for m in self.page_errors]
            + [f"request outside {LOCAL_HOST} (aborted): {m}" for m in self.external]
        )


def new_context(browser: Browser, log: PageLog, **options: Any) -> BrowserContext:
    """A new context (no cookies, no storage; ``options`` as ``browser.new_context``'s) whose
    pages reach 127.0.0.1 only, what they do recorded in ``log``; :data:`TIMEOUT_MS` for every
    wait.

    Two layers: a route on every request aborts and records those outside 127.0.0.1, and the
    context's proxy, a closed port that 127.0.0.1 alone bypasses, refuses what no route sees
    (the favicon, requests of workers). Playwright sends loopback through a context's proxy too
    (``<-loopback>``), hence the bypass."""
    context = browser.new_context(proxy={"server": _NOWHERE, "bypass": LOCAL_HOST}, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.route("**/*", log.on_route)
    context.on("console", log.on_console)
    context.on("weberror", lambda web_error: log.on_page_error(web_error.error))
    return context


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The machine's Chromium, headless, for the whole session (skip without it; fail in CI)."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_log() -> PageLog:
    """What the test's pages did; declare what they may do here, before they do it."""
    return PageLog()


@pytest.fixture
def browser_context_factory(
    browser: Browser, page_log: PageLog
) -> Iterator[Callable[..., BrowserContext]]:
    """``browser_context_factory(**options)``: a new context (:func:`new_context`), closed at
    teardown, where the test fails on a console error, an uncaught exception or a request
    outside 127.0.0.1 of any of its pages that it did not declare on ``page_log``."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        contexts.append(new_context(browser, page_log, **options))
        return contexts[-1]

    yield make
    for context in contexts:
        context.close()
    problems = page_log.problems()
    if problems:
        pytest.fail("the page misbehaved:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(browser_context_factory: Callable[..., BrowserContext]) -> Page:
    """A page in a new context (``browser_context_factory()``), offline but for 127.0.0.1,
    checked at teardown."""
    return browser_context_factory().new_page()


def screenshots_dir() -> Path:
    """``$MODEL_EXPORTER_SCREENSHOTS``, else ``.artifacts/screenshots`` of the project."""
    configured = os.environ.get(SCREENSHOTS_ENV)
    return Path(configured) if configured else ROOT / ".artifacts" / "screenshots"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``<screenshots_dir>/<name>.png``; returns its path."""
    path = screenshots_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    return path
