//! The whole body is here: find every model it makes the provider run, in
//! the provider's namespace, and decide — rules, conditions, the prompt
//! guard, the rule's limits — down to the body edits to forward with.

use crate::api::path;
use crate::api::{BodyFormat, Endpoint, ModelAt, Selects};
use crate::audit::recorder::Recorder;
use crate::body;
use crate::body::guard::{Action, Findings};
use crate::budget;
use crate::config::{Policy, PromptAudit, Provider, Rule};
use crate::decision;
use crate::flow::events::Env;
use crate::flow::request::{Next, Request};
use crate::reason::{Denial, Reason};
use crate::util::text::bounded;

/// The body is larger than the policy allows.
pub fn too_large(policy: &Policy) -> Denial {
    Denial::new(Reason::BodyTooLarge, format!("the request body is larger than {} bytes", policy.max_body_bytes))
}

/// The whole request body is here: decide.
pub fn decide(env: &Env<'_>, body: &[u8], req: &mut Request, rec: &mut Recorder) -> Next {
    let policy = env.policy;
    rec.prompt(body, policy.prompt_audit == PromptAudit::Sha256);
    let (Some(endpoint), Some(provider), Some(identity)) = (req.endpoint, req.provider(policy), req.identity.clone())
    else {
        return Next::Refuse(Denial::new(Reason::InvalidBody, "the request could not be classified"));
    };

    let parsed = match body::parse(endpoint, req.content_type.as_deref(), body) {
        Ok(parsed) => parsed,
        Err(d) => return Next::Deny(d),
    };
    let named = match model_of(req, endpoint, parsed.model.as_deref()) {
        Ok(Some(model)) => model,
        Ok(None) => return Next::Deny(Denial::new(Reason::ModelMissing, "the request names no model")),
        Err(d) => return Next::Deny(d),
    };
    // Rules decide on the model the provider runs, never on an alias.
    let model = match in_provider_namespace(provider, &named) {
        Ok(None) => named,
        Ok(Some(model)) => {
            rec.requested_model(&named);
            model
        }
        Err(d) => {
            rec.requested_model(&named);
            return Next::Deny(d);
        }
    };
    rec.model(&model, parsed.stream);
    req.model = Some(model.clone());
    let facts = req.facts(env.now_ms, rec.client_address());
    let mut seen = Vec::new();
    let decided = decision::decide_for(&policy.rules, &identity, &provider.name, &model, &facts, &mut seen);
    let mut conditions = seen;
    let rule = match decided {
        Ok(rule) => rule,
        Err(d) => {
            rec.conditions(conditions);
            return Next::Deny(d);
        }
    };
    // A model a header names (Azure's image-generation deployment) is
    // one more the provider can be made to use; it also names the model
    // of a tool that names none.
    let header_models: Vec<String> = provider
        .api
        .spec()
        .model_headers
        .iter()
        .flat_map(|name| req.headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.clone()))
        .collect();
    if let Err(d) = parsed.check_tool_models(!header_models.is_empty()) {
        rec.conditions(conditions);
        return Next::Deny(d);
    }
    // Every other model the body can make the provider use must be
    // allowed too (a tool's image model, a moderation model, …).
    for other in parsed.other_models.iter().chain(&header_models) {
        let other = (provider.api.spec().model_name)(other);
        let other = match in_provider_namespace(provider, other) {
            Ok(None) => other.to_string(),
            Ok(Some(model)) => model,
            Err(d) => {
                rec.conditions(conditions);
                return Next::Deny(d);
            }
        };
        let other = other.as_str();
        let mut seen = Vec::new();
        let decided = decision::decide_for(&policy.rules, &identity, &provider.name, other, &facts, &mut seen);
        conditions.extend(seen);
        if let Err(denied) = decided {
            let mut d = Denial::new(
                Reason::ModelNotAllowed,
                format!("the request also asks for the model {:?}, which {identity} may not use here", bounded(other)),
            )
            .with_detail("nested_model");
            d.rule = denied.rule;
            rec.conditions(conditions);
            return Next::Deny(d);
        }
    }
    rec.conditions(conditions);
    rec.allowed_by(&rule.id);
    if let Err(d) = guard(policy, rule, endpoint, req.content_type.as_deref(), body, rec) {
        return Next::Deny(d.with_rule(rule.id.clone()));
    }
    match parsed.apply_limits(&rule.limits) {
        Ok(mut edits) => {
            if provider.include_usage {
                edits.extend(parsed.ask_stream_usage());
            }
            if let Some(name) = provider.identity_to_provider {
                edits.extend(parsed.name_end_user(&name.of(identity.as_str())));
            }
            edits.sort_by_key(|e| e.at);
            // What the provider reads: the body as forwarded.
            let bytes = body.len().saturating_add(edits.iter().map(|e| e.insert.len()).sum::<usize>());
            let output = budget::output_of(endpoint, &parsed, rule.limits.max_tokens);
            let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
            let call = budget::Call {
                identity: &identity,
                provider: &provider.name,
                model: &model,
                body,
                forwarded_bytes: bytes,
                output,
            };
            match budget::plan(&policy.budgets, &call, env.now_ms) {
                Ok(plan) => req.budget = plan,
                Err(d) => return Next::Deny(d.with_rule(rule.id.clone())),
            }
            Next::Forward(edits)
        }
        Err(d) => Next::Deny(d.with_rule(rule.id.clone())),
    }
}

/// The prompt guard over the body's text, with the deciding rule's
/// action: the findings go in the record; with `block`, any refuses.
pub(crate) fn guard(
    policy: &Policy,
    rule: &Rule,
    endpoint: &Endpoint,
    content_type: Option<&str>,
    body: &[u8],
    rec: &mut Recorder,
) -> Result<(), Denial> {
    let Some(guard) = &policy.prompt_guard else { return Ok(()) };
    let Some(action) = rule.prompt_guard.unwrap_or(Some(guard.action)) else { return Ok(()) };
    let findings = match endpoint.body {
        BodyFormat::Json | BodyFormat::JsonByDefault => guard.scan_json(body),
        BodyFormat::Multipart => guard.scan_multipart(body, content_type.unwrap_or("")),
        BodyFormat::None => return Ok(()),
    };
    let found: Vec<&str> = findings.keys().map(String::as_str).collect();
    let detail = found.join(",");
    rec.guard(Findings { action: Some(action), findings: findings.clone() });
    if action == Action::Block && !found.is_empty() {
        return Err(Denial::new(
            Reason::PromptBlocked,
            format!("the prompt holds what may not leave the gateway ({detail})"),
        )
        .with_detail(bounded(&detail)));
    }
    Ok(())
}

/// The name the request selects its model by, wherever its api puts it.
fn model_of(req: &Request, endpoint: &Endpoint, body: Option<&str>) -> Result<Option<String>, Denial> {
    let capture = |name: &str| req.captures.get(name);
    Ok(match endpoint.model {
        ModelAt::EncodedCapture(name) => capture(name).map(|raw| path::model_id(req.api, raw)).transpose()?,
        ModelAt::Capture(name) => capture(name).map(str::to_string),
        ModelAt::Publisher(publisher, model) => match (capture(publisher), capture(model)) {
            (Some(p), Some(m)) => Some(format!("{p}/{m}")),
            _ => None,
        },
        ModelAt::BodyOf(_, prefix) => body.map(|m| format!("{prefix}{m}")),
        ModelAt::Body(_) | ModelAt::Listing => body.map(str::to_string),
        ModelAt::Message => None,
    })
}

/// The model `name` selects in `provider`'s namespace: `None` when it is
/// the model itself, the model when it is an alias (a deployment, an
/// inference profile, an ARN); refused when it selects nothing a rule can
/// decide on.
fn in_provider_namespace(provider: &Provider, name: &str) -> Result<Option<String>, Denial> {
    match (provider.api.spec().resolve)(name, &provider.deployments) {
        Selects::Model => Ok(None),
        Selects::Alias(model) => Ok(Some(model)),
        Selects::Unmapped(detail) => Err(Denial::new(
            Reason::ModelNotAllowed,
            format!(
                "{:?} names no model provider {:?} maps (add it to the provider's deployments)",
                bounded(name),
                provider.name
            ),
        )
        .with_detail(detail)),
    }
}
