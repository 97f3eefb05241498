use super::*;
use serde_json::json;

fn read_json(v: Value) -> Result<Message, Denial> {
    read(v.to_string().as_bytes())
}

fn detail(r: Result<Message, Denial>) -> String {
    let d = r.unwrap_err();
    assert_eq!(d.reason, Reason::InvalidBody);
    d.detail.unwrap()
}

#[test]
fn a_tool_call_names_its_tool_and_arguments() {
    let m = read_json(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"search_issues","arguments":{"repo":"acme/api"}}}))
    .unwrap();
    assert_eq!(m.kind, Kind::Request);
    assert_eq!(m.id, Some(json!(3)));
    let Ask::Tool { name, arguments } = &m.ask else { panic!("{:?}", m.ask) };
    assert_eq!(name, "search_issues");
    assert_eq!(arguments.as_ref().unwrap()["repo"], "acme/api");
    assert!(m.arguments_raw.is_some());
}

#[test]
fn names_are_read_decoded_as_the_server_reads_them() {
    let m = read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u005frepo"}}"#).unwrap();
    assert_eq!(m.named(), Some("delete_repo"));
}

#[test]
fn resources_prompts_methods_notifications_and_answers_are_told_apart() {
    let r = read_json(json!({"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"repo://acme/api"}}))
        .unwrap();
    assert_eq!(r.ask, Ask::Resource("repo://acme/api".into()));
    let p = read_json(json!({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"triage"}})).unwrap();
    assert_eq!(p.ask, Ask::Prompt("triage".into()));
    let l = read_json(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).unwrap();
    assert_eq!((l.ask.clone(), l.listing()), (Ask::Method("tools/list".into()), Some(Listed::Tools)));
    let n = read_json(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).unwrap();
    assert_eq!((n.kind, n.id), (Kind::Notification, None));
    let a = read_json(json!({"jsonrpc":"2.0","id":0,"result":{"content":[]}})).unwrap();
    assert_eq!((a.kind, a.ask), (Kind::Response, Ask::Answer));
}

#[test]
fn batches_and_hidden_second_messages_are_refused() {
    let one = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(detail(read(format!("[{one}]").as_bytes())), "jsonrpc_batch");
    assert_eq!(detail(read(format!(" \n[{one}]").as_bytes())), "jsonrpc_batch");
    assert_eq!(detail(read(format!("{one}\n{one}").as_bytes())), "syntax");
    assert_eq!(detail(read(format!("{one}{one}").as_bytes())), "syntax");
}

#[test]
fn repeated_members_at_any_depth_are_refused() {
    let twice = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_repo"}}"#;
    assert_eq!(detail(read(twice)), "duplicate_key");
    let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"ping","metho\u0064":"tools/call"}"#;
    assert_eq!(detail(read(escaped)), "duplicate_key");
}

#[test]
fn every_wrong_shape_is_refused_with_its_own_detail() {
    for (msg, want) in [
        (json!({"jsonrpc":"2.0","id":1.5,"method":"ping"}), "id_type"),
        (json!({"jsonrpc":"2.0","id":true,"method":"ping"}), "id_type"),
        (json!({"jsonrpc":"2.0","id":{},"method":"ping"}), "id_type"),
        (json!({"jsonrpc":"2.0","id":null,"method":"ping"}), "id_type"),
        (json!({"jsonrpc":"2.0","id":1,"method":7}), "method_type"),
        (json!({"jsonrpc":"1.0","id":1,"method":"ping"}), "jsonrpc_version"),
        (json!({"id":1,"method":"ping"}), "jsonrpc_version"),
        (json!({"jsonrpc":"2.0","id":1,"method":"ping","extra":1}), "unknown_member"),
        (json!({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}), "params_type"),
        (json!({"jsonrpc":"2.0","id":1,"method":"ping","result":{}}), "not_a_message"),
        (json!({"jsonrpc":"2.0","id":1,"result":{},"error":{}}), "not_a_message"),
        (json!({"jsonrpc":"2.0","result":{}}), "not_a_message"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}), "params_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}), "params_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}), "arguments_type"),
        (json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":""}}), "params_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools call"}), "method_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools//call"}), "method_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"tools/call/"}), "method_name"),
        (json!({"jsonrpc":"2.0","id":1,"method":"Tools/Call"}), "method_case"),
        (json!({"jsonrpc":"2.0","id":1,"method":"TOOLS/LIST"}), "method_case"),
        (json!([]), "jsonrpc_batch"),
    ] {
        assert_eq!(detail(read_json(msg.clone())), want, "{msg}");
    }
    assert_eq!(detail(read(b"\xff")), "encoding");
    assert_eq!(detail(read(b"\"ping\"")), "not_an_object");
}

#[test]
fn reading_is_linear_in_the_message() {
    // 64 Ki arguments: one pass, no quadratic work (the strict reader's own
    // complexity test counts comparisons; this one only must finish).
    let args: Vec<String> = (0..65_000).map(|i| format!("\"a{i}\":{i}")).collect();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{{{}}}}}}}"#,
        args.join(",")
    );
    assert!(read(body.as_bytes()).is_ok());
}

#[test]
fn a_completion_names_the_prompt_or_resource_it_completes() {
    let c = |r: Value| {
        read_json(
            json!({"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":r,"argument":{"name":"a","value":"b"}}}),
        )
    };
    assert_eq!(c(json!({"type":"ref/prompt","name":"admin"})).unwrap().refers_to, vec![Ask::Prompt("admin".into())]);
    assert_eq!(
        c(json!({"type":"ref/resource","uri":"repo://other/{name}"})).unwrap().refers_to,
        vec![Ask::Resource("repo://other/{name}".into())]
    );
    for bad in [json!({"type":"ref/prompt"}), json!({"type":"ref/tool","name":"x"}), json!("admin")] {
        assert_eq!(detail(c(bad)), "completion_ref");
    }
}

#[test]
fn a_subscription_names_every_resource_it_listens_to() {
    let listen = |n: Value| {
        read_json(json!({"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":n}}))
    };
    let m = listen(json!({"resourceSubscriptions":["repo://acme/api","repo://other/secret"]})).unwrap();
    assert_eq!(m.refers_to, vec![Ask::Resource("repo://acme/api".into()), Ask::Resource("repo://other/secret".into())]);
    assert!(listen(json!({"toolsListChanged":true})).unwrap().refers_to.is_empty());
    for bad in [
        json!({"resourceSubscriptions":"repo://x"}),
        json!({"resourceSubscriptions":[1]}),
        json!({"resourceSubscriptions":vec!["a"; MAX_SUBSCRIPTIONS + 1]}),
    ] {
        assert_eq!(detail(listen(bad)), "subscriptions");
    }
}
