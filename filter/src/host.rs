//! Every call modelgate makes to the host, returning values instead of
//! panicking, in the shapes the engine wants.
//!
//! The proxy-wasm SDK's `hostcalls` end each call in `status =>
//! panic!("unexpected status")`, and read the status into a Rust enum that
//! has no variant for half of the statuses Envoy can return (6
//! InvalidMemoryAccess, 12 Unimplemented, …). One such status — Envoy's
//! `BadArgument` for the `:status` of a call-out that was reset after its
//! headers — trapped the VM, hung the request and failed every later one on
//! the worker. So [`abi`] declares the `proxy_*` imports itself, reads every
//! status as a number and maps each to a `Result`; nothing here calls an SDK
//! helper except `dispatch_http_call`, whose token the SDK must register
//! (see [`dispatch`]). docs/reliability.md has the table: call → statuses →
//! how.

use std::time::Duration;

use modelgate_policies::callout::{self, CalloutRequest, CalloutResult};

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, StreamType};

/// A host status the call did not succeed with (proxy-wasm ABI numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostStatus(pub u32);

impl HostStatus {
    pub const NOT_FOUND: HostStatus = HostStatus(1);
    pub const CAS_MISMATCH: HostStatus = HostStatus(8);
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            5 => "BadExpression",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            9 => "ResultMismatch",
            10 => "InternalFailure",
            11 => "BrokenConnection",
            12 => "Unimplemented",
            _ => "unknown status",
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// The raw proxy-wasm ABI (0.2.1), as Envoy exports it from module `env`:
/// the only `unsafe` in modelgate. Each function passes pointers to live
/// Rust values, reads the status as a plain `u32` (never an enum, so an
/// unknown number is just an error) and takes ownership of what the host
/// allocated only on `Ok` with a non-null pointer.
#[allow(unsafe_code)]
mod abi {
    use std::ptr::{null, null_mut};

    use crate::host::HostStatus;

    const OK: u32 = 0;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
        fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        fn proxy_done() -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        fn proxy_set_buffer_bytes(
            buffer_type: u32,
            start: usize,
            size: usize,
            data: *const u8,
            data_size: usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
        fn proxy_replace_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
        fn proxy_get_shared_data(
            key_data: *const u8,
            key_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
            return_cas: *mut u32,
        ) -> u32;
        fn proxy_set_shared_data(
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
        fn proxy_continue_stream(stream_type: u32) -> u32;
        fn proxy_close_stream(stream_type: u32) -> u32;
        fn proxy_send_local_response(
            status_code: u32,
            details_data: *const u8,
            details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_set_effective_context(context_id: u32) -> u32;
        fn proxy_call_foreign_function(
            name_data: *const u8,
            name_size: usize,
            arguments_data: *const u8,
            arguments_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
        fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    }

    fn ok(status: u32) -> Result<(), HostStatus> {
        if status == OK {
            Ok(())
        } else {
            Err(HostStatus(status))
        }
    }

    /// Bytes the host handed over after an `Ok`: it allocated them in this
    /// VM through the SDK's `proxy_on_memory_allocate` (a boxed `[u8]` of
    /// exactly `size` bytes, alignment 1) and wrote them; they are ours to
    /// free, as the SDK frees them. A null pointer is no value.
    fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
        if data.is_null() {
            return None;
        }
        // SAFETY: `data` is non-null and was allocated by
        // `proxy_on_memory_allocate(size)` as `size` initialized bytes with
        // the global allocator and alignment 1, which is the layout
        // `Vec<u8>` with capacity `size` frees; the host keeps no reference.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }

    pub fn log(level: u32, message: &str) -> Result<(), HostStatus> {
        // SAFETY: the pointer and length are those of a live `&str`, which
        // the host only reads during the call.
        ok(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
    }

    pub fn current_time_ns() -> Result<u64, HostStatus> {
        let mut time = 0u64;
        // SAFETY: `time` is a live, aligned u64 the host writes once.
        ok(unsafe { proxy_get_current_time_nanoseconds(&mut time) })?;
        Ok(time)
    }

    pub fn set_tick_period_ms(period: u32) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_set_tick_period_milliseconds(period) })
    }

    pub fn done() -> Result<(), HostStatus> {
        // SAFETY: no arguments.
        ok(unsafe { proxy_done() })
    }

    pub fn get_buffer(kind: u32, start: usize, max_size: usize) -> Result<Option<Vec<u8>>, HostStatus> {
        let (mut data, mut size) = (null_mut(), 0usize);
        // SAFETY: `data` and `size` are live locals the host writes; what it
        // allocates is taken by `take` only after `Ok`.
        ok(unsafe { proxy_get_buffer_bytes(kind, start, max_size, &mut data, &mut size) })?;
        Ok(take(data, size))
    }

    pub fn set_buffer(kind: u32, start: usize, size: usize, value: &[u8]) -> Result<(), HostStatus> {
        // SAFETY: the pointer and length are those of a live slice the host
        // only reads during the call.
        ok(unsafe { proxy_set_buffer_bytes(kind, start, size, value.as_ptr(), value.len()) })
    }

    pub fn get_map_pairs(map: u32) -> Result<Option<Vec<u8>>, HostStatus> {
        let (mut data, mut size) = (null_mut(), 0usize);
        // SAFETY: as in `get_buffer`.
        ok(unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) })?;
        Ok(take(data, size))
    }

    pub fn get_map_value(map: u32, key: &str) -> Result<Option<Vec<u8>>, HostStatus> {
        let (mut data, mut size) = (null_mut(), 0usize);
        // SAFETY: `key` is live and only read; `data`/`size` as in `get_buffer`.
        ok(unsafe { proxy_get_header_map_value(map, key.as_ptr(), key.len(), &mut data, &mut size) })?;
        Ok(Some(take(data, size).unwrap_or_default()))
    }

    pub fn remove_map_value(map: u32, key: &str) -> Result<(), HostStatus> {
        // SAFETY: `key` is live and only read during the call.
        ok(unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) })
    }

    pub fn replace_map_value(map: u32, key: &str, value: &str) -> Result<(), HostStatus> {
        // SAFETY: `key` and `value` are live and only read during the call.
        ok(unsafe { proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
    }

    pub fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>, HostStatus> {
        let (mut data, mut size) = (null_mut(), 0usize);
        // SAFETY: `path` is live and only read; `data`/`size` as in `get_buffer`.
        ok(unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) })?;
        Ok(take(data, size))
    }

    pub fn set_property(path: &[u8], value: &[u8]) -> Result<(), HostStatus> {
        // SAFETY: both slices are live and only read during the call.
        ok(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
    }

    pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), HostStatus> {
        let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
        // SAFETY: `key` is live and only read; the three outputs are live
        // locals; `data` is taken only after `Ok`.
        ok(unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) })?;
        Ok((take(data, size), cas))
    }

    pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostStatus> {
        // SAFETY: `key` and `value` are live and only read during the call.
        ok(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
    }

    pub fn continue_stream(kind: u32) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_continue_stream(kind) })
    }

    pub fn close_stream(kind: u32) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_close_stream(kind) })
    }

    pub fn send_local_response(status: u32, headers: &[u8], body: &[u8]) -> Result<(), HostStatus> {
        // SAFETY: `headers` and `body` are live and only read during the
        // call; the details are empty (null, 0); -1 is "not gRPC".
        ok(unsafe {
            proxy_send_local_response(status, null(), 0, body.as_ptr(), body.len(), headers.as_ptr(), headers.len(), -1)
        })
    }

    pub fn set_effective_context(id: u32) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_set_effective_context(id) })
    }

    pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, HostStatus> {
        let (mut data, mut size) = (null_mut(), 0usize);
        // SAFETY: `name` and `arguments` are live and only read;
        // `data`/`size` as in `get_buffer`.
        ok(unsafe {
            proxy_call_foreign_function(
                name.as_ptr(),
                name.len(),
                arguments.as_ptr(),
                arguments.len(),
                &mut data,
                &mut size,
            )
        })?;
        Ok(take(data, size))
    }

    pub fn define_metric(kind: u32, name: &str) -> Result<u32, HostStatus> {
        let mut id = 0u32;
        // SAFETY: `name` is live and only read; `id` is a live local.
        ok(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
        Ok(id)
    }

    pub fn increment_metric(id: u32, offset: i64) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_increment_metric(id, offset) })
    }

    pub fn record_metric(id: u32, value: u64) -> Result<(), HostStatus> {
        // SAFETY: no pointers.
        ok(unsafe { proxy_record_metric(id, value) })
    }
}

/// Milliseconds since the Unix epoch by the host's clock (0 if unreadable:
/// then every JWT-SVID with an `iat` fails closed as issued in the future).
pub fn now_ms() -> u64 {
    abi::current_time_ns().map_or(0, |ns| ns / 1_000_000)
}

/// One line of Envoy's log, at Info and above (Envoy's own `wasm` level
/// filters again). Every line names its context: request lines start
/// `[id]`, the rest are the root context's. No line ever holds a token or a
/// key. A line the host refuses is dropped: there is nowhere else to put it.
pub fn log(level: LogLevel, message: &str) {
    if (level as u32) < (LogLevel::Info as u32) {
        return;
    }
    let context = if message.starts_with('[') { "" } else { "[root] " };
    let _ = abi::log(level as u32, &format!("{context}{message}"));
}

/// The pairs of a header map as the host serializes them: a u32 count, a
/// (name length, value length) u32 pair per entry, then each name and
/// value followed by a NUL. `None` if the bytes are not that shape (the
/// SDK's reader indexes out of bounds, and unwraps UTF-8, on such bytes).
fn parse_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = word(0)?;
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    let mut pairs = Vec::with_capacity(count.min(bytes.len() / 10));
    for n in 0..count {
        let mut take = |size: usize| -> Option<Vec<u8>> {
            let end = at.checked_add(size)?;
            let value = bytes.get(at..end)?.to_vec();
            // Each name and value ends in a NUL.
            (bytes.get(end) == Some(&0)).then_some(())?;
            at = end + 1;
            Some(value)
        };
        let name = take(word(4 + n * 8)?)?;
        let value = take(word(8 + n * 8)?)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// The host's serialization of header pairs (the inverse of
/// [`parse_pairs`]); lengths beyond u32 cannot be headers and are refused.
fn serialize_pairs(pairs: &[(&str, &str)]) -> Option<Vec<u8>> {
    let size = pairs.iter().map(|(k, v)| k.len() + v.len() + 10).sum::<usize>() + 4;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&u32::try_from(pairs.len()).ok()?.to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&u32::try_from(k.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).ok()?.to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    Some(out)
}

/// A header map as (lower-case name, value) pairs, repeats kept. Values that
/// are not UTF-8 are read lossily (they then match nothing); an unreadable
/// map is empty.
pub fn header_map(map: MapType) -> Vec<(String, String)> {
    let bytes = abi::get_map_pairs(map as u32).ok().flatten().unwrap_or_default();
    parse_pairs(&bytes)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let mut k = String::from_utf8_lossy(&k).into_owned();
            k.make_ascii_lowercase();
            (k, String::from_utf8_lossy(&v).into_owned())
        })
        .collect()
}

pub fn remove_header(map: MapType, name: &str) -> bool {
    abi::remove_map_value(map as u32, name).is_ok()
}

pub fn set_header(map: MapType, name: &str, value: &str) -> bool {
    abi::replace_map_value(map as u32, name, value).is_ok()
}

/// One header's value as UTF-8 text (lossy), if present and readable. A map
/// the host does not have (a call-out's headers after it failed: Envoy's
/// `BadArgument`) is no value.
pub fn header_value(map: MapType, name: &str) -> Option<String> {
    abi::get_map_value(map as u32, name).ok().flatten().map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A property path as the host reads it: the parts joined by NULs.
fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

/// A property as UTF-8 text.
pub fn property_string(path: &[&str]) -> Option<String> {
    String::from_utf8(property_bytes(path)?).ok()
}

/// A property's bytes (`None` when absent or unreadable).
pub fn property_bytes(path: &[&str]) -> Option<Vec<u8>> {
    abi::get_property(&property_path(path)).ok().flatten()
}

/// An integer property (Envoy encodes them as 8 little-endian bytes).
pub fn property_u64(path: &[&str]) -> Option<u64> {
    let array: [u8; 8] = property_bytes(path)?.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    abi::set_property(&property_path(path), value).is_ok()
}

/// The whole of a buffer the host holds (empty if unreadable).
pub fn buffer(kind: BufferType) -> Vec<u8> {
    buffer_prefix(kind, u32::MAX as usize)
}

/// The first `size` bytes of a buffer (the host clamps to what it has;
/// empty if the host has no such buffer or cannot copy it).
pub fn buffer_prefix(kind: BufferType, size: usize) -> Vec<u8> {
    abi::get_buffer(kind as u32, 0, size).ok().flatten().unwrap_or_default()
}

pub fn replace_buffer(kind: BufferType, size: usize, value: &[u8]) -> bool {
    abi::set_buffer(kind as u32, 0, size, value).is_ok()
}

/// The plugin configuration Envoy gives `on_configure` (empty if none).
pub fn plugin_configuration(size: usize) -> Vec<u8> {
    buffer_prefix(BufferType::PluginConfiguration, size)
}

/// A shared-data value and its version (`cas`), across the workers' VMs:
/// `(None, None)` when absent or unreadable.
pub fn shared_get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    match abi::get_shared_data(key) {
        Ok((value, cas)) => (value, (cas != 0).then_some(cas)),
        Err(_) => (None, None),
    }
}

/// Sets a shared-data value, only if its version is still `cas` when given.
/// False on a version mismatch (another VM wrote first) or any error.
pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> bool {
    abi::set_shared_data(key, value, cas.unwrap_or(0)).is_ok()
}

/// Envoy's shared data as the budget counters use it: an absent key is
/// `(None, 0)`; a compare-and-swap that lost is `Ok(false)`; any other
/// host status is `Err` (the engine then refuses, never counts nothing).
pub struct Counters;

impl modelgate_policies::SharedStore for Counters {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), modelgate_policies::HostError> {
        match abi::get_shared_data(key) {
            Ok((value, cas)) => Ok((value, cas)),
            Err(HostStatus::NOT_FOUND) => Ok((None, 0)),
            Err(_) => Err(modelgate_policies::HostError),
        }
    }

    fn swap(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, modelgate_policies::HostError> {
        match abi::set_shared_data(key, value, cas) {
            Ok(()) => Ok(true),
            Err(HostStatus::CAS_MISMATCH) => Ok(false),
            Err(_) => Err(modelgate_policies::HostError),
        }
    }
}

/// Starts a call-out through an Envoy cluster; its answer arrives in the
/// calling context's `on_http_call_response` with the returned token.
///
/// The one SDK call left: the SDK's dispatcher routes the answer only for
/// tokens its own `dispatch_http_call` registered (an unknown token panics
/// in the dispatcher), and that registry is private to the SDK. Its panic
/// arm is unreachable here: Envoy's `httpCall` returns only Ok, BadArgument
/// (unknown cluster, missing pseudo-header, negative timeout) and
/// InternalFailure (the async client refused), all mapped by the SDK to
/// `Err`; the ABI layer's InvalidMemoryAccess needs pointers outside the
/// VM's memory, and these are live slices. The preconditions kept here: the
/// three pseudo-headers are always sent, and the timeout fits the host's
/// `int` milliseconds.
pub fn dispatch(call: &CalloutRequest) -> Result<u32, String> {
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", call.method), (":path", &call.path), (":authority", &call.authority)];
    headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let timeout = Duration::from_millis(call.timeout_ms.clamp(1, i32::MAX as u64));
    proxy_wasm::hostcalls::dispatch_http_call(&call.cluster, headers, Some(&call.body), vec![], timeout)
        .map_err(|status| format!("{status:?}"))
}

/// The answer to a call-out, read during its `on_http_call_response`: at
/// most `limit + 1` bytes of body (one more than the reader accepts, so an
/// oversized answer is refused as such), and never a read of a map or body
/// the host does not have. See [`callout::delivered`] for what each shape
/// becomes.
pub fn call_response(headers: usize, body_size: usize, limit: usize) -> CalloutResult {
    if headers == 0 {
        // A failed call (reset, cut after its headers, timed out): Envoy
        // has no response to read, and says `BadArgument` for its headers.
        return callout::delivered(0, None, None, None, body_size, limit);
    }
    let status = header_value(MapType::HttpCallResponseHeaders, ":status");
    let content_type = header_value(MapType::HttpCallResponseHeaders, "content-type");
    let body = if body_size == 0 {
        Some(Vec::new())
    } else {
        abi::get_buffer(BufferType::HttpCallResponseBody as u32, 0, body_size.min(limit.saturating_add(1)))
            .ok()
            .flatten()
    };
    callout::delivered(headers, status.as_deref(), content_type.as_deref(), body, body_size, limit)
}

/// Lets a request held across a call-out go on.
pub fn resume_request() {
    let _ = abi::continue_stream(StreamType::HttpRequest as u32);
}

/// Makes context `id` the one later calls act on (from the root's tick or
/// another request's call-out). False if the host no longer has it.
pub fn set_effective_context(id: u32) -> bool {
    abi::set_effective_context(id).is_ok()
}

pub fn send_reply(status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let Some(headers) = serialize_pairs(&headers) else { return false };
    abi::send_local_response(u32::from(status), &headers, body).is_ok()
}

/// Resets the response stream: the client gets no more of it.
pub fn reset_response() {
    let _ = abi::close_stream(StreamType::HttpResponse as u32);
}

/// Tells the host that the current root context, which answered `on_done`
/// with false, has finished and may go. False if the host refused.
pub fn done() -> bool {
    abi::done().is_ok()
}

/// Starts the root's timer (`on_tick`). False if the host refused.
pub fn set_tick_period(period: Duration) -> bool {
    abi::set_tick_period_ms(u32::try_from(period.as_millis()).unwrap_or(u32::MAX)).is_ok()
}

/// A host-provided function (`verify_signature`, `sign`): its result bytes
/// (`None` when it returned nothing), or the host's status — `NotFound`
/// when the host has no such function.
pub fn foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, HostStatus> {
    abi::call_foreign_function(name, arguments)
}

/// Defines a metric (counter or gauge) by name; `None` if the host refused.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    abi::define_metric(kind as u32, name).ok()
}

/// Adds to a counter. Envoy refuses a zero or negative offset for counters
/// (`BadArgument`): those are skipped.
pub fn increment_metric(id: u32, by: u64) {
    if by > 0 {
        let _ = abi::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

/// Moves a gauge by `delta` (either way). False if the host refused.
pub fn add_to_gauge(id: u32, delta: i64) -> bool {
    abi::increment_metric(id, delta).is_ok()
}

/// Sets a gauge.
pub fn record_metric(id: u32, value: u64) {
    let _ = abi::record_metric(id, value);
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

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
