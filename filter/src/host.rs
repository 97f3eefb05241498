//! Host calls that return values instead of panicking, in the shapes the
//! engine wants. The SDK's convenience methods unwrap host statuses (and its
//! string header map unwraps UTF-8, so one header byte 0xff would trap the
//! VM for every request on it); these never do.

use std::time::{Duration, UNIX_EPOCH};

use modelgate_policies::callout::CalloutRequest;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};

/// Milliseconds since the Unix epoch by the host's clock (0 if unreadable:
/// then every JWT-SVID with an `iat` fails closed as issued in the future).
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One line of Envoy's log, through the `log` crate (the proxy-wasm SDK's
/// logger, at the level set in `lib.rs`; Envoy's own `wasm` level filters
/// again). Every line names its context: request lines start `[id]`, the
/// rest are the root context's. No line ever holds a token or a key.
pub fn log(level: LogLevel, message: &str) {
    let context = if message.starts_with('[') { "" } else { "[root] " };
    match level {
        // The `log` crate has no level above error.
        LogLevel::Critical => {
            let _ = hostcalls::log(LogLevel::Critical, &format!("{context}{message}"));
        }
        LogLevel::Error => log::error!("{context}{message}"),
        LogLevel::Warn => log::warn!("{context}{message}"),
        LogLevel::Info => log::info!("{context}{message}"),
        LogLevel::Debug => log::debug!("{context}{message}"),
        LogLevel::Trace => log::trace!("{context}{message}"),
    }
}

/// A header map as (lower-case name, value) pairs, repeats kept. Values that
/// are not UTF-8 are read lossily (they then match nothing).
pub fn header_map(map: MapType) -> Vec<(String, String)> {
    hostcalls::get_map_bytes(map)
        .unwrap_or_default()
        .into_iter()
        .map(|(mut k, v)| {
            if k.bytes().any(|b| b.is_ascii_uppercase()) {
                k.make_ascii_lowercase();
            }
            let v = String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (k, v)
        })
        .collect()
}

pub fn remove_header(map: MapType, name: &str) -> bool {
    hostcalls::remove_map_value(map, name).is_ok()
}

pub fn set_header(map: MapType, name: &str, value: &str) -> bool {
    hostcalls::set_map_value(map, name, Some(value)).is_ok()
}

/// A property as UTF-8 text.
pub fn property_string(path: &[&str]) -> Option<String> {
    String::from_utf8(property_bytes(path)?).ok()
}

/// A property's bytes (`None` when absent or unreadable: the host's error
/// is never a panic here).
pub fn property_bytes(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok()?
}

/// An integer property (Envoy encodes them as 8 little-endian bytes).
pub fn property_u64(path: &[&str]) -> Option<u64> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    let array: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    hostcalls::set_property(path.to_vec(), Some(value)).is_ok()
}

/// The whole of a buffer the host holds (empty if unreadable).
pub fn buffer(kind: BufferType) -> Vec<u8> {
    buffer_prefix(kind, u32::MAX as usize)
}

/// The first `size` bytes of a buffer (the host clamps to what it has).
pub fn buffer_prefix(kind: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(kind, 0, size).ok().flatten().unwrap_or_default()
}

/// One header's value as UTF-8 text (lossy), if present.
pub fn header_value(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name).ok().flatten().map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Starts a call-out through an Envoy cluster; its answer arrives in the
/// calling context's `on_http_call_response` with the returned token.
pub fn dispatch(call: &CalloutRequest) -> Result<u32, String> {
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", call.method), (":path", &call.path), (":authority", &call.authority)];
    headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    hostcalls::dispatch_http_call(
        &call.cluster,
        headers,
        Some(&call.body),
        vec![],
        Duration::from_millis(call.timeout_ms),
    )
    .map_err(|status| format!("{status:?}"))
}

/// The `:status` of the call-out response being delivered.
pub fn call_status() -> Option<u16> {
    header_value(MapType::HttpCallResponseHeaders, ":status")?.parse().ok()
}

/// Lets a request held across a call-out go on.
pub fn resume_request() {
    let _ = hostcalls::resume_http_request();
}

pub fn replace_buffer(kind: BufferType, size: usize, value: &[u8]) -> bool {
    hostcalls::set_buffer(kind, 0, size, value).is_ok()
}

pub fn send_reply(status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hostcalls::send_http_response(u32::from(status), headers, Some(body)).is_ok()
}

/// Resets the response stream: the client gets no more of it.
pub fn reset_response() {
    let _ = hostcalls::reset_http_response();
}

/// Random bytes from the host (WASI `random_get`). Zeros only if the host
/// refuses, which Envoy never does.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::getrandom(&mut out).is_err() {
        log(LogLevel::Critical, "modelgate: the host gave no random bytes");
    }
    out
}
