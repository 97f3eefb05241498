use super::*;

#[test]
fn refuses_paths_two_servers_could_read_differently() {
    for (path, detail) in [
        ("v1/chat/completions", "not_absolute"),
        ("/v1/chat%2Fcompletions", "percent_encoded"),
        ("/v1beta/models/gemini%3AgenerateContent", "percent_encoded"),
        ("/v1/chat/%63ompletions", "percent_encoded"),
        ("/v1//chat/completions", "empty_segment"),
        ("/v1/./chat/completions", "dot_segment"),
        ("/v1/../v1/chat/completions", "dot_segment"),
        ("/v1/chat\\completions", "path_backslash"),
        ("/v1/chat/completions;x=1", "path_parameters"),
        ("/v1beta/models/a:b:generateContent", "second_method"),
        ("/v1/chat/completions#x", "path_fragment"),
        ("/v1/chat/compl\u{e9}tions", "path_byte"),
        ("/v1/chat/completions\t", "path_byte"),
    ] {
        assert_eq!(check(path, None).unwrap_err().detail.as_deref(), Some(detail), "{path}");
    }
    for path in ["/v1/chat/completions", "/v1beta/models/gemini-2.5-flash:generateContent", "/v1/models/"] {
        assert!(check(path, None).is_ok(), "{path}");
    }
}
