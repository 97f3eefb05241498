//! What modelgate knows of each provider api: its endpoints and where each
//! names its model, the request fields that switch on streaming or bound
//! output tokens, the header its SDK puts the API key in, its error shape,
//! where its responses and streams report usage, the settings a provider
//! of it takes, and how its SDK federates workload identity.
//!
//! One module per api, each a [`Spec`] (made of [`spec`]'s types); this
//! one names them in [`Api`] and holds what is read across them. Adding an
//! api is writing its module and naming it in the `apis!` list below:
//! every list of apis (the caller credential headers, the apis that take
//! `include_usage`, the federation profiles, …) is derived from the specs
//! (docs/providers.md, "Adding a provider").

pub mod path;
pub mod query;
pub mod spec;
pub mod usage;

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod gemini;
pub mod mcp;
pub mod openai;
pub mod vertex;

use serde::Deserialize;
use serde_json::Value;

pub use spec::{
    BodyFormat, Captures, Endpoint, Listing, ModelAt, Selects, Spec, StreamAt, StreamSwitch, Usage, ANY_MODEL, TOOLS,
    TOOL_MODELS, TOOL_TYPES,
};

/// Declares [`Api`]: one arm per api, its config name and its spec.
macro_rules! apis {
    ($($variant:ident = $name:literal => $spec:path,)*) => {
        /// A provider api (SPEC §2 `providers[].api`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
        pub enum Api {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Api {
            /// Every api, in the order their model-id spellings are peeled
            /// for deny rules ([`Spec::base_model`]).
            pub const ALL: &'static [Api] = &[$(Api::$variant,)*];

            pub fn spec(self) -> &'static Spec {
                match self {
                    $(Api::$variant => &$spec,)*
                }
            }
        }
    };
}

apis! {
    OpenAi = "openai" => openai::SPEC,
    OpenAiCompatible = "openai_compatible" => openai::COMPATIBLE,
    Anthropic = "anthropic" => anthropic::SPEC,
    Gemini = "gemini" => gemini::SPEC,
    AzureOpenAi = "azure_openai" => azure::SPEC,
    Vertex = "vertex" => vertex::SPEC,
    Bedrock = "bedrock" => bedrock::SPEC,
    Mcp = "mcp" => mcp::SPEC,
}

impl Api {
    /// The api whose shapes answer a request no provider matched (its
    /// error body, an empty listing, a stream read for usage).
    pub const FALLBACK: Api = Api::OpenAi;

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The endpoint for `method` and `path` (query and provider prefix
    /// removed), with what its pattern captured. A path Envoy did not
    /// normalize, or one with a trailing slash, is no endpoint.
    pub fn classify(self, method: &str, path: &str) -> Option<(&'static Endpoint, Captures)> {
        self.spec().endpoints.iter().find_map(|e| e.matches(method, path).map(|c| (e, c)))
    }

    /// Whether `path` is an endpoint but for the case of its letters (a
    /// case trick, refused as `invalid_path`).
    pub fn classify_ignoring_case(self, method: &str, path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        self.spec().endpoints.iter().any(|e| {
            e.method.eq_ignore_ascii_case(method)
                && spec::matches_pattern(&e.path.to_ascii_lowercase(), &lower).is_some()
        })
    }

    /// Usage and the served model from a non-streaming JSON response.
    pub fn response_usage(self, body: &Value) -> (Option<Usage>, Option<String>) {
        let usage = (self.spec().usage)(body);
        let model = body.get("model").and_then(Value::as_str).map(str::to_string);
        (usage, model)
    }
}

/// The api named `name` in the configuration.
pub fn named(name: &str) -> Option<Api> {
    Api::ALL.iter().copied().find(|a| a.name() == name)
}

/// The names of the apis `which` holds for, as a sentence does: `a, b and c`.
pub fn names_where(which: impl Fn(&Spec) -> bool) -> String {
    let names: Vec<&str> = Api::ALL.iter().map(|a| a.spec()).filter(|s| which(s)).map(|s| s.name).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Every header some api's SDK sends its API key in, besides
/// `authorization` (each once).
pub fn sdk_key_headers() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in Api::ALL.iter().flat_map(|a| a.spec().sdk_key_headers) {
        if !out.contains(name) {
            out.push(name);
        }
    }
    out
}

/// The model `model` stands for once every api's own spelling of it (a
/// fine-tune, a version suffix, a region and vendor prefix) is peeled, in
/// [`Api::ALL`]'s order: what deny rules also match.
pub fn base_model(model: &str) -> &str {
    Api::ALL.iter().fold(model, |base, api| (api.spec().base_model)(base))
}

/// A model listing cut down to the models `keep` allows: OpenAI's,
/// Anthropic's and Azure's `{"data":[{"id":…},…]}`, or Gemini's
/// `{"models":[{"name":"models/…"},…]}`. Anything that is not such a
/// listing becomes an empty one: modelgate never passes on a listing it
/// could not filter.
pub fn filter_model_list(api: Api, body: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let spec = api.spec();
    let (member, id) = match spec.listing {
        Listing::Data => ("data", "id"),
        Listing::Models => ("models", "name"),
    };
    let empty = || empty_listing(api).to_vec();
    let mut listing = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) if o.get(member).is_some_and(Value::is_array) => o,
        _ => return empty(),
    };
    let kept: Vec<Value> = match listing.remove(member) {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter(|m| m.get(id).and_then(Value::as_str).is_some_and(|name| keep((spec.model_name)(name))))
            .collect(),
        _ => Vec::new(),
    };
    // Anthropic pages name their first and last ids.
    let first_last = |m: Option<&Value>| m.and_then(|m| m.get("id")).cloned().unwrap_or(Value::Null);
    if listing.contains_key("first_id") {
        listing.insert("first_id".into(), first_last(kept.first()));
    }
    if listing.contains_key("last_id") {
        listing.insert("last_id".into(), first_last(kept.last()));
    }
    listing.insert(member.into(), Value::Array(kept));
    Value::Object(listing).to_string().into_bytes()
}

/// The listing sent when the provider's could not be filtered.
pub fn empty_listing(api: Api) -> &'static [u8] {
    match api.spec().listing {
        Listing::Data => EMPTY_LISTING,
        Listing::Models => br#"{"models":[]}"#,
    }
}

/// The listing sent when the provider's could not be filtered.
pub const EMPTY_LISTING: &[u8] = br#"{"object":"list","data":[],"has_more":false,"first_id":null,"last_id":null}"#;

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
