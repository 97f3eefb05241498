//! The request's headers: which provider and endpoint, who is calling, and
//! everything that can be refused before the body is read.

use crate::api::path;
use crate::api::query;
use crate::api::ModelAt;
use crate::audit::recorder::Recorder;
use crate::config::{Mode, Policy, Provider};
use crate::decision;
use crate::flow::decide;
use crate::flow::events::{Env, RequestHead};
use crate::flow::message;
use crate::flow::request::{header, path_only, Next, Request};
use crate::identity::{self, Sources};
use crate::reason::{Denial, Reason};
use crate::util::text::bounded;

/// Decides what can be decided on the headers alone.
pub fn admit(
    env: &Env<'_>,
    head: &RequestHead<'_>,
    end_of_stream: bool,
    req: &mut Request,
    rec: &mut Recorder,
) -> Next {
    let policy = env.policy;
    rec.began(policy.mode.name(), env.now_ms, head.request_id, trace_id(head.headers), head.client_address);
    req.headers = head.headers.to_vec();
    // Until the endpoint is known, only credentials leave the query.
    req.forward_path = query::strip_credentials(head.path);
    req.content_type = header(head.headers, "content-type").map(str::to_string);

    let provider = match_provider(policy, head.authority, head.path);
    if let Some((i, p)) = provider {
        req.set_provider(i, p);
        rec.provider(&p.name, p.api.name());
    }

    // Identity first, in every mode: a caller modelgate cannot identify
    // is refused here, before its body is read, and never forwarded
    // (audit mode observes policy; it hands no one the gateway's key).
    let sources = Sources {
        api: req.api,
        headers: head.headers,
        peer: head.peer,
        verifier: env.verifier,
        svids: env.svids,
        trust: env.trust,
        now_secs: env.now_ms / 1000,
    };
    let svid = match identity::identify(policy, &sources) {
        Ok(identity) => identity,
        Err(d) => return Next::Refuse(d),
    };
    rec.identified(&svid);
    req.identity = Some(svid.spiffe_id.clone());
    req.svids = (svid.jwt.clone(), svid.x509.clone());
    req.metadata = head.metadata.to_vec();

    let Some((_, provider)) = provider else {
        return Next::Deny(Denial::new(
            Reason::NoProvider,
            format!(
                "no provider is configured for {}",
                bounded(&format!("{}{}", head.authority, path_only(head.path)))
            ),
        ));
    };
    // An MCP session is the workload's own, whatever the path.
    if provider.api.spec().speaks_jsonrpc() {
        if let Some(refused) = message::bind_session(env, head, req, rec) {
            return refused;
        }
    }
    let endpoint_path = strip_prefix(provider, path_only(head.path));
    if let Err(d) = path::check(endpoint_path, provider.api.spec().encoded_segment) {
        rec.endpoint(endpoint_path);
        return Next::Deny(d);
    }
    // A connection upgrade (websocket, realtime) or a tunnel would
    // carry traffic modelgate never reads.
    if head.method == "CONNECT" || header(head.headers, "upgrade").is_some() {
        rec.endpoint(endpoint_path);
        return Next::Deny(
            Denial::new(Reason::EndpointNotAllowed, "connection upgrades and tunnels are not allowed")
                .with_detail("upgrade"),
        );
    }
    let Some((endpoint, captures)) = provider.api.classify(head.method, endpoint_path) else {
        rec.endpoint(endpoint_path);
        if provider.api.classify_ignoring_case(head.method, endpoint_path) {
            return Next::Deny(
                Denial::new(Reason::InvalidPath, "the path differs from a known endpoint's only in case")
                    .with_detail("path_case"),
            );
        }
        if provider.api.spec().speaks_jsonrpc() {
            return Next::Deny(
                Denial::new(
                    Reason::EndpointNotAllowed,
                    format!(
                        "{} {} is not the MCP endpoint ({}{}, the Streamable HTTP transport; the HTTP+SSE transport \
                         of MCP 2024-11-05 is not carried)",
                        bounded(head.method),
                        bounded(endpoint_path),
                        provider.path_prefix.as_deref().unwrap_or("").trim_end_matches('/'),
                        crate::api::mcp::PATH
                    ),
                )
                .with_detail(if old_transport(head.method, endpoint_path) {
                    "http_sse_transport"
                } else {
                    "not_mcp_endpoint"
                }),
            );
        }
        // An allow rule may list endpoints that name no model.
        let facts = req.facts(env.now_ms, rec.client_address());
        if let Some(rule) =
            decision::endpoint_rule(&policy.rules, &svid.spiffe_id, &provider.name, head.method, endpoint_path, &facts)
        {
            rec.allowed_by(&rule.id);
            return Next::Forward(Vec::new());
        }
        return Next::Deny(Denial::new(
            Reason::EndpointNotAllowed,
            format!(
                "{} {} is not an endpoint modelgate allows for provider {:?}",
                bounded(head.method),
                bounded(endpoint_path),
                provider.name
            ),
        ));
    };
    req.endpoint = Some(endpoint);
    rec.endpoint(endpoint.path);
    if let Err(d) = pinned(provider, &captures) {
        return Next::Deny(d);
    }
    req.captures = captures;
    match query::sanitize(head.path, endpoint.query) {
        Ok(path) => req.forward_path = path,
        Err(d) => return Next::Deny(d),
    }
    let jsonrpc = endpoint.model == ModelAt::Message;
    if jsonrpc {
        if let Some(next) = message::admit(env, head, end_of_stream, req, rec) {
            return next;
        }
    }

    // Refuse as early as possible: no rule could allow this workload
    // anything at this provider, whatever the body says.
    let Some(naming) = decision::rule_naming(&policy.rules, &svid.spiffe_id, &provider.name) else {
        let (reason, what) =
            if jsonrpc { (Reason::MethodNotAllowed, "anything") } else { (Reason::ModelNotAllowed, "any model") };
        return Next::Deny(
            Denial::new(reason, format!("no rule allows {} {what} at provider {:?}", svid.spiffe_id, provider.name))
                .with_detail("no_matching_rule"),
        );
    };

    if endpoint.model == ModelAt::Listing {
        if !end_of_stream {
            return Next::Deny(
                Denial::new(Reason::InvalidBody, "the model listing takes no request body")
                    .with_detail("unexpected_body"),
            );
        }
        // Allowed to a workload some rule names; the listing is cut
        // down to the models it may call.
        rec.allowed_by(&naming.id);
        req.listing = policy.mode == Mode::Enforce;
        return Next::Forward(Vec::new());
    }

    let encodings = head.headers.iter().filter(|(k, _)| k == "content-encoding");
    if let Some((_, enc)) = encodings.into_iter().find(|(_, v)| !v.trim().eq_ignore_ascii_case("identity")) {
        return Next::Deny(
            Denial::new(
                Reason::UnsupportedEncoding,
                format!(
                    "request bodies in content-encoding {:?} are not accepted; send them uncompressed",
                    bounded(enc.trim())
                ),
            )
            .with_detail(bounded(&enc.trim().to_ascii_lowercase())),
        );
    }
    let declared = header(head.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > policy.max_body_bytes) {
        return Next::Deny(decide::too_large(policy));
    }
    if end_of_stream {
        return Next::DecideEmpty;
    }
    Next::ReadBody
}

/// Whether a request to an MCP server is the HTTP+SSE transport's (MCP
/// 2024-11-05): a `GET` for its stream, or a `POST` to its `/messages`
/// (or `/sse`) endpoint.
fn old_transport(method: &str, path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    method == "GET" || last == "messages" || last == "sse"
}

/// A request's path may name only the project and location the
/// provider's credential acts in (Vertex's: its api's `scope`).
fn pinned(provider: &Provider, captures: &crate::api::Captures) -> Result<(), Denial> {
    let Some(in_scope) = provider.api.spec().scope else { return Ok(()) };
    in_scope(captures, provider.project.as_deref(), &provider.locations).map_err(|out| {
        Denial::new(
            Reason::EndpointNotAllowed,
            format!("the {} {:?} is not one provider {:?} serves", out.what, bounded(&out.value), provider.name),
        )
        .with_detail(out.detail)
    })
}

/// The first provider whose authorities and path prefix both match. An
/// authority matches only as Envoy's route table would see it: the whole
/// `:authority`, port included, in lower case (a trailing dot or an extra
/// port is another authority, which Envoy may route elsewhere).
fn match_provider<'p>(policy: &'p Policy, authority: &str, path: &str) -> Option<(usize, &'p Provider)> {
    let authority = authority.to_ascii_lowercase();
    let path = path_only(path);
    policy.providers.iter().enumerate().find(|(_, p)| {
        (p.authorities.is_empty() || p.authorities.contains(&authority))
            && p.path_prefix.as_deref().is_none_or(|prefix| path.starts_with(prefix))
    })
}

/// The path as the provider's api sees it: the match prefix removed, but
/// for its last `/`.
fn strip_prefix<'a>(provider: &Provider, path: &'a str) -> &'a str {
    match provider.path_prefix.as_deref() {
        Some(prefix) if prefix.len() > 1 => {
            let keep = if prefix.ends_with('/') { prefix.len() - 1 } else { prefix.len() };
            path.get(keep..).unwrap_or("")
        }
        _ => path,
    }
}

/// The W3C `traceparent` trace id, or Zipkin's `x-b3-traceid`.
pub(crate) fn trace_id(headers: &[(String, String)]) -> Option<String> {
    if let Some(tp) = header(headers, "traceparent") {
        let id = tp.split('-').nth(1)?;
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(id.to_ascii_lowercase());
        }
    }
    header(headers, "x-b3-traceid")
        .filter(|id| (id.len() == 16 || id.len() == 32) && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}
