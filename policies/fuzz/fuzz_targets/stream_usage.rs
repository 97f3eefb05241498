//! Streamed usage (SSE and AWS eventstream), as any api reads it: any
//! bytes, cut anywhere, never panic, never hold more than one event, and give the same usage however
//! the stream is cut (for events under the 1 MiB limit, which a line fed
//! whole would not hit).
#![no_main]

use arbitrary::Arbitrary;
use modelgate_policies::parsers::{Api, Framing, StreamUsage, MAX_EVENT_BYTES};

#[derive(Arbitrary, Debug)]
struct Input {
    api: u8,
    eventstream: bool,
    stream: Vec<u8>,
    cuts: Vec<u16>,
    ended: bool,
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let framing = if input.eventstream { Framing::EventStream } else { Framing::Sse };
    let api = Api::ALL[usize::from(input.api) % Api::ALL.len()];
    let whole = {
        let mut u = StreamUsage::new(framing, api);
        u.feed(&input.stream);
        (u.finish(input.ended), u.model.clone())
    };
    let mut u = StreamUsage::new(framing, api);
    let mut rest: &[u8] = &input.stream;
    for cut in &input.cuts {
        let at = usize::from(*cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        u.feed(piece);
        assert!(u.held() <= 2 * MAX_EVENT_BYTES + input.stream.len());
        rest = tail;
    }
    u.feed(rest);
    assert_eq!((u.finish(input.ended), u.model.clone()), whole, "the usage depends on where the stream was cut");
});
