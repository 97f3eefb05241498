use super::*;
use crate::api::Api;

#[test]
fn every_runtime_endpoint_and_no_other() {
    let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0";
    for method in ["invoke", "invoke-with-response-stream", "converse", "converse-stream", "count-tokens"] {
        let (_, c) = Api::Bedrock.classify("POST", &format!("/model/{arn}/{method}")).unwrap();
        assert_eq!(c.get("modelId"), Some(arn));
    }
    assert!(Api::Bedrock.classify("POST", "/model/x/invoke/extra").is_none());
    assert!(Api::Bedrock.classify("GET", "/foundation-models").is_none());
    assert!(Api::Bedrock.classify("POST", "/async-invoke").is_none());
}

#[test]
fn errors_name_botocores_exception_types() {
    assert_eq!(error_headers(403), vec![("x-amzn-errortype".to_string(), "AccessDeniedException".to_string())]);
    assert_eq!(error_body(403, "x", "m"), json!({"message": "m"}));
    let converse = json!({"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}});
    assert_eq!(usage(&converse).unwrap().total_tokens, Some(7));
}

#[test]
fn bedrock_model_ids_are_decoded_once() {
    let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0";
    assert!(crate::api::path::check(&format!("/model/{arn}/converse"), Some(2)).is_ok());
    assert_eq!(
        decode_model(arn).unwrap(),
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    );
    assert_eq!(
        decode_model("anthropic.claude-3-haiku-20240307-v1:0").unwrap(),
        "anthropic.claude-3-haiku-20240307-v1:0"
    );
    assert_eq!(
        decode_model("anthropic.claude-3-haiku-20240307-v1%3a0").unwrap(),
        "anthropic.claude-3-haiku-20240307-v1:0"
    );
    for bad in ["a%252Fb", "a%2e%2e", "a%2Fb", "arn%3Ax%2F%2Fy", "arn%3Ax%2F..%2Fy", "%2Fa", "a b", "a%"] {
        assert!(decode_model(bad).is_err(), "{bad}");
    }
    assert!(crate::api::path::check("/model/a%2Fb/converse", Some(3)).is_err(), "only the model segment");
}
