"""Real servers for the probe tests, for what pytest-httpserver cannot do: bodies that never
end or drip, a server that accepts and never answers, a port that never accepts, TLS with
certificates made at test time (a CA and leaves, one near expiry).

Every server listens on loopback (127.0.0.1 unless told ::1), runs in threads, and is a
context manager that stops them.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CHUNK = b"x" * 65_536

Script = Callable[[socket.socket, "ScriptedServer"], None]


class ScriptedServer:
    """Runs ``script(connection, server)`` in a thread for each connection it accepts, over
    TLS when given a context. Scripts should return once ``server.stopping`` is set."""

    def __init__(
        self, script: Script, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self.connections: list[socket.socket] = []
        self.requests: list[bytes] = []  # the request heads scripts read
        self.bytes_sent = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family, backlog=512)
        self.host = f"[{host}]" if ":" in host else host
        self.port = self._listener.getsockname()[1]

    def url(self, path: str = "/", scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self.ssl_context else "http")
        return f"{scheme}://{self.host}:{self.port}{path}"

    def __enter__(self) -> ScriptedServer:
        self._listener.settimeout(0.05)
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        with self._lock:
            for conn in self.connections:
                with suppress(OSError):
                    conn.close()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with self._lock:
                self.connections.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                with self._lock:
                    self.connections.append(conn)
            self.script(conn, self)
        except (OSError, ssl.SSLError):
            pass  # the prober hung up, or refused the certificate: both expected
        finally:
            with suppress(OSError):
                conn.close()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.bytes_sent += len(data)


# --- Scripts ----------------------------------------------------------------------------------


def read_request(conn: socket.socket, server: ScriptedServer) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65_536:
        data = conn.recv(4096)
        if not data:
            break
        head += data
    with server._lock:
        server.requests.append(head)
    return head


def answer(
    status: int = 200,
    body: bytes = b"ok",
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Script:
    """A complete response (after ``delay`` seconds), then close."""

    def script(conn: socket.socket, server: ScriptedServer) -> None:
        request = read_request(conn, server)
        if delay:
            server.stopping.wait(delay)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
        )
        server.send(conn, head.encode() + (b"" if request.startswith(b"HEAD ") else body))

    return script


def sized_body(size: int) -> Script:
    """A body of ``size`` bytes (say 50 MB), sent for as long as the client reads."""

    def script(conn: socket.socket, server: ScriptedServer) -> None:
        read_request(conn, server)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
        )
        server.send(conn, head.encode())
        left = size
        while left > 0 and not server.stopping.is_set():
            piece = CHUNK[: min(left, len(CHUNK))]
            server.send(conn, piece)
            left -= len(piece)

    return script


def endless_body(conn: socket.socket, server: ScriptedServer) -> None:
    """A chunked body that never ends."""
    read_request(conn, server)
    server.send(
        conn,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    while not server.stopping.is_set():
        server.send(conn, chunk)


def drip_body(conn: socket.socket, server: ScriptedServer) -> None:
    """Headers at once, then one byte of a 10,000-byte body every 100 ms."""
    read_request(conn, server)
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
    while not server.stopping.wait(0.1):
        server.send(conn, b".")


def http_on_first_bytes(conn: socket.socket, server: ScriptedServer) -> None:
    """Answers plain HTTP 400 to whatever arrives first (a TLS ClientHello, say)."""
    conn.recv(4096)
    server.send(conn, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def silent(conn: socket.socket, server: ScriptedServer) -> None:
    """Accepts and reads the request, never answers."""
    read_request(conn, server)
    server.stopping.wait(30)


@contextmanager
def never_accepting() -> Iterator[int]:
    """A port whose connects hang: a listener with a full backlog that never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # takes the one backlog slot
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def closed_port() -> int:
    """A port nothing listens on (just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- Certificates -----------------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path
    certificate: x509.Certificate

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class CertificateAuthority:
    """A CA made at test time; its leaves are for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe tests CA")])
        self.name = name
        self.certificate = (
            _builder(name, name, self.key, days=365)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def client_context(self) -> ssl.SSLContext:
        """Trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def issue(self, name: str, days: float = 90) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        certificate = (
            _builder(subject, self.name, key, days=days)
            .add_extension(_server_names(), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return _write(self.directory, name, key, certificate)


def self_signed(directory: Path, name: str = "self", days: float = 90) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    certificate = (
        _builder(subject, subject, key, days=days)
        .add_extension(_server_names(), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, name, key, certificate)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: float
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _server_names() -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )


def _write(directory: Path, name: str, key, certificate: x509.Certificate) -> Issued:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path, certificate)
