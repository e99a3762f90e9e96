"""Probe targets for the health benchmark: a minimal uvloop server, in a process of its own.

    python -m bench.targets --http PORT --https PORT --hang PORT --cert-dir DIR

``--http``: every connection gets a tiny 200 to its first request and is closed (the engine
opens a new connection per probe). ``--https``: the same behind TLS (the certificate and key
in DIR, see bench.probes.write_certificate). ``--hang``: connections are accepted and never
answered, so probes time out. Each port is bound with SO_REUSEPORT, so several of these
processes can share the load. It prints "ready" once listening and runs until terminated.
"""

import argparse
import asyncio
import functools
import socket
import ssl
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


class Answer(asyncio.Protocol):
    """Answers the first request on a connection, then closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.seen = b""

    def data_received(self, data: bytes) -> None:
        self.seen += data
        if b"\r\n\r\n" in self.seen:
            self.transport.write(RESPONSE)
            self.transport.close()


class Hang(asyncio.Protocol):
    """Accepts, reads, never answers: the client gives up (its timeout)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass


BACKLOG = 4096  # the kernel caps it at net.core.somaxconn


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def serve(options: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    # create_server listens with its own backlog (100 by default, whatever the socket had):
    # a full accept queue drops connections, which the prober sees as timeouts.
    listen = functools.partial(loop.create_server, backlog=BACKLOG)
    servers = []
    if options.http:
        servers.append(await listen(Answer, sock=listening_socket(options.http)))
    if options.https:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{options.cert_dir}/cert.pem", f"{options.cert_dir}/key.pem")
        servers.append(await listen(Answer, sock=listening_socket(options.https), ssl=context))
    if options.hang:
        servers.append(await listen(Hang, sock=listening_socket(options.hang)))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", type=int, default=0)
    parser.add_argument("--https", type=int, default=0)
    parser.add_argument("--hang", type=int, default=0)
    parser.add_argument("--cert-dir", default="")
    options = parser.parse_args(argv)
    uvloop.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
