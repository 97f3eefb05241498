//! Values a workload chose, cut to a size the audit log can carry.

/// Values a workload chose are cut to this many bytes in the audit record,
/// so no request can flood the log.
pub const MAX_AUDIT_VALUE: usize = 256;

/// `value`, cut at a character boundary to [`MAX_AUDIT_VALUE`] bytes and
/// marked `…` when cut.
pub fn bounded(value: &str) -> String {
    if value.len() <= MAX_AUDIT_VALUE {
        return value.to_string();
    }
    let mut end = MAX_AUDIT_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}
