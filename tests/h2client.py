"""A minimal HTTP/2 client (prior knowledge, cleartext) that can do what
the SDKs never do: end a request body with trailers. Built on the `h2`
protocol library, so every frame is sent exactly as asked."""

import socket
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class Response:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False

    def json(self):
        import json
        return json.loads(self.body)


def request(url: str, path: str, headers: list, chunks: list, trailers: list | None = None,
            method: str = "POST", timeout: float = 10) -> Response:
    """One request on a fresh connection: headers, each chunk as a DATA
    frame, then trailers (ending the stream) or an empty end-of-stream."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", method), (":path", path), (":scheme", "http"),
                               (":authority", f"{host}:{port}"), *headers], end_stream=not chunks and not trailers)
    for i, chunk in enumerate(chunks):
        conn.send_data(stream, chunk, end_stream=(i == len(chunks) - 1 and not trailers))
    if trailers:
        conn.send_headers(stream, trailers, end_stream=True)
    sock.sendall(conn.data_to_send())
    response = Response(status=0)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return response
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    response.headers = dict(event.headers)
                    response.status = int(response.headers[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    response.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    response.reset = True
                    return response
                elif isinstance(event, h2.events.StreamEnded):
                    return response
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
