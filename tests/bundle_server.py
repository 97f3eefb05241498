"""A stand-in SPIFFE bundle endpoint for the rotation tests: it serves
whatever a test sets — a bundle, an error status, garbage, a reset
connection, a slow answer, an answer cut mid-body by a reset — and records
every fetch."""

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BundleServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.routes: dict[str, dict] = {}
        self.fetches: list[tuple[str, float, float]] = []  # (path, start, end)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                start = time.monotonic()
                with server.lock:
                    route = dict(server.routes.get(self.path, {"status": 404, "body": b"no such bundle"}))
                time.sleep(route.get("delay", 0))
                if route.get("cut"):
                    # Headers that announce the whole body, half of it, then a reset.
                    body = route["body"]
                    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                    try:
                        self.connection.sendall(head.encode() + body[: len(body) // 2])
                        time.sleep(0.05)
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                    except OSError:
                        pass
                    self.close_connection = True
                elif route.get("reset"):
                    self.connection.close()
                    self.close_connection = True
                else:
                    body = route["body"]
                    self.send_response(route["status"])
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                with server.lock:
                    server.fetches.append((self.path, start, time.monotonic()))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, doc: dict | None = None, *, status: int = 200, body: bytes | None = None,
              delay: float = 0, reset: bool = False, cut: bool = False):
        with self.lock:
            self.routes[path] = {"status": status, "body": body if body is not None else json.dumps(doc).encode(),
                                 "delay": delay, "reset": reset, "cut": cut}

    def fetches_of(self, path: str) -> list[tuple[float, float]]:
        with self.lock:
            return [(s, e) for p, s, e in self.fetches if p == path]

    def close(self):
        self.httpd.shutdown()


def cluster(name: str, port: int) -> dict:
    """An Envoy cluster that reaches the server."""
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
