use super::*;

fn only_search(name: &str) -> bool {
    name == "search_issues"
}

fn tools_answer() -> Value {
    json!({"jsonrpc":"2.0","id":2,"result":{"tools":[
        {"name":"search_issues","inputSchema":{}},{"name":"delete_repo","inputSchema":{}}],"nextCursor":"c"}})
}

fn names(v: &Value) -> Vec<&str> {
    v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect()
}

#[test]
fn a_json_listing_keeps_only_what_the_workload_may_use() {
    let out = filter(tools_answer().to_string().as_bytes(), false, Listed::Tools, &only_search);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(names(&v), ["search_issues"]);
    assert_eq!((v["id"].clone(), v["result"]["nextCursor"].clone()), (json!(2), json!("c")));
}

#[test]
fn an_sse_listing_is_filtered_event_by_event_and_other_events_pass() {
    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}});
    let stream = format!(
        ": keepalive\r\n\r\nevent: message\r\nid: 1\r\ndata: {progress}\r\n\r\nevent: message\r\ndata: {}\r\n\r\n",
        tools_answer()
    );
    let out = String::from_utf8(filter(stream.as_bytes(), true, Listed::Tools, &only_search)).unwrap();
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{out}");
    assert_eq!(events[0], ": keepalive");
    assert!(events[1].contains("id: 1") && events[1].contains("notifications/progress"));
    let data = events[2].lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(names(&serde_json::from_str(data).unwrap()), ["search_issues"]);
}

#[test]
fn data_split_over_lines_is_read_as_one_message() {
    let text = tools_answer().to_string();
    let (a, b) = text.split_at(text.find("\"result\"").unwrap());
    let stream = format!("data: {a}\ndata: {b}\n\n");
    let out = String::from_utf8(filter(stream.as_bytes(), true, Listed::Tools, &only_search)).unwrap();
    assert!(out.contains("search_issues") && !out.contains("delete_repo"), "{out}");
}

#[test]
fn a_listing_that_cannot_be_read_never_passes() {
    for body in [
        &b"not json"[..],
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":"delete_repo"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"}],"tools":[]}}"#,
    ] {
        let out = filter(body, false, Listed::Tools, &only_search);
        assert!(!String::from_utf8_lossy(&out).contains("delete_repo"));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32603);
    }
    let sse = b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_repo\"}]}\n\n";
    let out = filter(sse, true, Listed::Tools, &only_search);
    assert!(!String::from_utf8_lossy(&out).contains("delete_repo"), "an event cut short is dropped");
}

#[test]
fn an_error_answer_passes_as_it_is() {
    let err = json!({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}).to_string();
    assert_eq!(filter(err.as_bytes(), false, Listed::Tools, &only_search), err.as_bytes());
}

#[test]
fn resources_are_kept_by_uri_and_prompts_by_name() {
    let r = json!({"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"repo://acme/api","name":"api"},{"uri":"repo://other/x","name":"x"}]}});
    let out = filter(r.to_string().as_bytes(), false, Listed::Resources, &|uri| uri.starts_with("repo://acme/"));
    assert!(String::from_utf8_lossy(&out).contains("acme") && !String::from_utf8_lossy(&out).contains("other"));
    let p = json!({"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"triage"},{"name":"admin"}]}});
    let out = filter(p.to_string().as_bytes(), false, Listed::Prompts, &|n| n == "triage");
    assert!(!String::from_utf8_lossy(&out).contains("admin"));
}

#[test]
fn a_stream_opening_with_a_byte_order_mark_is_read_as_an_sse_client_reads_it() {
    // Found by the jsonrpc fuzz target: the first line read as
    // `\u{feff}data: …` passed the block through uncut.
    let mut stream = "\u{feff}data: ".as_bytes().to_vec();
    stream.extend_from_slice(tools_answer().to_string().as_bytes());
    stream.extend_from_slice(b"\n\n");
    let out = String::from_utf8(filter(&stream, true, Listed::Tools, &only_search)).unwrap();
    assert!(out.contains("search_issues") && !out.contains("delete_repo"), "{out}");
}

#[test]
fn lines_an_sse_client_would_not_read_never_pass() {
    // A JSON body labelled as an event stream: no data line, and lines
    // that are no SSE field. Dropped, not passed as they came.
    let mislabelled = tools_answer().to_string();
    let out = filter(mislabelled.as_bytes(), true, Listed::Tools, &only_search);
    assert!(!String::from_utf8_lossy(&out).contains("delete_repo"), "{}", String::from_utf8_lossy(&out));
    let kept = filter(b": comment\nretry: 10\n\n", true, Listed::Tools, &only_search);
    assert_eq!(kept, b": comment\nretry: 10\n\n");
}

#[test]
fn the_gateways_id_is_given_back_as_the_clients() {
    let ours = "modelgate-00ff";
    let mut answer = tools_answer();
    answer["id"] = json!(ours);
    let theirs = json!("client-7");
    let out = filter_answer(answer.to_string().as_bytes(), false, Listed::Tools, &only_search, Some((ours, &theirs)));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((v["id"].clone(), names(&v)), (theirs.clone(), vec!["search_issues"]));
    let err = json!({"jsonrpc":"2.0","id":ours,"error":{"code":-1,"message":"x"}}).to_string();
    let v: Value = serde_json::from_slice(&filter_answer(
        err.as_bytes(),
        false,
        Listed::Tools,
        &only_search,
        Some((ours, &theirs)),
    ))
    .unwrap();
    assert_eq!(v["id"], theirs);
}
