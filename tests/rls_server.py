"""A stand-in for Envoy's rate-limit service (RLS): a gRPC server of
`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` that answers
every request OK and keeps what it received, so a test can read the
descriptors and the `hits_addend` Envoy's `ratelimit` filter sent.

No generated stubs: the few fields it reads are decoded from the wire by
hand (grpcio only carries the bytes).

    RateLimitRequest     domain = 1 (string), descriptors = 2 (repeated),
                         hits_addend = 3 (uint32)
    RateLimitDescriptor  entries = 1 (repeated Entry{key = 1, value = 2}),
                         hits_addend = 3 (google.protobuf.UInt64Value{value = 1})
    RateLimitResponse    overall_code = 1 (OK = 1)

In a test: `with RateLimitService() as rls: ... rls.port ... rls.received()`.
Alone: `python tests/rls_server.py --port N` prints each request as JSON.
"""

import argparse
import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
OK = b"\x08\x01"  # RateLimitResponse{overall_code: OK}


# --- protobuf wire format: just enough to read a RateLimitRequest ----------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A message's (field number, value) pairs, in wire order: varints as
    ints, length-delimited fields as bytes; fixed-width fields are skipped."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            length, i = _varint(data, i)
            out.append((number, data[i:i + length]))
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
    return out


@dataclass
class Descriptor:
    entries: list[tuple[str, str]]
    hits_addend: int | None  # None: the field was not sent


@dataclass
class Request:
    domain: str
    descriptors: list[Descriptor] = field(default_factory=list)
    hits_addend: int = 0  # the request-wide one (0 when not sent)
    received_at: float = 0.0

    def as_json(self) -> dict:
        return {"domain": self.domain, "hits_addend": self.hits_addend,
                "descriptors": [{"entries": d.entries, "hits_addend": d.hits_addend} for d in self.descriptors]}


def decode(data: bytes) -> Request:
    """A serialized RateLimitRequest."""
    request = Request(domain="", received_at=time.monotonic())
    for number, value in _fields(data):
        if number == 1:
            request.domain = value.decode()
        elif number == 3:
            request.hits_addend = value
        elif number == 2:
            entries, addend = [], None
            for n, v in _fields(value):
                if n == 1:
                    entry = dict(_fields(v))
                    entries.append((entry.get(1, b"").decode(), entry.get(2, b"").decode()))
                elif n == 3:
                    addend = dict(_fields(v)).get(1, 0)  # UInt64Value: an absent value is 0
            request.descriptors.append(Descriptor(entries, addend))
    return request


# --- the service ---------------------------------------------------------------


class RateLimitService:
    """The stand-in RLS on 127.0.0.1 (a free port unless `port` is given),
    started on entering and stopped on exit. Every request is answered OK
    and kept, in arrival order."""

    def __init__(self, port: int = 0, on_request=None):
        self._requested_port = port
        self._on_request = on_request
        self._lock = threading.Condition()
        self._received: list[Request] = []
        self._server = None
        self.port = None

    def _should_rate_limit(self, data: bytes, context) -> bytes:
        request = decode(data)
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()
        if self._on_request:
            self._on_request(request)
        return OK

    def start(self) -> "RateLimitService":
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            # Identity (de)serializers: the handler sees and returns raw bytes.
            "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(self._should_rate_limit)})
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self._requested_port}")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)

    def __enter__(self) -> "RateLimitService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def received(self) -> list[Request]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def wait_for(self, predicate, count: int = 1, timeout: float = 5.0) -> list[Request]:
        """The requests matching `predicate`, once there are `count` of them
        or `timeout` has passed (whichever is first)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [r for r in self._received if predicate(r)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._lock.wait(left)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    rls = RateLimitService(args.port, on_request=lambda r: print(json.dumps(r.as_json()), flush=True))
    with rls:
        print(f"rls listening on 127.0.0.1:{rls.port}", flush=True)
        rls._server.wait_for_termination()
