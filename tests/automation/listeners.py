"""A tiny SMTP server on one address, to see where notifiers really connect: it counts every
connection (whatever the client speaks) and keeps the messages handed to it."""

import asyncio
import socket
import threading


class SmtpListener:
    """asyncio, in a thread of its own. Speaks enough SMTP for smtplib (EHLO/HELO, AUTH
    PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT); an HTTP client gets the greeting as its
    status line and gives up."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.connections = 0
        self.messages: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    def start(self) -> "SmtpListener":
        self._thread.start()
        serving = asyncio.start_server(self._session, self.host, self.port)
        try:
            self._server = asyncio.run_coroutine_threadsafe(serving, self._loop).result(5)
        except OSError:  # the address is taken
            self._halt()
            raise
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def reset(self) -> None:
        self.connections, self.messages = 0, []

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1  # the loop's one thread: no lock needed
        writer.write(b"220 listener ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-listener\r\n250 AUTH PLAIN\r\n")
                elif verb == b"AUTH":
                    writer.write(b"235 2.7.0 accepted\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    self.messages.append(await _message(reader))
                    writer.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:  # HELO, MAIL, RCPT, RSET, NOOP -- and whatever an HTTP client says
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def _message(reader: asyncio.StreamReader) -> str:
    lines = []
    while (line := await reader.readline()) not in (b".\r\n", b""):
        lines.append(line)
    return b"".join(lines).decode(errors="replace")


def listening_pair(first: str, second: str) -> tuple[SmtpListener, SmtpListener]:
    """Two listeners on the same port of two addresses (a URL's port then fits either)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((second, 0))
            port = probe.getsockname()[1]
        try:
            one = SmtpListener(first, port).start()
        except OSError:  # taken on the other address: another port
            continue
        try:
            return one, SmtpListener(second, port).start()
        except OSError:
            one.stop()
    raise RuntimeError("no port free on both addresses")
