"""A loopback image server for the benchmarks: aiohttp in its own process, ``GET /img/<index>.jpg`` answers
``image_bytes(index)`` (after ``latency`` seconds, when given).

    server, base = start_server(image_bytes)   # base = "http://127.0.0.1:<port>"
    ...
    server.terminate()

``image_bytes`` must be picklable (a module-level function or a small callable object): the server runs in a
spawned process, so the benchmark's own timings and memory are not mixed with the serving.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from multiprocessing.process import BaseProcess

ImageBytes = Callable[[int], bytes]


def serve(port_queue: multiprocessing.Queue, image_bytes: ImageBytes, latency: float = 0.0) -> None:
    from aiohttp import web

    async def image(request: web.Request) -> web.Response:
        if latency:
            await asyncio.sleep(latency)
        return web.Response(body=image_bytes(int(request.match_info["index"])), content_type="image/jpeg")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/img/{index:\\d+}.jpg", image)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(image_bytes: ImageBytes, latency: float = 0.0, timeout: float = 120) -> tuple[BaseProcess, str]:
    """Start the server in a spawned daemon process; returns it and its base URL once it listens."""
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = context.Queue()
    server = context.Process(target=serve, args=(ports, image_bytes, latency), daemon=True)
    server.start()
    return server, f"http://127.0.0.1:{ports.get(timeout=timeout)}"
