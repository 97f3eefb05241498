use super::*;
use crate::api::Api;

#[test]
fn deployments_and_the_v1_surface() {
    let (e, c) = Api::AzureOpenAi.classify("POST", "/openai/deployments/my-gpt4o/chat/completions").unwrap();
    assert_eq!((e.model, c.get("deployment")), (ModelAt::Capture("deployment"), Some("my-gpt4o")));
    let (e, _) = Api::AzureOpenAi.classify("POST", "/openai/v1/chat/completions").unwrap();
    assert_eq!(e.model, ModelAt::Body(MODEL));
    assert_eq!(Api::AzureOpenAi.classify("GET", "/openai/models").unwrap().0.model, ModelAt::Listing);
    for path in
        ["/openai/deployments/x/audio/speech", "/openai/files", "/openai/deployments/x/extensions/chat/completions"]
    {
        assert!(Api::AzureOpenAi.classify("POST", path).is_none(), "{path}");
    }
}
