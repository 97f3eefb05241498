//! Multipart forms and header parameters: fields or a refusal, never a
//! panic; every field's value lies inside the body.
#![no_main]

use modelgate_policies::parsers::multipart;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first line is the content type, the rest the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (head, body) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(content_type) = std::str::from_utf8(head) else { return };
    let _ = multipart::media_type(content_type);
    let boundary = multipart::boundary(content_type).unwrap_or_else(|_| "XyZ".to_string());
    if let Ok(fields) = multipart::fields(body, &boundary) {
        for f in fields {
            assert!(!f.name.is_empty());
            let start = f.value.as_ptr() as usize - body.as_ptr() as usize;
            assert!(start + f.value.len() <= body.len());
        }
    }
});
