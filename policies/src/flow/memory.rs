//! Response bytes held for usage or filtering, bounded per request and in
//! total per VM.

use std::cell::Cell;

/// Responses held for usage or filtering are bounded per request, and in
/// total per VM: many slow clients must not exhaust a VM's memory (a wasm
/// out-of-memory aborts every request on it).
#[derive(Debug)]
pub struct ResponseMemory {
    used: Cell<usize>,
    limit: usize,
}

impl ResponseMemory {
    pub fn new(limit: usize) -> Self {
        ResponseMemory { used: Cell::new(0), limit }
    }

    pub(crate) fn take(&self, n: usize) -> bool {
        let used = self.used.get();
        if used.saturating_add(n) > self.limit {
            return false;
        }
        self.used.set(used + n);
        true
    }

    pub(crate) fn give_back(&self, n: usize) {
        self.used.set(self.used.get().saturating_sub(n));
    }

    pub fn in_use(&self) -> usize {
        self.used.get()
    }
}

/// Held response bytes per request, at most: usage is read from JSON
/// responses up to this size.
pub const MAX_RESPONSE_HELD: usize = 1024 * 1024;
/// Held response bytes per VM, at most.
pub const MAX_RESPONSE_HELD_PER_VM: usize = 32 * 1024 * 1024;
/// Model listings larger than this are replaced by an empty listing.
pub const MAX_LISTING_BYTES: usize = 4 * 1024 * 1024;
