"""A TCP proxy in front of the live server that breaks its first connections on purpose, the way a
hospital network does: one answered 503 by a "gateway", one whose request reaches the server but
whose answer is lost on the way back. Later connections pass through untouched."""

from __future__ import annotations

import socket
import threading
from typing import Literal

Fault = Literal["unavailable", "lose_answer"]
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def read_request(connection: socket.socket) -> bytes:
    """One whole HTTP request with a Content-Length body (what httpx sends for files from disk)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, target):
            end.close()


class FlakyProxy:
    """Listens on 127.0.0.1:`port`; connection i suffers `faults[i]`, the rest are forwarded."""

    def __init__(self, target_port: int, faults: list[Fault]) -> None:
        self.target_port, self.faults = target_port, list(faults)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.faults_done: list[Fault] = []
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            fault = self.faults.pop(0) if self.faults else None
            threading.Thread(target=self.handle, args=(client, fault), daemon=True).start()

    def handle(self, client: socket.socket, fault: Fault | None) -> None:
        if fault == "unavailable":
            read_request(client)
            client.sendall(UNAVAILABLE)
        else:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            if fault is None:
                threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
                pipe(client, upstream)
                return
            upstream.sendall(read_request(client))
            upstream.recv(1)  # the server answered, so it has done the work; the client never hears
            upstream.close()
        client.close()
        self.faults_done.append(fault)

    def close(self) -> None:
        self.listener.close()
