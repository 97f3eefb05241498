use super::*;

fn failed(r: &CalloutResult) -> bool {
    matches!(r, CalloutResult::Failed(_))
}

#[test]
fn a_call_that_failed_after_its_headers_is_failed() {
    // Envoy's onHttpCallFailure: (token, 0, 0, 0), whatever arrived.
    assert!(failed(&delivered(0, None, None, None, 0, 1024)));
    assert!(failed(&delivered(0, Some("200"), None, Some(b"{}".to_vec()), 2, 1024)));
}

#[test]
fn headers_without_a_final_status_are_failed() {
    assert!(failed(&delivered(3, None, None, Some(Vec::new()), 0, 1024)));
    for odd in ["100", "103", "199", "600", "999", "2OO", "", "-200", "20000000"] {
        assert!(failed(&delivered(3, Some(odd), None, Some(Vec::new()), 0, 1024)), "{odd:?}");
    }
}

#[test]
fn a_status_with_an_unreadable_or_short_body_is_failed() {
    assert!(failed(&delivered(3, Some("200"), None, None, 10, 1024)));
    assert!(failed(&delivered(3, Some("200"), None, Some(b"{}".to_vec()), 10, 1024)));
    // No body announced, none read: an empty answer, for the reader to judge.
    assert_eq!(
        delivered(3, Some("204"), None, None, 0, 1024),
        CalloutResult::Response { status: 204, content_type: None, body: Vec::new() }
    );
}

#[test]
fn an_oversized_body_is_cut_one_byte_past_the_limit() {
    let body = vec![b' '; 11];
    let r = delivered(3, Some("200"), Some("application/json"), Some(body), 1 << 20, 10);
    let CalloutResult::Response { body, .. } = r else { panic!("{r:?}") };
    assert_eq!(body.len(), 11);
}

#[test]
fn json_content_types() {
    for yes in ["application/json", "Application/JSON; charset=utf-8", "application/jwk-set+json"] {
        assert!(is_json(yes), "{yes}");
    }
    for no in ["text/html", "text/json", "application/jsonx", "", "application/x-www-form-urlencoded"] {
        assert!(!is_json(no), "{no}");
    }
}
