use super::*;

fn form(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, value) in parts {
        out.extend_from_slice(format!("--XyZ\r\n{headers}\r\n\r\n{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

fn err(body: &[u8]) -> &'static str {
    fields(body, "XyZ").unwrap_err().0
}

#[test]
fn reads_the_fields_of_a_well_formed_form() {
    let body = form(&[
        (
            "Content-Disposition: form-data; name=\"file\"; filename=\"a b;c.wav\"\r\nContent-Type: audio/wav",
            "RIFF\r\n--Xy",
        ),
        ("content-disposition: form-data; name=model", "whisper-1"),
        ("Content-Disposition: form-data; name=\"timestamp_granularities[]\"", "word"),
        ("Content-Disposition: form-data; name=\"timestamp_granularities[]\"", "segment"),
    ]);
    let f = fields(&body, "XyZ").unwrap();
    assert_eq!(f[0].filename.as_deref(), Some("a b;c.wav"));
    assert_eq!(f[0].value, b"RIFF\r\n--Xy");
    assert_eq!(f[0].content_type.as_deref(), Some("audio/wav"));
    assert_eq!((f[1].name.as_str(), f[1].value), ("model", &b"whisper-1"[..]));
    assert_eq!(f.len(), 4);
    // The close delimiter may end the body, or be followed by one CRLF.
    fields(&body[..body.len() - 2], "XyZ").unwrap();
}

/// Each of these was, or could be, read differently by two servers.
#[test]
fn refuses_what_servers_read_differently() {
    let d = |disposition: &str| form(&[(&format!("Content-Disposition: {disposition}"), "x")]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (d("form-data; name=\"model\"; name=\"file\""), "repeated_parameter"),
        (d("form-data; name=\"a\"; NAME=\"model\""), "repeated_parameter"),
        (d("form-data; name*=UTF-8''model"), "parameter"),
        (d("form-data; name=\"mo\\\"del\""), "quoted_string"),
        (d("form-data; name=\"model"), "quoted_string"),
        (d("form-data; name=\"model\"; size=3"), "disposition_parameter"),
        (d("form-data; name=\"model\";"), "parameter"),
        (d("form-data"), "disposition"),
        (d("attachment; name=\"model\""), "disposition"),
        (d("form-data; name=\"\""), "no_name"),
        (
            form(&[(
                "Content-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: base64",
                "Z3B0LTRv",
            )]),
            "part_header_not_allowed",
        ),
        (
            form(&[(
                "Content-Disposition: form-data; name=\"model\"\r\nContent-Disposition: form-data; name=\"x\"",
                "a",
            )]),
            "repeated_part_header",
        ),
        (form(&[("Content-Disposition: form-data;\r\n name=\"model\"", "a")]), "part_headers"),
        (form(&[("Content-Type: text/plain", "a")]), "no_disposition"),
        (
            form(&[
                ("Content-Disposition: form-data; name=\"model\"", "a"),
                ("Content-Disposition: form-data; name=\"model\"", "b"),
            ]),
            "repeated_field",
        ),
        (form(&[("Content-Disposition: form-data; name=\"model\"", "a --XyZ b")]), "boundary_in_content"),
        (
            [b"preamble\r\n".as_slice(), &form(&[("Content-Disposition: form-data; name=\"m\"", "a")])].concat(),
            "preamble",
        ),
        (b"--XyZ \r\nContent-Disposition: form-data; name=\"m\"\r\n\r\na\r\n--XyZ--".to_vec(), "delimiter"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\na\r\n--XyZ--\r\nepilogue".to_vec(), "epilogue"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\na".to_vec(), "unterminated"),
        (b"--XyZ--".to_vec(), "no_parts"),
        (b"--XyZ\nContent-Disposition: form-data; name=\"m\"\n\na\r\n--XyZ--".to_vec(), "delimiter"),
    ];
    for (body, want) in cases {
        assert_eq!(err(&body), want, "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn the_content_type_carries_one_good_boundary() {
    assert_eq!(boundary("multipart/form-data; boundary=XyZ").unwrap(), "XyZ");
    assert_eq!(boundary("Multipart/Form-Data;boundary=\"a b'()+_,-./:=?\"").unwrap(), "a b'()+_,-./:=?");
    for (ct, want) in [
        ("multipart/form-data; boundary=a; boundary=b", "repeated_parameter"),
        ("multipart/form-data; boundary=\"a\\\"b\"", "quoted_string"),
        ("multipart/form-data; boundary=\"ab", "quoted_string"),
        ("multipart/form-data; boundary=a; charset=utf-8", "content_type_parameters"),
        ("multipart/form-data", "content_type_parameters"),
        ("multipart/mixed; boundary=a", "content_type"),
        ("multipart/form-data; boundary=\"\"", "boundary"),
        ("multipart/form-data; boundary=\"ends in space \"", "boundary"),
        ("multipart/form-data; boundary=\"has{brace\"", "boundary"),
        ("multipart/form-data; boundary*=utf-8''x", "parameter"),
    ] {
        assert_eq!(boundary(ct).unwrap_err().0, want, "{ct}");
    }
    assert_eq!(boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))).unwrap_err().0, "boundary");
}

#[test]
fn header_parameters_parse_strictly() {
    let m = media_type("Application/JSON ; charset=\"utf-8\"").unwrap();
    assert_eq!((m.essence.as_str(), m.param("charset")), ("application/json", Some("utf-8")));
    for bad in
        ["application/json;", "application/json; charset", "json", "application/json; a=b c", "app lication/json"]
    {
        assert!(media_type(bad).is_err(), "{bad}");
    }
}

#[test]
fn parsing_is_linear_in_the_body() {
    // Carriage returns and near-delimiters everywhere: still one pass.
    let filler = "\r\n--XyY".repeat(200_000);
    let body = form(&[
        ("Content-Disposition: form-data; name=\"file\"", &filler),
        ("Content-Disposition: form-data; name=\"model\"", "m"),
    ]);
    assert_eq!(fields(&body, "XyZ").unwrap()[1].value, b"m");
}
