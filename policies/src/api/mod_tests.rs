use super::*;

fn ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn model_listings_keep_only_allowed_models() {
    let openai = br#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini","object":"model"},{"id":5}]}"#;
    assert_eq!(ids(&filter_model_list(Api::OpenAi, openai, |m| m.ends_with("mini"))), ["gpt-4o-mini"]);
    let anthropic = br#"{"data":[{"id":"a","type":"model"},{"id":"b","type":"model"},{"id":"c","type":"model"}],"has_more":false,"first_id":"a","last_id":"c"}"#;
    let out: Value = serde_json::from_slice(&filter_model_list(Api::Anthropic, anthropic, |m| m == "b")).unwrap();
    assert_eq!((out["first_id"].as_str(), out["last_id"].as_str()), (Some("b"), Some("b")));
}

#[test]
fn what_cannot_be_filtered_becomes_an_empty_listing() {
    for body in [&b"not json"[..], b"[]", br#"{"data":{"id":"gpt-4o"}}"#, br#"{"models":[{"id":"gpt-4o"}]}"#] {
        assert!(ids(&filter_model_list(Api::OpenAi, body, |_| true)).is_empty());
    }
    let gemini =
        br#"{"models":[{"name":"models/gemini-2.5-flash"},{"name":"models/gemini-2.5-pro"}],"nextPageToken":"t"}"#;
    let out: Value =
        serde_json::from_slice(&filter_model_list(Api::Gemini, gemini, |m| m == "gemini-2.5-pro")).unwrap();
    assert_eq!(out, serde_json::json!({"models":[{"name":"models/gemini-2.5-pro"}],"nextPageToken":"t"}));
    assert_eq!(filter_model_list(Api::Gemini, br#"{"data":[]}"#, |_| true), br#"{"models":[]}"#.to_vec());
}

#[test]
fn the_api_names_are_the_config_names() {
    for (name, api) in [
        ("openai", Api::OpenAi),
        ("openai_compatible", Api::OpenAiCompatible),
        ("anthropic", Api::Anthropic),
        ("gemini", Api::Gemini),
        ("azure_openai", Api::AzureOpenAi),
        ("bedrock", Api::Bedrock),
        ("vertex", Api::Vertex),
    ] {
        assert_eq!(serde_json::from_value::<Api>(Value::from(name)).unwrap(), api);
        assert_eq!(api.name(), name);
    }
    assert!(serde_json::from_value::<Api>(Value::from("OpenAI")).is_err());
}
