use super::*;

const GEMINI_LIKE: Endpoint = Endpoint { path: "/v1beta/models/{model}:generateContent", method: "POST", ..MODEL_LIST };
const DEPLOYMENT: Endpoint =
    Endpoint { path: "/openai/deployments/{deployment}/chat/completions", method: "POST", ..MODEL_LIST };

#[test]
fn patterns_capture_whole_segments_or_the_part_before_a_method() {
    let c = GEMINI_LIKE.matches("POST", "/v1beta/models/gemini-2.5-pro:generateContent").unwrap();
    assert_eq!(c.get("model"), Some("gemini-2.5-pro"));
    let c = DEPLOYMENT.matches("POST", "/openai/deployments/my-gpt/chat/completions").unwrap();
    assert_eq!(c.get("deployment"), Some("my-gpt"));
    for path in [
        "/v1beta/models/:generateContent",
        "/v1beta/models/a:b:generateContent",
        "/v1beta/models/gemini:streamGenerateContent",
        "/v1beta/models/gemini:generateContent/x",
        "/v1beta/models/a/b:generateContent",
        "/V1beta/models/gemini:generateContent",
    ] {
        assert_eq!(GEMINI_LIKE.matches("POST", path), None, "{path}");
    }
    assert_eq!(DEPLOYMENT.matches("POST", "/openai/deployments//chat/completions"), None);
    assert_eq!(DEPLOYMENT.matches("GET", "/openai/deployments/x/chat/completions"), None);
}
