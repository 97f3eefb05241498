"""A stand-in LLM provider for tests and the demo.

It speaks the request, response and streaming shapes of the OpenAI,
Anthropic, Gemini, Azure OpenAI, Bedrock runtime and Vertex HTTP APIs well
enough for their official SDKs (`openai`, `anthropic`, `google-genai`,
`boto3`), and records every
request it receives (method, path, headers with repeats, body) so a test can
prove what arrived: the provider key, and none of the caller's credentials.

    python tests/upstream.py --port 18080

GET /__requests returns the recorded requests — each recorded as soon as
its headers arrive, so a request whose body never came still shows —, POST
/__reset clears them. With `--log FILE` (the soak, tests/soak.py) it keeps
nothing in memory and appends JSON lines instead: one when a request's
headers arrive (its `x-request-id`, path and credential headers), and one
when its body is read (the model it names).
Standard library only, so it runs in a bare python image too.
"""

import argparse
import base64
import binascii
import json
import re
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

RECORDED = []
LOCK = threading.Lock()
# `--log FILE`: one line per request there instead of RECORDED.
LEAN_LOG = None
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
REPLY_WORDS = ["Hello", " from", " the", " stand-in", " provider", "."]
# The request being answered on this thread: its `x-test-usage` header.
CURRENT = threading.local()


def usage_for(body: bytes):
    """Deterministic, non-trivial token counts derived from the request —
    or, when the request says `x-test-usage: INPUT,OUTPUT[,CACHED]`, those."""
    told = getattr(CURRENT, "usage", None)
    if told:
        p, c = told.split(",")[:2]
        return int(p), int(c)
    return len(body) // 10 + 1, len(REPLY_WORDS) + 1


def cached_for():
    """The cached input tokens `x-test-usage` names, if it names any."""
    told = (getattr(CURRENT, "usage", None) or "").split(",")
    return int(told[2]) if len(told) > 2 else None


def eventstream_frame(event_type: str, payload) -> bytes:
    """One `application/vnd.amazon.eventstream` message, as Bedrock streams."""
    def header(name, value):
        n, v = name.encode(), value.encode()
        return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    headers = header(":event-type", event_type) + header(":content-type", "application/json") + header(":message-type", "event")
    data = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(data) + 4, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + data
    return message + struct.pack(">I", binascii.crc32(message))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stand-in-llm/1"
    # The headers and the body leave in separate writes: without this, Nagle
    # and the peer's delayed ACK hold every answer ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    # --- plumbing -----------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body; chunked trailers, if any, go in the record."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (line := self.rfile.readline().strip()):
                        if hasattr(self, "entry"):
                            self.entry["trailers"].append(line.decode("latin-1"))
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def send_json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.pieces = 0
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def send_event(self, data, event=None) -> None:
        text = (f"event: {event}\n" if event else "") + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
        self.send_chunk(text.encode())

    def send_chunk(self, raw: bytes) -> None:
        """One piece of a stream. Tests steer it with request headers:
        `x-test-split: bytes` sends every byte as its own chunk, and
        `x-test-cut: N` drops the connection instead of the N+1th piece,
        `x-test-pace: S` waits S seconds before each piece (and
        `x-test-delay: S`, before the response starts)."""
        self.pieces += 1
        if self.headers.get("x-test-pace"):
            time.sleep(float(self.headers["x-test-pace"]))
        cut = self.headers.get("x-test-cut")
        if cut is not None and self.pieces > int(cut):
            self.wfile.flush()
            time.sleep(0.2)  # what was sent is read before the connection drops
            self.connection.shutdown(2)
            raise ConnectionAbortedError("cut by the test")
        parts = [raw[i:i + 1] for i in range(len(raw))] if self.headers.get("x-test-split") == "bytes" else [raw]
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routing ------------------------------------------------------------

    def do_GET(self):
        if not self.path.startswith("/__"):
            self.arrived()
        if self.path == "/__requests":
            with LOCK:
                return self.send_json(200, RECORDED)
        if self.path == "/__health":
            return self.send_json(200, {"ok": True})
        path = self.path.split("?")[0]
        if path in ("/v1/models", "/openai/models", "/openai/v1/models") and not self.headers.get("x-goog-api-client"):
            self.record(b"")
            return self.models()
        if re.fullmatch(r"/v1(beta)?/models", path):
            self.record(b"")
            return self.gemini_models()
        self.record(self.read_body())
        self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self):
        if not self.path.startswith("/__"):
            self.arrived()
        body = self.read_body()
        if self.path == "/__reset":
            with LOCK:
                RECORDED.clear()
            return self.send_json(200, {"ok": True})
        self.record(body)
        CURRENT.usage = self.headers.get("x-test-usage")
        if self.headers.get("x-test-delay"):
            time.sleep(float(self.headers["x-test-delay"]))
        if self.headers.get("x-test-status"):
            # The provider fails the call: an error answer in OpenAI's shape.
            return self.send_json(int(self.headers["x-test-status"]),
                                  {"error": {"message": "failed by the test", "type": "server_error", "code": None}})
        if self.path.split("?")[0] in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            return self.send_json(200, {"text": "Hello from the stand-in provider.", "usage": {"type": "duration", "seconds": 1}})
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        if isinstance(request, dict) and self.other_apis(self.path.split("?")[0], request, body):
            return
        route = {
            "/v1/chat/completions": self.chat,
            "/v1/completions": self.completion,
            "/v1/embeddings": self.embeddings,
            "/v1/responses": self.responses_api,
            "/v1/moderations": self.moderations,
            "/v1/messages": self.messages,
            "/v1/messages/count_tokens": self.count_tokens,
            "/v1/audio/speech": self.speech,
            "/v1/images/generations": self.images,
        }.get(self.path.split("?")[0])
        if route is None or not isinstance(request, dict):
            return self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        route(request, body)

    def arrived(self) -> None:
        """Records the request the moment its headers are here."""
        if LEAN_LOG is not None:
            line = {"id": self.headers.get("x-request-id"), "path": self.path,
                    "credentials": {h: self.headers.get_all(h) for h in CREDENTIAL_HEADERS if self.headers.get(h)}}
            with LOCK:
                LEAN_LOG.write(json.dumps(line) + "\n")
                LEAN_LOG.flush()
            return
        self.entry = {
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": None,
            "trailers": [],
        }
        with LOCK:
            RECORDED.append(self.entry)

    def record(self, body: bytes) -> None:
        if LEAN_LOG is not None:
            # A second line once the body is here: the model it names.
            try:
                model = json.loads(body).get("model") if body else None
            except (ValueError, AttributeError):
                model = "<not a JSON object>"
            with LOCK:
                LEAN_LOG.write(json.dumps({"id": self.headers.get("x-request-id"), "model": model}) + "\n")
                LEAN_LOG.flush()
            return
        with LOCK:
            self.entry["body"] = body.decode("utf-8", "replace")

    # --- both ---------------------------------------------------------------

    MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-3.5-turbo", "claude-haiku-4-5", "claude-opus-4-1"]

    def models(self):
        """The model listing, in Anthropic's shape when the caller speaks it."""
        if self.headers.get("anthropic-version"):
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.MODELS]
            return self.send_json(200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "stand-in"} for m in self.MODELS]
        self.send_json(200, {"object": "list", "data": data})

    # --- OpenAI -------------------------------------------------------------

    def chat(self, req, body):
        p, c = usage_for(body)
        usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if cached_for() is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": cached_for()}
        ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), req.get("model")
        if req.get("stream"):
            self.start_stream()
            base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_standin"}
            for i, word in enumerate(REPLY_WORDS):
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
                self.send_event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]})
            self.send_event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
            if (req.get("stream_options") or {}).get("include_usage"):
                self.send_event({**base, "choices": [], "usage": usage})
            self.send_event("[DONE]")
            return self.end_stream()
        self.send_json(200, {
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "fp_standin",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(REPLY_WORDS), "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        })

    def completion(self, req, body):
        p, c = usage_for(body)
        self.send_json(200, {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion", "created": int(time.time()),
            "model": req.get("model"),
            "choices": [{"index": 0, "text": "".join(REPLY_WORDS), "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
        })

    def embeddings(self, req, body):
        p, _ = usage_for(body)
        inputs = req.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        vector = [0.25, -0.5, 0.125]
        if req.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        else:
            embedding = vector
        self.send_json(200, {
            "object": "list", "model": req.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": embedding} for i in range(count)],
            "usage": {"prompt_tokens": p, "total_tokens": p},
        })

    def responses_api(self, req, body):
        p, c = usage_for(body)
        usage = {"input_tokens": p, "output_tokens": c, "total_tokens": p + c,
                 "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
        response = {
            "id": f"resp_{uuid.uuid4().hex[:12]}", "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": req.get("model"), "error": None, "incomplete_details": None,
            "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0, "top_p": 1.0,
            "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": f"msg_{uuid.uuid4().hex[:12]}", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "".join(REPLY_WORDS), "annotations": []}]}],
            "usage": usage,
        }
        if req.get("stream"):
            self.start_stream()
            item = response["output"][0]
            seq = iter(range(1000))

            def event(kind, **fields):
                self.send_event({"type": kind, "sequence_number": next(seq), **fields}, kind)

            event("response.created", response={**response, "status": "in_progress", "output": [], "usage": None})
            event("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []})
            event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
                  part={"type": "output_text", "text": "", "annotations": []})
            for word in REPLY_WORDS:
                event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=word, logprobs=[])
            event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text="".join(REPLY_WORDS), logprobs=[])
            event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0, part=item["content"][0])
            event("response.output_item.done", output_index=0, item=item)
            event("response.completed", response=response)
            return self.end_stream()
        self.send_json(200, response)

    def speech(self, req, body):
        if req.get("stream_format") == "sse":
            self.start_stream()
            self.send_event({"type": "speech.audio.delta", "audio": base64.b64encode(b"\x00\x01").decode()})
            self.send_event({"type": "speech.audio.done", "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}})
            return self.end_stream()
        data = b"ID3-stand-in-audio"
        self.send_response(200)
        self.send_header("content-type", "audio/mpeg")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def images(self, req, body):
        self.send_json(200, {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(b"png").decode()}]})

    def moderations(self, req, body):
        self.send_json(200, {"id": f"modr-{uuid.uuid4().hex[:8]}", "model": req.get("model"),
                             "results": [{"flagged": False, "categories": {}, "category_scores": {}}]})

    # --- Gemini, Vertex, Azure, Bedrock --------------------------------------

    GEMINI_MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]

    def gemini_models(self):
        models = [{"name": f"models/{m}", "displayName": m, "version": "001",
                   "supportedGenerationMethods": ["generateContent", "countTokens"]} for m in self.GEMINI_MODELS]
        self.send_json(200, {"models": models})

    def other_apis(self, path: str, req: dict, body: bytes) -> bool:
        """Gemini and Vertex (`…/models/{model}:{method}`), Azure's
        deployment paths, Bedrock's `/model/{id}/…`. False: not one of them."""
        if m := re.fullmatch(r"/model/([^/]+)/(invoke|invoke-with-response-stream|converse|converse-stream|count-tokens)", path):
            self.bedrock(unquote(m[1]), m[2], req, body)
            return True
        if m := re.fullmatch(r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)", path):
            route = {"chat/completions": self.chat, "completions": self.completion, "embeddings": self.embeddings}[m[2]]
            route({**req, "model": req.get("model") or m[1]}, body)
            return True
        if path in ("/openai/responses", "/openai/v1/responses"):
            self.responses_api(req, body)
            return True
        if m := re.fullmatch(r"/openai/v1/(chat/completions|embeddings)", path):
            {"chat/completions": self.chat, "embeddings": self.embeddings}[m[1]](req, body)
            return True
        if m := re.fullmatch(r".*/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)", path):
            if m[1] == "count-tokens":
                self.count_tokens(req, body)
            else:
                self.messages({**req, "model": m[1], "stream": m[2] == "streamRawPredict" or req.get("stream")}, body)
            return True
        if m := re.fullmatch(r".*/publishers/(mistralai|ai21)/models/([^/:]+):(rawPredict|streamRawPredict)", path):
            # Vertex's partner models answer rawPredict in their own
            # (OpenAI-shaped) chat format; their streams end with `usage`.
            stream = m[3] == "streamRawPredict" or req.get("stream")
            self.chat({**req, "model": m[2], "stream": stream, "stream_options": {"include_usage": True}}, body)
            return True
        if m := re.fullmatch(r".*/models/([^/:]+):(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)", path):
            self.gemini(m[1], m[2], req, body)
            return True
        return False

    def gemini(self, model, method, req, body):
        p, c = usage_for(body)
        usage = {"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c}
        reply = {"candidates": [{"content": {"role": "model", "parts": [{"text": "".join(REPLY_WORDS)}]},
                                 "finishReason": "STOP", "index": 0}],
                 "usageMetadata": usage, "modelVersion": model, "responseId": uuid.uuid4().hex[:12]}
        if method == "generateContent":
            return self.send_json(200, reply)
        if method == "streamGenerateContent":
            self.start_stream()
            for i, word in enumerate(REPLY_WORDS):
                chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}],
                         "modelVersion": model}
                if i == len(REPLY_WORDS) - 1:
                    chunk["candidates"][0]["finishReason"] = "STOP"
                    chunk["usageMetadata"] = usage
                self.send_event(chunk)
            return self.end_stream()
        if method == "countTokens":
            return self.send_json(200, {"totalTokens": p})
        if method == "embedContent":
            return self.send_json(200, {"embedding": {"values": [0.25, -0.5, 0.125]}})
        n = len(req.get("requests") or []) or 1
        self.send_json(200, {"embeddings": [{"values": [0.25, -0.5, 0.125]}] * n})

    def bedrock(self, model_id, method, req, body):
        p, c = usage_for(body)
        if method == "count-tokens":
            return self.send_json(200, {"inputTokens": p})
        if method == "converse":
            return self.send_json(200, {
                "output": {"message": {"role": "assistant", "content": [{"text": "".join(REPLY_WORDS)}]}},
                "stopReason": "end_turn", "usage": {"inputTokens": p, "outputTokens": c, "totalTokens": p + c},
                "metrics": {"latencyMs": 12}})
        message = {"id": f"msg_bdrk_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant", "model": model_id,
                   "content": [{"type": "text", "text": "".join(REPLY_WORDS)}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": p, "output_tokens": c}}
        if method == "invoke":
            return self.send_json(200, message)
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.pieces = 0
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if method == "converse-stream":
            events = [("messageStart", {"role": "assistant"})]
            events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in REPLY_WORDS]
            events += [("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "end_turn"}),
                       ("metadata", {"usage": {"inputTokens": p, "outputTokens": c, "totalTokens": p + c},
                                     "metrics": {"latencyMs": 12}})]
        else:
            chunks = [{"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
                      {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
            chunks += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in REPLY_WORDS]
            chunks += [{"type": "content_block_stop", "index": 0},
                       {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": c}},
                       {"type": "message_stop"}]
            events = [("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in chunks]
        for kind, payload in events:
            self.send_chunk(eventstream_frame(kind, payload))
        self.end_stream()

    # --- Anthropic ----------------------------------------------------------

    def messages(self, req, body):
        p, c = usage_for(body)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant", "model": req.get("model"),
            "content": [{"type": "text", "text": "".join(REPLY_WORDS)}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": p, "output_tokens": c, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        if req.get("stream"):
            self.start_stream()
            start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": p, "output_tokens": 1}}
            self.send_event({"type": "message_start", "message": start}, "message_start")
            self.send_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")
            self.send_event({"type": "ping"}, "ping")
            for word in REPLY_WORDS:
                self.send_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}, "content_block_delta")
            self.send_event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            self.send_event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": c}}, "message_delta")
            self.send_event({"type": "message_stop"}, "message_stop")
            return self.end_stream()
        self.send_json(200, message)

    def count_tokens(self, req, body):
        p, _ = usage_for(body)
        self.send_json(200, {"input_tokens": p})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--log", help="append one JSON line per request here and keep nothing in memory")
    args = parser.parse_args()
    if args.log:
        global LEAN_LOG
        LEAN_LOG = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"stand-in provider on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
