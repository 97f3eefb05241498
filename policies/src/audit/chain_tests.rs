use super::*;

fn log(n: usize) -> Vec<String> {
    let mut a = Chain::new("a1".into());
    let mut b = Chain::new("b2".into());
    (0..n)
        .map(|i| {
            let record = format!("{{\"request_id\":\"r{i}\",\"decision\":\"allow\"}}");
            if i % 3 == 0 {
                b.seal(&record)
            } else {
                a.seal(&record)
            }
        })
        .collect()
}

fn check(lines: &[String]) -> Report {
    verify(&(lines.join("\n") + "\n"))
}

#[test]
fn sealed_records_verify() {
    let lines = log(12);
    assert!(lines[0].ends_with(",\"chain\":\"b2\",\"seq\":1,\"prev\":null}"), "{}", lines[0]);
    let report = check(&lines);
    assert_eq!(report.problems, vec![]);
    assert_eq!(report.chains.iter().map(|c| (c.id.as_str(), c.records)).collect::<Vec<_>>(), [("a1", 8), ("b2", 4)]);
    let mut with_fallback = lines.clone();
    with_fallback.insert(3, r#"{"decision":"deny","reason":"rejected_by_envoy"}"#.into());
    assert_eq!(check(&with_fallback).unchained, 1);
    assert!(check(&with_fallback).problems.is_empty());
}

#[test]
fn finds_deleted_edited_swapped_and_repeated_records() {
    let lines = log(12);
    let mut deleted = lines.clone();
    deleted.remove(4); // a1's record 3
    assert_eq!(check(&deleted).problems, vec![Problem::Gap { chain: "a1".into(), from: 3, to: 3 }]);

    let mut edited = lines.clone();
    edited[4] = edited[4].replace("\"allow\"", "\"deny\"");
    assert_eq!(check(&edited).problems, vec![Problem::Altered { chain: "a1".into(), seq: 3, line: 5 }]);

    let mut swapped = lines.clone();
    swapped.swap(4, 5); // a1's 3 and 4
    assert_eq!(check(&swapped).problems, vec![Problem::Reordered { chain: "a1".into(), seq: 3, line: 6 }]);

    let mut repeated = lines.clone();
    repeated.push(lines[4].clone());
    let problems = check(&repeated).problems;
    assert!(problems.contains(&Problem::Duplicate { chain: "a1".into(), seq: 3, line: 13 }), "{problems:?}");

    let mut stripped = lines.clone();
    stripped[4] = r#"{"request_id":"r4","decision":"allow"}"#.into();
    assert_eq!(check(&stripped).problems, vec![Problem::Gap { chain: "a1".into(), from: 3, to: 3 }]);

    let mut garbage = lines;
    garbage[2] = "not json".into();
    assert!(check(&garbage).problems.contains(&Problem::Malformed { line: 3 }));
}

#[test]
fn a_file_may_start_mid_chain() {
    let lines = log(30);
    let report = check(&lines[10..]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.chains.iter().all(|c| c.first > 1));
}
