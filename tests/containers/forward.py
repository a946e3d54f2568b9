"""A TCP forwarder: what a Kubernetes Service (port -> a pod's targetPort) and `kubectl port-forward` do.

As a script, inside a container on the test network (standard library only, so any image with Python runs it):
    python forward.py 80=churnguard-predictor:8080 [5000=churnguard-mlflow:5000 ...]
The target's name is resolved for every connection, as kube-proxy follows a Service's endpoints, so a
restarted pod with a new address is found again. As a module, `port_forward` runs one on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(host: str, port: int):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()  # like a Service without ready endpoints: the connection is refused
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def serve(rules: list[tuple[str, int, str, int]]) -> None:
    servers = [await asyncio.start_server(_handler(th, tp), lh, lp) for lh, lp, th, tp in rules]
    print("forwarding " + ", ".join(f"{lh}:{lp} -> {th}:{tp}" for lh, lp, th, tp in rules), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def parse(rule: str) -> tuple[str, int, str, int]:
    listen, target = rule.split("=")
    host, port = target.rsplit(":", 1)
    return "0.0.0.0", int(listen), host, int(port)


@contextlib.contextmanager
def port_forward(target_host: str, target_port: int) -> Iterator[str]:
    """Forward a free 127.0.0.1 port to target_host:target_port in a thread; yields http://127.0.0.1:<port>."""
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = await asyncio.start_server(_handler(target_host, target_port), "127.0.0.1", 0)
        ready.append(int(server.sockets[0].getsockname()[1]))
        started.set()
        await stop.wait()
        server.close()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("port-forward did not start")
    try:
        yield f"http://127.0.0.1:{ready[0]}"
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


if __name__ == "__main__":
    asyncio.run(serve([parse(r) for r in sys.argv[1:]]))
