"""The lean HTTP/1.1 client against real servers on 127.0.0.1.

Each server is a raw ``asyncio`` server that writes exactly the bytes a test gives and
records every byte it receives, so the tests see the request as it went out and can
answer with any framing (or none). The TLS server's certificate is a THROWAWAY TEST
FIXTURE made per run. The last test holds the lean client to aiohttp's on generated
answers, valid and broken: the same status, headers and body, or both refuse.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.net.http1client import (
    BadAnswer,
    CannotConnect,
    ClientError,
    Disconnected,
    Http1Client,
    PeerRejected,
    TimedOut,
    TooLarge,
)

Answer = Callable[[bytes], bytes | None]
"""What a server writes for one request (its raw bytes); ``None``: close, write nothing."""


@dataclass
class Server:
    """A raw HTTP/1.1 server: ``answers[i]`` answers the i-th request on any connection."""

    answers: list[Answer]
    close_after: bool = False
    """Close each connection after its first answer (without saying so)."""
    received: list[bytes] = field(default_factory=list)
    """Every connection's bytes, in the order connections ended."""
    connections: int = 0
    port: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _count: int = 0
    _open: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        seen = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                seen += data
                if not _whole_request(seen):
                    continue
                answer = self.answers[min(self._count, len(self.answers) - 1)](seen)
                self._count += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
                self.received.append(seen)
                seen = b""
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.received.append(seen)
            writer.close()
            self._open.pop(task, None)
            self.closed.set()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._open.values():
            writer.transport.abort()
        await asyncio.gather(*self._open, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _whole_request(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def fixed(answer: bytes) -> Answer:
    return lambda _request: answer


T = TypeVar("T")


def run(work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await work()

    return asyncio.run(main())


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_the_request_goes_out_as_given_and_the_connection_is_kept() -> None:
    async def work() -> tuple[list[bytes], int, list[bytes], int]:
        server = await Server([fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            bodies = []
            for _ in range(3):
                response = await client.request(
                    "POST",
                    f"{server.url}/p/a%2Fb?q=1&r",
                    [("x-a", "1"), ("X-Road-Client", "DE/GOV/1/a")],
                    b"abc",
                    timeout=5,
                )
                bodies.append(response.body)
            await client.close()
            await server.closed.wait()
            return bodies, server.connections, server.received, server.port
        finally:
            await server.stop()

    bodies, connections, received, port = run(work)
    assert bodies == [b"ok"] * 3
    assert connections == 1
    one = (
        b"POST /p/a%2Fb?q=1&r HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nx-a: 1\r\n"
        b"X-Road-Client: DE/GOV/1/a\r\nContent-Length: 3\r\n\r\nabc"
    ).replace(b"PORT", str(port).encode())
    assert received[:3] == [one, one, one]


def test_a_get_without_a_body_has_no_content_length_and_a_given_host_is_kept() -> None:
    async def work() -> bytes:
        server = await Server([fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            await client.request("GET", f"{server.url}", [("Host", "registry")], b"", timeout=5)
            await client.close()
            await server.closed.wait()
            return server.received[0]
        finally:
            await server.stop()

    assert run(work) == b"GET / HTTP/1.1\r\nHost: registry\r\n\r\n"


def test_chunked_answers_keep_duplicate_headers_in_order() -> None:
    answer = (
        b"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nX-Other: x\r\nset-cookie: b=2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    )

    async def work() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        server = await Server([fixed(answer)]).start()
        client = Http1Client(max_body=1000)
        try:
            out = []
            for _ in range(2):
                r = await client.request("GET", server.url + "/", [], b"", timeout=5)
                out.append((r.status, list(r.headers.items()), r.body))
            assert server.connections == 1
            return out
        finally:
            await client.close()
            await server.stop()

    for status, headers, body in run(work):
        assert status == 201
        assert body == b"abcdefgh"
        assert headers[:3] == [("Set-Cookie", "a=1"), ("X-Other", "x"), ("set-cookie", "b=2")]


def test_an_answer_delimited_by_the_close_is_read_whole_and_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 70_000

    async def work() -> tuple[list[bytes], int]:
        server = await Server([fixed(answer)], close_after=True).start()
        client = Http1Client(max_body=100_000)
        try:
            bodies = [
                (await client.request("GET", server.url + "/", [], b"", timeout=5)).body
                for _ in range(2)
            ]
            return bodies, server.connections
        finally:
            await client.close()
            await server.stop()

    bodies, connections = run(work)
    assert bodies == [b"x" * 70_000] * 2
    assert connections == 2


def test_no_body_for_head_204_304_and_interim_answers() -> None:
    answers = [
        fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),  # HEAD
        fixed(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
        fixed(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        fixed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
    ]

    async def work() -> list[tuple[int, bytes, str | None]]:
        server = await Server(answers).start()
        client = Http1Client(max_body=1000)
        try:
            out = []
            for method in ("HEAD", "GET", "GET", "POST"):
                r = await client.request(method, server.url + "/", [], b"", timeout=5)
                out.append((r.status, r.body, r.headers.get("Content-Length")))
            return out
        finally:
            await client.close()
            await server.stop()

    assert run(work) == [(200, b"", "10"), (204, b"", None), (304, b"", "5"), (200, b"z", "1")]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"64\r\n" + b"b" * 100 + b"\r\n" for _ in range(11))
        + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"c" * 1001,
    ],
    ids=["length", "chunked", "until-close"],
)
def test_a_body_over_the_limit_aborts_the_connection(answer: bytes) -> None:
    async def work() -> tuple[ClientError, int]:
        server = await Server([fixed(answer), fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            with pytest.raises(TooLarge) as refused:
                await client.request("GET", server.url + "/", [], b"", timeout=5)
            await server.closed.wait()  # the client closed its end
            ok = await client.request("GET", server.url + "/", [], b"", timeout=5)
            assert ok.body == b"ok"
            return refused.value, server.connections
        finally:
            await client.close()
            await server.stop()

    refused, connections = run(work)
    assert refused.sent
    assert connections == 2


def test_a_pooled_connection_the_server_closed_is_not_reused() -> None:
    """A POST is never sent twice; it only finds a live connection because the closed
    one was dropped from the pool before reuse."""

    async def work() -> tuple[list[bytes], int]:
        server = await Server([fixed(OK)], close_after=True).start()
        client = Http1Client(max_body=1000)
        try:
            first = await client.request("POST", server.url + "/", [], b"1", timeout=5)
            await server.closed.wait()
            await asyncio.sleep(0.2)  # let the loop see the close
            second = await client.request("POST", server.url + "/", [], b"2", timeout=5)
            return [first.body, second.body], server.connections
        finally:
            await client.close()
            await server.stop()

    assert run(work) == ([b"ok", b"ok"], 2)


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
def test_only_an_idempotent_request_is_sent_again_after_a_reused_connection_broke(
    method: str, retried: bool
) -> None:
    """The server takes the second request and closes without a word: a GET goes once
    more on a new connection, a POST fails as sent (the server may have acted)."""

    async def work() -> tuple[bytes | ClientError, int]:
        server = await Server([fixed(OK), lambda _r: None, fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            await client.request(method, server.url + "/", [], b"", timeout=5)
            try:
                return (await client.request(method, server.url + "/", [], b"", timeout=5)).body, (
                    server.connections
                )
            except Disconnected as exc:
                return exc, server.connections
        finally:
            await client.close()
            await server.stop()

    outcome, connections = run(work)
    if retried:
        assert (outcome, connections) == (b"ok", 2)
    else:
        assert isinstance(outcome, Disconnected) and outcome.sent
        assert "closed before a complete answer" in str(outcome)
        assert connections == 1


# ------------------------------------------------------------------ TLS and the peer check


def _tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (THROWAWAY TEST FIXTURE)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "test-cert.pem", directory / "test-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, bytes]:
    cert, key = _tls_files(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=str(cert))
    client.check_hostname = False
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    return server, client, hashlib.sha256(der).digest()


def test_a_refused_peer_sees_not_a_byte_of_the_request(tmp_path: Path) -> None:
    server_tls, client_tls, pin = _contexts(tmp_path)
    seen: list[bytes | None] = []

    def refuse(der: bytes | None) -> None:
        seen.append(der)
        raise ValueError("not the registered certificate")

    def accept(der: bytes | None) -> None:
        assert der is not None and hashlib.sha256(der).digest() == pin

    async def work() -> tuple[PeerRejected, list[bytes], bytes | None]:
        server = await Server([fixed(OK)]).start(server_tls)
        client = Http1Client(max_body=1000)
        url = f"https://127.0.0.1:{server.port}/x"
        try:
            with pytest.raises(PeerRejected) as refused:
                await client.request(
                    "POST", url, [], b"secret", timeout=5, ssl_context=client_tls, check=refuse
                )
            await server.closed.wait()
            received = list(server.received)
            good = await client.request(
                "POST", url, [], b"fine", timeout=5, ssl_context=client_tls, check=accept
            )
            return refused.value, received, good.peer_cert
        finally:
            await client.close()
            await server.stop()

    refused, received, peer_cert = run(work)
    assert received == [b""]  # the handshake happened, the request did not
    assert not refused.sent
    assert isinstance(refused.reason, ValueError)
    assert seen and seen[0] == peer_cert
    assert peer_cert is not None and hashlib.sha256(peer_cert).digest() == pin


def test_a_connection_is_reused_only_under_the_check_it_passed(tmp_path: Path) -> None:
    """A pin changed after a connection was pooled: the next request takes a new
    connection, which the new check refuses, instead of the one the old check let by."""
    server_tls, client_tls, _ = _contexts(tmp_path)

    def old_pin(der: bytes | None) -> None:
        pass

    def new_pin(der: bytes | None) -> None:
        raise ValueError("the pin changed")

    async def work() -> int:
        server = await Server([fixed(OK)]).start(server_tls)
        client = Http1Client(max_body=1000)
        url = f"https://127.0.0.1:{server.port}/x"
        try:
            await client.request(
                "GET", url, [], b"", timeout=5, ssl_context=client_tls, check=old_pin
            )
            with pytest.raises(PeerRejected):
                await client.request(
                    "GET", url, [], b"", timeout=5, ssl_context=client_tls, check=new_pin
                )
            await client.close()
            await server.closed.wait()
            return len([r for r in server.received if r])
        finally:
            await server.stop()

    assert run(work) == 1  # the first request only


def test_an_https_url_needs_a_context() -> None:
    async def work() -> None:
        await Http1Client(max_body=1).request("GET", "https://127.0.0.1:1/", [], b"", timeout=1)

    with pytest.raises(ValueError, match="TLS context"):
        run(work)


# ------------------------------------------------------------------ failures and timeouts


def test_a_refused_connection_sent_nothing() -> None:
    async def work() -> CannotConnect:
        server = await Server([fixed(OK)]).start()
        port = server.port
        await server.stop()
        with pytest.raises(CannotConnect) as refused:
            await Http1Client(max_body=1).request(
                "POST", f"http://127.0.0.1:{port}/", [], b"x", timeout=5
            )
        return refused.value

    refused = run(work)
    assert not refused.sent
    assert str(refused).endswith(": connection refused"), str(refused)


def test_a_handshake_that_never_ends_is_a_connect_timeout(tmp_path: Path) -> None:
    """A listener that never accepts (the kernel completes the TCP handshake from its
    backlog) and so never speaks TLS: nothing was sent."""
    _, client_tls, _ = _contexts(tmp_path)

    async def work() -> TimedOut:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        client = Http1Client(max_body=1)
        try:
            with pytest.raises(TimedOut) as late:
                await client.request(
                    "POST",
                    f"https://127.0.0.1:{port}/",
                    [],
                    b"x",
                    timeout=5,
                    connect_timeout=0.3,
                    ssl_context=client_tls,
                )
            return late.value
        finally:
            await client.close()
            silent.close()

    late = run(work)
    assert (late.phase, late.sent, str(late)) == ("connect", False, "no connection within 0.3 s")


def test_an_answer_that_never_comes_is_a_timeout_after_sending() -> None:
    async def work() -> TimedOut:
        server = await Server([lambda _r: b""]).start()  # reads, never answers
        client = Http1Client(max_body=1)
        try:
            with pytest.raises(TimedOut) as late:
                await client.request("POST", server.url + "/", [], b"x", timeout=0.3)
            return late.value
        finally:
            await client.close()
            await server.stop()

    late = run(work)
    assert (late.phase, late.sent, str(late)) == ("answer", True, "no complete answer within 0.3 s")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"SMTP ready\r\n\r\n", "bad answer"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", "over 8190 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "cut off"),
        (b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "switched"),
    ],
    ids=["not-http", "long-field", "cut-off", "upgrade"],
)
def test_a_broken_answer_is_refused_in_words(answer: bytes, words: str) -> None:
    async def work() -> ClientError:
        server = await Server([fixed(answer)], close_after=True).start()
        client = Http1Client(max_body=1000)
        try:
            with pytest.raises((BadAnswer, Disconnected)) as refused:
                await client.request("GET", server.url + "/", [], b"", timeout=5)
            return refused.value
        finally:
            await client.close()
            await server.stop()

    refused = run(work)
    assert refused.sent
    assert words in str(refused), str(refused)


@pytest.mark.parametrize(
    "header", [("x-a", "1\r\nX-Injected: 1"), ("x-a\n", "1"), ("x-a", "1\x00")]
)
def test_a_header_that_would_split_the_head_is_refused_before_connecting(
    header: tuple[str, str],
) -> None:
    async def work() -> int:
        server = await Server([fixed(OK)]).start()
        try:
            with pytest.raises(ValueError, match="CR, LF or NUL"):
                await Http1Client(max_body=1).request(
                    "GET", server.url + "/", [header], b"", timeout=5
                )
            return server.connections
        finally:
            await server.stop()

    assert run(work) == 0


# ------------------------------------------------------------------ agreement with aiohttp


def _answer(
    status: int, headers: list[tuple[str, str]], body: bytes, framing: str, cut: int
) -> bytes:
    head = [f"HTTP/1.1 {status} X"] + [f"{n}: {v}" for n, v in headers]
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:3], body[3:]) if p)
        payload += b"0\r\n\r\n"
    else:
        payload = body
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    return raw[: len(raw) - cut] if cut else raw


async def _with_aiohttp(url: str) -> tuple[int, list[tuple[str, str]], bytes] | str:
    try:
        async with (
            aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding")
            ) as session,
            session.get(url, allow_redirects=False) as resp,
        ):
            body = await resp.read()
            return resp.status, list(resp.headers.items()), body
    except (aiohttp.ClientError, ValueError):
        return "refused"


async def _with_lean(url: str) -> tuple[int, list[tuple[str, str]], bytes] | str:
    client = Http1Client(max_body=1 << 20)
    try:
        r = await client.request("GET", url, [], b"", timeout=5)
        return r.status, list(r.headers.items()), r.body
    except ClientError:
        return "refused"
    finally:
        await client.close()


Reading = tuple[int, list[tuple[str, str]], bytes] | str

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda t: t not in ("content-length", "transfer-encoding", "connection")
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 201, 204, 304, 404, 500]),
    headers=st.lists(
        st.tuples(TOKEN, st.text("abc xyz=;,/0123", max_size=20).map(str.strip)), max_size=5
    ),
    body=st.binary(max_size=300),
    framing=st.sampled_from(["length", "chunked", "close"]),
    cut=st.sampled_from([0, 0, 1, 4]),
    noise=st.sampled_from([b"", b"", b"garbage\r\n"]),
)
def test_the_lean_client_reads_what_aiohttp_reads(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    framing: str,
    cut: int,
    noise: bytes,
) -> None:
    raw = noise + _answer(status, headers, body, framing, cut)

    async def work() -> tuple[Reading, Reading]:
        server = await Server([fixed(raw)], close_after=True).start()
        try:
            return await _with_aiohttp(server.url + "/"), await _with_lean(server.url + "/")
        finally:
            await server.stop()

    theirs, ours = run(work)
    # Field names are case-insensitive; aiohttp spells the ones it knows its own way
    # ("warning" comes back as "Warning"), so names are compared in lower case.
    assert _lower_names(ours) == _lower_names(theirs)


def _lower_names(answer: Reading) -> Reading:
    if isinstance(answer, str):
        return answer
    status, headers, body = answer
    return status, [(name.lower(), value) for name, value in headers], body
