"""Scrapes first: ingest waits (boundedly) while a scrape renders."""

from __future__ import annotations

import asyncio
import threading
import time

from exporter.api.priority import MAX_WAIT, ScrapePriority


def test_ingest_waits_for_a_rendering_scrape_and_goes_on_when_it_ends() -> None:
    async def main() -> list[str]:
        priority = ScrapePriority()
        order: list[str] = []
        started, release = threading.Event(), threading.Event()

        def render() -> str:
            started.set()
            release.wait(5)
            order.append("rendered")
            return "body"

        scrape = asyncio.create_task(priority.scrape(render))
        while not started.is_set():
            await asyncio.sleep(0.001)

        async def ingest() -> None:
            await priority.ingest()
            order.append("ingested")

        step = asyncio.create_task(ingest())
        await asyncio.sleep(MAX_WAIT / 5)
        assert order == []  # waiting behind the render
        release.set()
        assert await scrape == "body"
        await step
        return order

    assert asyncio.run(main()) == ["rendered", "ingested"]


def test_a_stuck_render_delays_ingest_by_at_most_max_wait() -> None:
    async def main() -> float:
        priority = ScrapePriority()
        started, release = threading.Event(), threading.Event()

        def render() -> None:
            started.set()
            release.wait(5)

        scrape = asyncio.create_task(priority.scrape(render))
        while not started.is_set():
            await asyncio.sleep(0.001)
        t0 = time.monotonic()
        await priority.ingest()
        waited = time.monotonic() - t0
        release.set()
        await scrape
        return waited

    waited = asyncio.run(main())
    assert MAX_WAIT * 0.9 <= waited < MAX_WAIT + 1.0


def test_without_a_scrape_ingest_does_not_wait() -> None:
    async def main() -> float:
        priority = ScrapePriority()
        assert await priority.scrape(lambda: 7) == 7  # done: nothing is rendering any more
        t0 = time.monotonic()
        await priority.ingest()
        return time.monotonic() - t0

    assert asyncio.run(main()) < MAX_WAIT / 2


def test_a_page_thread_sleeps_while_a_scrape_renders_and_not_longer_than_max_wait() -> None:
    async def main() -> tuple[list[str], float, float]:
        priority = ScrapePriority()
        order: list[str] = []
        started, release = threading.Event(), threading.Event()

        def render() -> str:
            started.set()
            release.wait(5)
            order.append("rendered")
            return "body"

        idle_started = time.monotonic()
        priority.yield_to_scrapes()  # no scrape: at once
        idle = time.monotonic() - idle_started
        scrape = asyncio.create_task(priority.scrape(render))
        while not started.is_set():
            await asyncio.sleep(0.001)
        assert priority.rendering

        def page() -> None:
            priority.yield_to_scrapes()
            order.append("page")

        waited = time.monotonic()
        thread = threading.Thread(target=page)
        thread.start()
        await asyncio.sleep(MAX_WAIT / 5)
        assert order == []  # the page gives way to the render
        thread.join(5)  # the render never ends in time: the page goes on after MAX_WAIT
        waited = time.monotonic() - waited
        release.set()
        await scrape
        return order, idle, waited

    order, idle, waited = asyncio.run(main())
    assert order == ["page", "rendered"]
    assert idle < MAX_WAIT / 5 and MAX_WAIT <= waited < MAX_WAIT + 1.0
