//! The request goes on: every caller credential out, the provider's in,
//! the path and body edits — or first a call-out for the credential.

use crate::audit::recorder::Recorder;
use crate::body::Edit;
use crate::config::Mode;
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::credential::{self, Caller, Plan, Rewrite};
use crate::flow::events::Env;
use crate::flow::request::Request;
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};

/// How the request goes on.
pub enum Forward {
    /// With this rewrite, now.
    Now(Rewrite),
    /// Once this call-out answers with the credential (`key` names it).
    After { rewrite: Rewrite, key: String, call: CalloutRequest },
    /// The credential cannot be had: refused in every mode.
    Refuse(Denial),
}

/// The rewrite for an allowed request, and the credential it needs.
pub fn forward(env: &Env<'_>, edits: Vec<Edit>, req: &Request, rec: &mut Recorder) -> Forward {
    let policy = env.policy;
    let provider = req.provider(policy);
    let mut rewrite = credential::rewrite(provider, &policy.jwt_svid.carrier, &req.headers);
    rewrite.path = req.forward_path.clone();
    // An MCP session goes on as the server's own id.
    if let Some(id) = &req.mcp.session {
        rewrite.set_headers.push((crate::api::mcp::SESSION_HEADER.to_string(), id.clone()));
    }
    // A stream resumed from an event id would replay answers (a listing)
    // that were decided and cut on the way the first time: not carried.
    if req.api.is_some_and(|a| a.spec().speaks_jsonrpc()) {
        rewrite.remove_headers.push(crate::api::mcp::RESUME_HEADER.to_string());
    }
    // Audit mode changes nothing but credentials.
    if policy.mode == Mode::Enforce {
        rewrite.body_edits = edits;
    }
    if let Some(p) = provider {
        rec.credential(p.credential.type_name(), &p.name);
        let Some(identity) = req.identity.as_ref().map(SpiffeId::to_string) else {
            return Forward::Refuse(Denial::new(Reason::MissingIdentity, "the caller was not identified"));
        };
        let svid = if policy.jwt_svid.enabled {
            credential::find_svid(&policy.jwt_svid.carrier, req.api, &req.headers).ok()
        } else {
            None
        };
        let caller = Caller { spiffe_id: &identity, svid, model: req.model.as_deref() };
        match credential::plan(p, &caller, &req.headers, env.tokens, env.now_ms, env.random, env.verifier) {
            Ok(Plan::Ready(headers)) => rewrite.set_headers.extend(headers),
            Ok(Plan::Fetch { key, call }) => return Forward::After { rewrite, key, call },
            Err(d) => return Forward::Refuse(d),
        }
    }
    Forward::Now(rewrite)
}

/// The credential arrived: this request's own call-out answered
/// (`result`), or another request's fetch of the same key did.
pub fn with_credential(
    env: &Env<'_>,
    req: &Request,
    pending: Option<(Rewrite, String)>,
    result: Option<&CalloutResult>,
) -> Result<Rewrite, Denial> {
    let (Some(provider), Some((mut rewrite, key))) = (req.provider(env.policy), pending) else {
        return Err(Denial::new(Reason::CredentialUnavailable, "no credential was being fetched"));
    };
    let headers = match result {
        Some(result) => credential::finish(provider, &key, result, &req.headers, env.tokens, env.now_ms),
        None => credential::shared(provider, &key, &req.headers, env.tokens, env.now_ms),
    }?;
    rewrite.set_headers.extend(headers);
    Ok(rewrite)
}
