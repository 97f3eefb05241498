//! What modelgate knows of each provider api: the endpoints that name a model
//! and where the model is, the request fields that bound output tokens, the
//! header the api's SDK puts its key in, and where the response reports usage.
//!
//! One module per api; this one holds what they share.

pub mod anthropic;
pub mod openai;

use serde::Serialize;
use serde_json::Value;

/// A provider api (SPEC §2 `providers[].api`). Apis that later work adds
/// (gemini, azure_openai, bedrock, vertex) are refused by the config parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    OpenAiCompatible,
    Anthropic,
}

/// How an endpoint's request body carries the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON object with a `model` member.
    Json,
    /// `multipart/form-data` with a `model` field.
    Multipart,
    /// No model in the request: the model listing, whose response modelgate
    /// filters to the models the workload may call.
    ModelList,
}

/// `GET /v1/models`, the same for both apis.
pub const MODEL_LIST: Endpoint = Endpoint {
    method: "GET",
    path: "/v1/models",
    body: BodyFormat::ModelList,
    max_tokens_fields: &[],
    max_tokens_default: None,
};

/// One endpoint of an api that modelgate classifies.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub body: BodyFormat,
    /// Request fields that bound the output tokens; `limits.max_tokens` caps
    /// each that is present.
    pub max_tokens_fields: &'static [&'static str],
    /// The field set to the cap when none of `max_tokens_fields` is present;
    /// `None` for endpoints that generate no tokens (embeddings, …).
    pub max_tokens_default: Option<&'static str>,
}

/// Token usage as the audit record reports it, whatever the api called it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::OpenAiCompatible => "openai_compatible",
            Api::Anthropic => "anthropic",
        }
    }

    pub fn from_name(name: &str) -> Option<Api> {
        match name {
            "openai" => Some(Api::OpenAi),
            "openai_compatible" => Some(Api::OpenAiCompatible),
            "anthropic" => Some(Api::Anthropic),
            _ => None,
        }
    }

    fn endpoints(self) -> &'static [Endpoint] {
        match self {
            Api::OpenAi | Api::OpenAiCompatible => openai::ENDPOINTS,
            Api::Anthropic => anthropic::ENDPOINTS,
        }
    }

    /// The endpoint for `method` and `path` (query removed, provider prefix
    /// removed). Matching is exact: a path Envoy did not normalize, or one
    /// with a trailing slash, is no endpoint and so is refused.
    pub fn classify(self, method: &str, path: &str) -> Option<&'static Endpoint> {
        self.endpoints().iter().find(|e| e.method == method && e.path == path)
    }

    /// Headers where this api's official SDK sends its API key, besides
    /// `authorization: Bearer`, which every api's SDK or users may use.
    pub fn sdk_key_headers(self) -> &'static [&'static str] {
        match self {
            Api::OpenAi | Api::OpenAiCompatible => &[],
            Api::Anthropic => &["x-api-key"],
        }
    }

    /// The header and value prefix an upstream key goes in by default.
    pub fn key_header(self) -> (&'static str, &'static str) {
        match self {
            Api::OpenAi | Api::OpenAiCompatible => ("authorization", "Bearer "),
            Api::Anthropic => ("x-api-key", ""),
        }
    }

    /// Headers the api requires that the gateway adds when the caller did not.
    pub fn required_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Api::OpenAi | Api::OpenAiCompatible => &[],
            Api::Anthropic => &[("anthropic-version", anthropic::VERSION)],
        }
    }

    /// Usage and the served model from a non-streaming JSON response.
    pub fn response_usage(self, body: &Value) -> (Option<Usage>, Option<String>) {
        let usage = match self {
            Api::OpenAi | Api::OpenAiCompatible => openai::usage(body),
            Api::Anthropic => anthropic::usage(body),
        };
        let model = body.get("model").and_then(Value::as_str).map(str::to_string);
        (usage, model)
    }
}

/// A model listing (`{"data":[{"id":…},…]}`, both apis) cut down to the
/// models `keep` allows. Anything that is not such a listing becomes an
/// empty one: modelgate never passes on a listing it could not filter.
pub fn filter_model_list(body: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut listing = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) if o.get("data").is_some_and(Value::is_array) => o,
        _ => return br#"{"object":"list","data":[],"has_more":false,"first_id":null,"last_id":null}"#.to_vec(),
    };
    let kept: Vec<Value> = match listing.remove("data") {
        Some(Value::Array(items)) => {
            items.into_iter().filter(|m| m.get("id").and_then(Value::as_str).is_some_and(&keep)).collect()
        }
        _ => Vec::new(),
    };
    // Anthropic pages name their first and last ids.
    let id = |m: Option<&Value>| m.and_then(|m| m.get("id")).cloned().unwrap_or(Value::Null);
    if listing.contains_key("first_id") {
        listing.insert("first_id".into(), id(kept.first()));
    }
    if listing.contains_key("last_id") {
        listing.insert("last_id".into(), id(kept.last()));
    }
    listing.insert("data".into(), Value::Array(kept));
    Value::Object(listing).to_string().into_bytes()
}

/// A non-negative integer member of `v`, if it is one.
pub(crate) fn count(v: &Value, name: &str) -> Option<u64> {
    v.get(name).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn model_listings_keep_only_allowed_models() {
        let openai = br#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini","object":"model"},{"id":5}]}"#;
        assert_eq!(ids(&filter_model_list(openai, |m| m.ends_with("mini"))), ["gpt-4o-mini"]);
        let anthropic = br#"{"data":[{"id":"a","type":"model"},{"id":"b","type":"model"},{"id":"c","type":"model"}],"has_more":false,"first_id":"a","last_id":"c"}"#;
        let out: Value = serde_json::from_slice(&filter_model_list(anthropic, |m| m == "b")).unwrap();
        assert_eq!((out["first_id"].as_str(), out["last_id"].as_str()), (Some("b"), Some("b")));
    }

    #[test]
    fn what_cannot_be_filtered_becomes_an_empty_listing() {
        for body in [&b"not json"[..], b"[]", br#"{"data":{"id":"gpt-4o"}}"#, br#"{"models":[{"id":"gpt-4o"}]}"#] {
            assert!(ids(&filter_model_list(body, |_| true)).is_empty());
        }
    }
}
