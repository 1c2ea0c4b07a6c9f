"""What the lean HTTP/1.1 client keeps of a large answer once it has handed it over.

A node's pools keep a connection per request in flight; a connection that kept the
pieces of its last answer until its next request would hold a body's worth of memory
per idle connection. A raw server on 127.0.0.1 writes a 1 MiB answer that arrives in
many pieces; the memory still allocated once the caller dropped the answer (Python's
own allocation tracer) must not contain it.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from gateway.net.http1client import Http1Client

SIZE = 1 << 20
BODY = bytes(range(256)) * (SIZE // 256)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE + BODY
SMALL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            writer.write(SMALL if head.startswith(b"GET /small ") else ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_a_pooled_connection_keeps_nothing_of_the_answer_it_handed_over() -> None:
    async def main() -> tuple[int, int, int]:
        server = await asyncio.start_server(_serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        client = Http1Client(max_body=2 * SIZE)
        try:
            await client.request("GET", url + "small", [], b"", timeout=10)  # the pool
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            response = await client.request("GET", url, [], b"", timeout=10)
            same = int(response.body == BODY)
            del response
            await asyncio.sleep(0)  # the loop's handle that resumed this task lets go
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            again = await client.request("GET", url, [], b"", timeout=10)
            return same + int(again.body == BODY), held, len(client._live)
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    tracemalloc.start()
    try:
        whole, held, live = asyncio.run(main())
    finally:
        tracemalloc.stop()
    assert whole == 2  # both answers read whole, the second on the pooled connection
    assert live == 1
    assert held < SIZE // 4, f"{held} bytes of a {SIZE}-byte answer still held"
