//! Token usage from a streamed response (SPEC §6), read as it passes and
//! never held: server-sent events and AWS `application/vnd.amazon.eventstream`
//! frames are split into events here, and each event is read by the api's
//! own `stream_event` (OpenAI's chunks and `response.completed`,
//! Anthropic's `message_start` and cumulative `message_delta`, Gemini's
//! `usageMetadata`, Bedrock's frames, …). Chunks may end anywhere — inside a
//! UTF-8 character, a line, a frame: only whole lines and frames are read,
//! one at a time, and one larger than [`MAX_EVENT_BYTES`] is skipped (the
//! usage is then not complete).

use serde_json::Value;

use crate::api::spec::{Counts, StreamEvent};
use crate::api::{Api, Usage};

/// The largest event (an SSE line, an eventstream frame) read for usage.
/// The Responses api's `response.completed` repeats the whole output.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/vnd.amazon.eventstream`.
    EventStream,
}

impl Framing {
    /// The framing of a response's media type, if it is a stream.
    pub fn of(content_type: &str) -> Option<Framing> {
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "text/event-stream" => Some(Framing::Sse),
            "application/vnd.amazon.eventstream" => Some(Framing::EventStream),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct StreamUsage {
    framing: Framing,
    /// Reads one event: the api's own reader, or [`by_shape`] when the
    /// api is not known.
    read: EventReader,
    /// The partial line or frame.
    buf: Vec<u8>,
    /// Skipping the rest of a line too long to read.
    skipping: bool,
    /// The previous chunk ended in `\r` (a `\n` after it ends nothing).
    after_cr: bool,
    /// The data lines of the SSE event being read.
    data: Vec<u8>,
    input: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
    /// The model the stream says served the request, as it says it.
    pub model: Option<String>,
    /// The stream's last event was seen.
    terminal: bool,
    /// An event could not be read: what was counted may be short.
    lossy: bool,
    /// Reading gave up (the VM's memory, or frames it cannot read).
    stopped: bool,
}

impl StreamUsage {
    pub fn new(framing: Framing, api: Api) -> StreamUsage {
        StreamUsage::reading(framing, api.spec().stream_event)
    }

    /// A stream whose api is not known (audit mode forwards a request no
    /// provider matched): each event read by its shape.
    pub fn by_shape(framing: Framing) -> StreamUsage {
        StreamUsage::reading(framing, by_shape)
    }

    fn reading(framing: Framing, read: EventReader) -> StreamUsage {
        StreamUsage {
            framing,
            read,
            buf: Vec::new(),
            skipping: false,
            after_cr: false,
            data: Vec::new(),
            input: None,
            output: None,
            total: None,
            model: None,
            terminal: false,
            lossy: false,
            stopped: false,
        }
    }

    /// Bytes held between calls (a partial line or frame and its event,
    /// and the model named).
    pub fn held(&self) -> usize {
        self.buf.capacity() + self.data.capacity() + self.model.as_ref().map_or(0, String::capacity)
    }

    /// Gives up reading: the usage is incomplete.
    pub fn abandon(&mut self) {
        self.lossy = true;
        self.stopped = true;
        self.buf = Vec::new();
        self.data = Vec::new();
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.stopped {
            return;
        }
        match self.framing {
            Framing::Sse => self.feed_sse(chunk),
            Framing::EventStream => self.feed_frames(chunk),
        }
    }

    /// The usage counted, and whether it is the whole of it: the stream
    /// `ended` cleanly, its last event came, and nothing was skipped.
    pub fn finish(&mut self, ended: bool) -> (Option<Usage>, bool) {
        if ended && self.framing == Framing::Sse && !self.data.is_empty() {
            self.dispatch();
        }
        self.buf = Vec::new();
        self.data = Vec::new();
        let usage = self.usage();
        (usage, ended && self.terminal && !self.lossy && usage.is_some())
    }

    fn usage(&self) -> Option<Usage> {
        if self.input.is_none() && self.output.is_none() && self.total.is_none() {
            return None;
        }
        let total = self.total.or_else(|| Some(self.input.unwrap_or(0) + self.output.unwrap_or(0)));
        Some(Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            total_tokens: total,
            cached_input_tokens: None,
            cache_write_tokens: None,
        })
    }

    fn feed_sse(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if self.after_cr && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        self.after_cr = false;
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (line, tail) = rest.split_at(end);
            if tail[0] == b'\r' {
                match tail.get(1) {
                    Some(b'\n') => rest = &tail[2..],
                    Some(_) => rest = &tail[1..],
                    None => {
                        rest = &tail[1..];
                        self.after_cr = true;
                    }
                }
            } else {
                rest = &tail[1..];
            }
            if self.skipping {
                self.skipping = false;
                self.buf.clear();
                continue;
            }
            if self.buf.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.buf);
                whole.extend_from_slice(line);
                self.line(&whole);
                whole.clear();
                self.buf = whole;
            }
        }
        if !self.skipping {
            if self.buf.len() + rest.len() > MAX_EVENT_BYTES {
                self.skipping = true;
                self.lossy = true;
                self.buf = Vec::new();
            } else {
                self.buf.extend_from_slice(rest);
            }
        }
    }

    /// One SSE line (without its end).
    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                self.lossy = true;
                self.data = Vec::new();
                return;
            }
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        // `event:`, `id:`, `retry:` and comments: the data says enough.
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        if data.as_slice() == b"[DONE]" {
            self.terminal = true;
        } else if let Ok(v) = serde_json::from_slice::<Value>(&data) {
            self.event(&v, None);
        }
    }

    fn feed_frames(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        let mut at = 0;
        while self.buf.len() - at >= 12 {
            let word = |i: usize| u32::from_be_bytes([self.buf[i], self.buf[i + 1], self.buf[i + 2], self.buf[i + 3]]);
            let total = word(at) as usize;
            let headers = word(at + 4) as usize;
            if !(16..=MAX_EVENT_BYTES).contains(&total) || headers > total - 16 {
                // Not a frame modelgate can read: stop reading.
                self.abandon();
                return;
            }
            if self.buf.len() - at < total {
                break;
            }
            let frame = &self.buf[at..at + total];
            let (event_type, message_type) = frame_headers(&frame[12..12 + headers]);
            let payload = &frame[12 + headers..total - 4];
            if message_type.as_deref() != Some("event") {
                self.lossy = true;
            } else if let Ok(v) = serde_json::from_slice::<Value>(payload) {
                self.event(&v, event_type.as_deref());
            }
            at += total;
        }
        self.buf.drain(..at);
    }

    /// One event, as the api reads it.
    fn event(&mut self, v: &Value, frame_type: Option<&str>) {
        let Some(event) = (self.read)(v, frame_type) else { return };
        if let Some(model) = event.model {
            self.model = Some(model.to_string());
        }
        match event.counts {
            Counts::Nothing => {}
            Counts::Whole(usage) => self.replace(Some(usage)),
            Counts::Cumulative { input, output } => {
                if let Some(n) = output {
                    self.output = Some(n);
                    self.total = None;
                }
                if let Some(n) = input {
                    self.input = Some(n);
                    self.total = None;
                }
            }
        }
        self.terminal |= event.last;
        if let Some(inner) = event.inner {
            self.event(&inner, None);
        }
    }

    fn replace(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.input = u.input_tokens;
            self.output = u.output_tokens;
            self.total = u.total_tokens;
        }
    }
}

/// An eventstream frame's `:event-type` and `:message-type`.
fn frame_headers(mut h: &[u8]) -> (Option<String>, Option<String>) {
    let (mut event, mut message) = (None, None);
    while let Some((&len, rest)) = h.split_first() {
        let len = usize::from(len);
        let (Some(name), Some(&kind)) = (rest.get(..len), rest.get(len)) else { break };
        let rest = &rest[len + 1..];
        let size = match kind {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            4 => 4,
            5 | 8 => 8,
            9 => 16,
            6 | 7 => match rest.get(..2) {
                Some(n) => 2 + usize::from(u16::from_be_bytes([n[0], n[1]])),
                None => break,
            },
            _ => break,
        };
        let Some(value) = rest.get(..size) else { break };
        if kind == 7 {
            let text = String::from_utf8_lossy(&value[2..]).into_owned();
            match name {
                b":event-type" => event = Some(text),
                b":message-type" => message = Some(text),
                _ => {}
            }
        }
        h = &rest[size..];
    }
    (event, message)
}

type EventReader = for<'v> fn(&'v Value, Option<&str>) -> Option<StreamEvent<'v>>;

/// An event of an unknown api, read by its shape: an event-stream frame as
/// Bedrock's, any other event as Vertex reads its publishers' (Anthropic's
/// typed events, Gemini's chunks, else any OpenAI-shaped `usage`).
fn by_shape<'v>(v: &'v Value, frame: Option<&str>) -> Option<StreamEvent<'v>> {
    let api = if frame.is_some() { Api::Bedrock } else { Api::Vertex };
    (api.spec().stream_event)(v, frame)
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
