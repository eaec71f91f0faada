"""exporter/ui/process.py with real child processes: the child renders what the server's threads
would, a dead child is replaced, a slow one is killed, a failing render says why, waiting is
bounded, and the child ends with the server (closed, or killed)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.api.ui import _common, _inputs
from exporter.ui import process
from exporter.ui.jobs import ModelInputs, ModelPageJob, OverviewJob, PageJob
from exporter.ui.process import InlineRenderer, PageFailed, PagesBusy, ProcessRenderer
from tests.conftest import Exporter
from tests.test_ui_pages import feed

Make = Callable[..., Exporter]
ROOT = Path(__file__).resolve().parents[1]


class Slow:
    """A "job" whose unpickling, in the child, sleeps: a render that hangs."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (time.sleep, (self.seconds,))


def jobs(exp: Exporter) -> tuple[OverviewJob, ModelPageJob]:
    ctx = exp.app.state.ctx
    now = ctx.store.clock()
    models = tuple(_inputs(ctx, state, now) for state in ctx.store.models())
    excerpt = ctx.history.excerpt(["churn"])
    common = _common(ctx, now)
    overview = OverviewJob(models, ctx.settings, ctx.thresholds, excerpt, now, common)
    page = ModelPageJob(
        models[0], ctx.settings, ctx.thresholds, excerpt, now, common, sort="name", feature="y"
    )
    return overview, page


@pytest.fixture
def populated(make_exporter: Make) -> Exporter:
    exp = make_exporter(quality={"min_samples": 50}, drift={"reference_size": 200})
    feed(exp, "churn", n=400)
    feed(exp, "churn", n=300, shift=2.0, prefix="s")
    exp.refresh_drift()
    return exp


@pytest.fixture
def renderer() -> Any:
    r = ProcessRenderer(timeout=30.0)
    yield r
    r.close()


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for its parent to reap it, has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_child_renders_exactly_what_the_server_would(
    populated: Exporter, renderer: ProcessRenderer
) -> None:
    inline = InlineRenderer()
    for job in jobs(populated):
        html = renderer.render(job)
        assert html == inline.render(job)
        assert "<svg" in html and "churn" in html
    assert renderer.child_pid is not None and renderer.child_pid != os.getpid()


def test_the_server_serves_pages_from_its_child(populated: Exporter) -> None:
    pages = populated.app.state.ctx.pages
    assert isinstance(pages, ProcessRenderer)  # the default
    r = populated.client.get("/ui/models/churn")
    assert r.status_code == 200 and "churn" in r.text
    pid = pages.child_pid
    assert pid is not None and alive(pid)
    assert populated.client.get("/").status_code == 200
    assert pages.child_pid == pid  # one child for every page


def test_a_dead_child_is_replaced_and_the_page_still_renders(
    populated: Exporter, renderer: ProcessRenderer
) -> None:
    _, page = jobs(populated)
    first = renderer.render(page)
    pid = renderer.child_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 5)
    assert renderer.render(page) == first
    assert renderer.child_pid not in (None, pid)


def test_a_render_that_fails_says_why_and_keeps_the_child(
    populated: Exporter, renderer: ProcessRenderer
) -> None:
    _, page = jobs(populated)
    renderer.render(page)
    pid = renderer.child_pid
    with pytest.raises(PageFailed) as failed:
        renderer.render(object())  # type: ignore[arg-type]  # not a job
    assert failed.value.why == "rendering the page failed"
    assert failed.value.cause is not None and "Traceback" in failed.value.cause
    assert renderer.child_pid == pid
    assert "churn" in renderer.render(page)


def test_a_render_past_the_timeout_is_killed_and_the_next_gets_a_new_child(
    populated: Exporter,
) -> None:
    renderer = ProcessRenderer(timeout=0.5)
    try:
        _, page = jobs(populated)
        renderer.render(page)  # started (the start is not part of the timeout)
        pid = renderer.child_pid
        assert pid is not None
        started = time.monotonic()
        with pytest.raises(PageFailed, match=r"longer than ui.render_timeout \(0.5 s\)"):
            renderer.render(Slow(30))  # type: ignore[arg-type]
        assert time.monotonic() - started < 10
        assert wait_gone(pid, 5)
        assert "churn" in renderer.render(page)
        assert renderer.child_pid not in (None, pid)
    finally:
        renderer.close()


def test_waiting_pages_are_bounded(populated: Exporter) -> None:
    renderer = ProcessRenderer(timeout=30.0, max_waiting=0)  # the one rendering, none waiting
    try:
        _, page = jobs(populated)
        renderer.render(page)
        outcome: list[BaseException] = []

        def hold() -> None:  # 1.5 s in the child, then "not a job"
            try:
                renderer.render(Slow(1.5))  # type: ignore[arg-type]
            except PageFailed as exc:
                outcome.append(exc)

        busy = threading.Thread(target=hold)
        busy.start()
        time.sleep(0.3)
        with pytest.raises(PagesBusy):
            renderer.render(page)
        busy.join()
        assert len(outcome) == 1
        assert "churn" in renderer.render(page)  # its turn back
    finally:
        renderer.close()


def test_a_busy_renderer_answers_429_with_retry_after(populated: Exporter) -> None:
    class Busy:
        def render(self, job: PageJob) -> str:
            raise PagesBusy(8)

        def close(self) -> None:
            pass

    populated.app.state.ctx.pages = Busy()
    before = populated.metrics().get(
        ("model_exporter_events_rejected_total", frozenset({("reason", "overloaded")})), 0.0
    )
    for path in ("/", "/ui/models/churn"):
        r = populated.client.get(path)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "1"
        assert r.json()["reason"] == "overloaded"
        assert "8 pages are already waiting" in r.json()["detail"]
    after = populated.metrics()[
        ("model_exporter_events_rejected_total", frozenset({("reason", "overloaded")}))
    ]
    assert after == before + 2


def test_close_ends_the_child(populated: Exporter) -> None:
    renderer = ProcessRenderer(timeout=30.0)
    _, page = jobs(populated)
    renderer.render(page)
    pid = renderer.child_pid
    assert pid is not None
    renderer.close()
    assert wait_gone(pid, 5)
    assert renderer.child_pid is None
    with pytest.raises(PageFailed, match="stopping"):  # no child started after close
        renderer.render(page)
    assert renderer.child_pid is None
    renderer.start()
    try:  # the app's lifespan may start again: so does the renderer
        assert "churn" in renderer.render(page)
        assert renderer.child_pid not in (None, pid)
    finally:
        renderer.close()


def test_the_child_ends_when_the_server_is_killed(tmp_path: Path) -> None:
    # A server that starts its child, then dies without any cleanup (as under kill -9).
    script = textwrap.dedent(
        """
        import os, sys
        from exporter.ui.process import PageFailed, ProcessRenderer
        r = ProcessRenderer(timeout=30.0)
        try:
            r.render(object())
        except PageFailed:
            pass
        print(r.child_pid, flush=True)
        os._exit(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pid = int(done.stdout.strip())
    assert wait_gone(pid, 10), f"the page renderer {pid} outlived its server"


def test_a_child_that_cannot_start_fails_the_page_twice_and_leaves_nothing(
    populated: Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_BOOT", "import sys\nsys.exit(3)\n")
    renderer = ProcessRenderer(timeout=30.0)
    _, page = jobs(populated)
    with pytest.raises(PageFailed, match="the page renderer exited"):
        renderer.render(page)
    assert renderer.child_pid is None
    monkeypatch.undo()
    try:
        assert "churn" in renderer.render(page)  # it can start again: so does the page
    finally:
        renderer.close()


def test_close_does_not_wait_for_the_page_being_rendered(populated: Exporter) -> None:
    renderer = ProcessRenderer(timeout=30.0)
    _, page = jobs(populated)
    renderer.render(page)
    pid = renderer.child_pid
    assert pid is not None
    outcome: list[BaseException] = []

    def slow() -> None:
        try:
            renderer.render(Slow(20))  # type: ignore[arg-type]
        except PageFailed as exc:
            outcome.append(exc)

    busy = threading.Thread(target=slow)
    busy.start()
    time.sleep(0.3)
    started = time.monotonic()
    renderer.close()
    assert time.monotonic() - started < 5
    busy.join(10)
    assert not busy.is_alive() and len(outcome) == 1
    assert wait_gone(pid, 5)
    assert renderer.child_pid is None  # the failed page started none after close


def test_a_job_leaves_the_reference_values_out_and_renders_the_same(populated: Exporter) -> None:
    _, page = jobs(populated)
    ctx = populated.app.state.ctx
    full = ctx.store.get("churn").snapshot(page.now)
    assert any(v.reference.reference is not None for v in full.versions)
    assert all(v.reference.reference is None for v in page.model.snapshot.versions)
    assert [v.reference.source for v in page.model.snapshot.versions] == [
        v.reference.source for v in full.versions
    ]
    whole = ModelPageJob(
        ModelInputs(full, page.model.drift, page.model.sequential),
        page.settings,
        page.thresholds,
        page.history,
        page.now,
        page.common,
        sort=page.sort,
        feature=page.feature,
    )
    inline = InlineRenderer()
    assert inline.render(whole) == inline.render(page)
    references = len(pickle.dumps([v.reference.reference for v in full.versions]))
    # (less the class names and header both pickles share)
    assert len(pickle.dumps(whole)) - len(pickle.dumps(page)) >= 0.8 * references
