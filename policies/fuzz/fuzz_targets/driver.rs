//! The whole request driver: arbitrary headers, bodies in arbitrary pieces,
//! trailers, expired holds, failed call-outs and steps, arbitrary responses.
//! Every sequence ends in one audit record; nothing panics; a request is
//! never let go while modelgate is still reading its body.
#![no_main]

mod common;

use std::rc::Rc;

use arbitrary::Arbitrary;
use modelgate_policies::{PureRustVerifier, SvidCache, TrustStore};
use modelgate_policies::{Env, Event, Flow, LogInfo, Phase, RequestHead, ResponseMemory, Step};

#[derive(Arbitrary, Debug)]
enum Token {
    Valid,
    Raw(String),
    None,
}

#[derive(Arbitrary, Debug)]
enum End {
    Body,
    Trailers,
    Expire,
    Never,
}

#[derive(Arbitrary, Debug)]
struct Input {
    post: bool,
    path: String,
    authority: String,
    token: Token,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cuts: Vec<u16>,
    end: End,
    step_failed: bool,
    status: u16,
    content_type: String,
    response: Vec<u8>,
    response_cut: u16,
    /// An MCP server's session id on the answer.
    session: Option<String>,
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let f = common::fixture();
    let memory = Rc::new(ResponseMemory::new(1 << 20));
    let svids = SvidCache::new(4);
    let trust = TrustStore::new(&f.policy.trust_domains);
    let tokens = modelgate_policies::TokenCache::default();
    let shared = modelgate_policies::MemoryStore::default();
    let env = Env {
        policy: &f.policy,
        verifier: &PureRustVerifier,
        now_ms: f.now_ms,
        memory: &memory,
        svids: &svids,
        trust: &trust,
        tokens: &tokens,
        random: &|| [1; 16],
        shared: &shared,
    };
    let mut headers: Vec<(String, String)> =
        input.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).filter(|(k, _)| !k.starts_with(':')).collect();
    match &input.token {
        Token::Valid => headers.push(("authorization".into(), format!("Bearer {}", f.token))),
        Token::Raw(t) => headers.push(("authorization".into(), format!("Bearer {t}"))),
        Token::None => {}
    }
    let head = RequestHead {
        method: if input.post { "POST" } else { "GET" },
        path: &input.path,
        authority: &input.authority,
        headers: &headers,
        request_id: Some("fuzz"),
        client_address: None,
        peer: None,
        metadata: &[],
    };
    let mut x = Flow::new(Some(&f.policy), f.now_ms);
    let mut step = x.drive(&env, Event::RequestHeaders { head, end_of_stream: input.body.is_empty() });
    let mut held = 0;
    for cut in input.cuts.iter().chain(std::iter::once(&u16::MAX)) {
        if x.phase() != Phase::ReadingBody {
            break;
        }
        held = (held + usize::from(*cut) + 1).min(input.body.len());
        let so_far = &input.body[..held];
        let last = held == input.body.len();
        step = match (&input.end, last) {
            (End::Trailers, true) => x.drive(&env, Event::RequestTrailers { body: &so_far }),
            (End::Expire, true) => x.drive(&env, Event::HoldExpired),
            (End::Never, true) => break,
            (_, _) => x.drive(&env, Event::RequestBody { size: held, end_of_stream: last, body: &so_far }),
        };
        // While the body is read the request is held: never let go early.
        if x.phase() == Phase::ReadingBody {
            assert_eq!(step, Step::Hold);
        }
    }
    if let Step::Callout { .. } = step {
        step = x.drive(&env, Event::Callout(modelgate_policies::CalloutResult::Failed("fuzz".into())));
    }
    if input.step_failed {
        step = x.drive(&env, Event::StepFailed);
    }
    if let Step::Continue(_) = step {
        assert_eq!(x.phase(), Phase::Forwarded);
    }
    x.drive(
        &env,
        Event::ResponseHeaders {
            status: Some(input.status),
            content_type: Some(&input.content_type),
            session: input.session.as_deref(),
        },
    );
    let cut = usize::from(input.response_cut).min(input.response.len());
    x.drive(&env, Event::ResponseBody { size: cut, end_of_stream: false, body: &&input.response[..cut] });
    x.drive(&env, Event::ResponseBody { size: input.response.len(), end_of_stream: true, body: &input.response.as_slice() });
    let Step::Audit(line) = x.drive(&env, Event::Log(LogInfo::default())) else { panic!("no record") };
    let record: serde_json::Value = serde_json::from_str(&line).expect("the record is JSON");
    assert!(record["decision"] == "allow" || record["decision"] == "deny");
    drop(x);
    assert_eq!(memory.in_use(), 0);
});
