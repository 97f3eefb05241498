//! Strict JSON: the one reader for request bodies, JWT headers and claims.
//!
//! Two servers must never read one body differently, so this reader refuses
//! what real parsers disagree on instead of resolving it: a repeated member
//! name in any object at any depth (after unescaping, so `"\u006dodel"` is
//! `"model"`), lone surrogate escapes, invalid UTF-8, a byte-order mark,
//! trailing data, nesting deeper than [`MAX_DEPTH`], and objects with more
//! than [`MAX_MEMBERS`] members.
//!
//! It runs in O(n log n) in the document's size: one pass over the bytes,
//! and each object's member names sorted once to find repeats (never each
//! name compared with every earlier one). It builds no tree: the caller
//! names the [`Path`]s it wants and gets their values' byte spans back, so a
//! body can be rewritten by splicing into the bytes the workload sent.

use std::borrow::Cow;
use std::cmp::Ordering;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;
/// Most members one object may have.
pub const MAX_MEMBERS: usize = 65_536;
/// Most paths one scan can look for.
pub const MAX_PATHS: usize = 64;

/// One step of a [`Path`] from the root object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The member with this name.
    Key(&'static str),
    /// Every element of an array.
    Each,
    /// Every member with this name at any depth below (last step only).
    Deep(&'static str),
}

/// Where a value is in a document, from the root object.
pub type Path = &'static [Step];

/// Why a document is not strict JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON: bad syntax, a control character in a string, trailing data.
    Syntax,
    /// Not UTF-8, a byte-order mark, or a lone surrogate escape.
    Encoding,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An object with more than [`MAX_MEMBERS`] members.
    TooManyMembers,
    /// A member name repeated in one object (the name, unescaped).
    Duplicate(String),
    /// Valid JSON, but the root is not an object.
    NotAnObject,
    /// A number too large for a double: one parser reads infinity, another
    /// refuses it (found by fuzzing).
    NumberOutOfRange,
}

/// What kind of value a span holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// A value found at one of the scanned paths: its kind and where its bytes
/// are (`start..end`, the quotes of a string and the brackets of a
/// container included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Index of the path in the list given to [`scan`].
    pub path: usize,
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// For a container: whether it has at least one member or element.
    pub has_members: bool,
}

/// A scanned document: the values at the requested paths, in document order.
#[derive(Debug)]
pub struct Document<'a> {
    bytes: &'a [u8],
    found: Vec<Found>,
    /// Name comparisons made finding repeats: the measure of work the
    /// complexity tests and the body benchmark read.
    pub comparisons: u64,
}

impl<'a> Document<'a> {
    /// Every value found at path `path` (its index in the scanned list).
    pub fn all(&self, path: usize) -> impl Iterator<Item = Value<'a>> + '_ {
        self.found.iter().filter(move |f| f.path == path).map(|f| Value { bytes: self.bytes, found: *f })
    }

    /// The value at path `path`, if any. Repeats cannot happen for paths
    /// without [`Step::Each`]: the scan refuses repeated names.
    pub fn get(&self, path: usize) -> Option<Value<'a>> {
        self.all(path).next()
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A value in a scanned document.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    bytes: &'a [u8],
    pub found: Found,
}

impl<'a> Value<'a> {
    pub fn kind(&self) -> Kind {
        self.found.kind
    }

    /// The value's bytes exactly as written.
    pub fn raw(&self) -> &'a [u8] {
        &self.bytes[self.found.start..self.found.end]
    }

    /// A string's text, unescaped.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if self.found.kind != Kind::String {
            return None;
        }
        let inner = &self.bytes[self.found.start + 1..self.found.end - 1];
        unescape(inner).ok()
    }

    pub fn as_bool(&self) -> Option<bool> {
        match (self.found.kind, self.raw()) {
            (Kind::Bool, b"true") => Some(true),
            (Kind::Bool, _) => Some(false),
            _ => None,
        }
    }

    /// A number written as a non-negative integer (no sign, fraction or
    /// exponent) that fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        if self.found.kind != Kind::Number {
            return None;
        }
        let raw = self.raw();
        if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(raw).ok()?.parse().ok()
    }

    pub fn is_null(&self) -> bool {
        self.found.kind == Kind::Null
    }
}

/// Scans `bytes` as one strict JSON object and returns the values at `paths`.
pub fn scan<'a>(bytes: &'a [u8], paths: &[Path]) -> Result<Document<'a>, JsonError> {
    if paths.len() > MAX_PATHS {
        return Err(JsonError::Syntax);
    }
    if bytes.starts_with(&[0xef, 0xbb, 0xbf]) || std::str::from_utf8(bytes).is_err() {
        return Err(JsonError::Encoding);
    }
    let mut scanner =
        Scanner { bytes, pos: 0, paths, names: Vec::new(), arena: Vec::new(), found: Vec::new(), comparisons: 0 };
    let root = scanner.document()?;
    if root != Kind::Object {
        return Err(JsonError::NotAnObject);
    }
    Ok(Document { bytes, found: scanner.found, comparisons: scanner.comparisons })
}

/// Parses a small strict JSON object (a JWT header or claims set) into
/// serde_json's map, after [`scan`] has refused everything ambiguous.
pub fn object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, JsonError> {
    scan(bytes, &[])?;
    serde_json::from_slice(bytes).map_err(|_| JsonError::Syntax)
}

/// A member name: where its text is, in the document or (when it had
/// escapes) unescaped in the arena.
#[derive(Clone, Copy)]
struct Name {
    start: u32,
    len: u32,
    in_arena: bool,
}

struct Frame {
    object: bool,
    start: usize,
    /// Paths still matching at this container.
    mask: u64,
    /// Deep paths this container completes (its member name matched).
    hit: u64,
    depth: usize,
    /// Where this object's names begin in `Scanner::names`.
    names_from: usize,
    arena_from: usize,
    members: usize,
}

struct Scanner<'a, 'p> {
    bytes: &'a [u8],
    pos: usize,
    paths: &'p [Path],
    /// Member names of the open objects, innermost last.
    names: Vec<Name>,
    /// Unescaped names that had escapes.
    arena: Vec<u8>,
    found: Vec<Found>,
    comparisons: u64,
}

impl Scanner<'_, '_> {
    /// The whole document: one value, white space around it, nothing after.
    /// Iterative, so nesting never grows the native stack.
    fn document(&mut self) -> Result<Kind, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        let all = if self.paths.is_empty() { 0 } else { u64::MAX >> (64 - self.paths.len()) };
        // The mask, depth and deep hits of the value about to be read.
        let (mut mask, mut depth, mut hit) = (all, 0usize, 0u64);
        loop {
            // A value starts.
            self.skip_ws();
            let start = self.pos;
            let kind = match self.peek() {
                Some(b'{') | Some(b'[') => {
                    if depth >= MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    let object = self.peek() == Some(b'{');
                    self.pos += 1;
                    stack.push(Frame {
                        object,
                        start,
                        mask,
                        hit,
                        depth,
                        names_from: self.names.len(),
                        arena_from: self.arena.len(),
                        members: 0,
                    });
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        None
                    } else {
                        // The first member or element.
                        (mask, depth, hit) = self.open_child(&mut stack)?;
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                    Some(Kind::String)
                }
                Some(b't') => Some(self.literal(b"true", Kind::Bool)?),
                Some(b'f') => Some(self.literal(b"false", Kind::Bool)?),
                Some(b'n') => Some(self.literal(b"null", Kind::Null)?),
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                    Some(Kind::Number)
                }
                _ => return Err(JsonError::Syntax),
            };
            // A value ended: a scalar (kind is Some), or an empty container
            // just closed. Close containers until one has more to read.
            let mut done = match kind {
                Some(kind) => Done { kind, start, mask, hit, depth, has_members: false },
                None => self.close(&mut stack)?,
            };
            loop {
                self.record(&done);
                let Some(frame) = stack.last() else {
                    self.skip_ws();
                    return if self.pos == self.bytes.len() { Ok(done.kind) } else { Err(JsonError::Syntax) };
                };
                let close = if frame.object { b'}' } else { b']' };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        (mask, depth, hit) = self.open_child(&mut stack)?;
                        break;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        done = self.close(&mut stack)?;
                    }
                    _ => return Err(JsonError::Syntax),
                }
            }
        }
    }

    /// Reads what introduces the next child of the innermost container (an
    /// object member's name and colon), and returns the child's path mask,
    /// depth, and the deep paths its name completes.
    fn open_child(&mut self, stack: &mut [Frame]) -> Result<(u64, usize, u64), JsonError> {
        let Some(frame) = stack.last_mut() else {
            return Err(JsonError::Syntax);
        };
        let step = frame.depth;
        let parent = frame.mask;
        frame.members += 1;
        if !frame.object {
            let mask = self.child_mask(parent, step, |s| matches!(s, Step::Each));
            return Ok((mask, frame.depth + 1, 0));
        }
        if frame.members > MAX_MEMBERS {
            return Err(JsonError::TooManyMembers);
        }
        let depth = frame.depth + 1;
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(JsonError::Syntax);
        }
        let start = self.pos;
        let escaped = self.string()?;
        let name = if escaped {
            let raw = &self.bytes[start + 1..self.pos - 1];
            let text = unescape(raw)?;
            let at = self.arena.len();
            self.arena.extend_from_slice(text.as_bytes());
            Name { start: to_u32(at)?, len: to_u32(text.len())?, in_arena: true }
        } else {
            Name { start: to_u32(start + 1)?, len: to_u32(self.pos - start - 2)?, in_arena: false }
        };
        self.names.push(name);
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(JsonError::Syntax);
        }
        self.pos += 1;
        let text = name_bytes(self.bytes, &self.arena, name);
        let mask = self.child_mask(parent, step, |s| matches!(s, Step::Key(k) if k.as_bytes() == text));
        let mut hit = 0;
        for_each_bit(parent, |i| {
            if let Some((k, Step::Deep(deep))) =
                self.paths.get(i).and_then(|p| p.len().checked_sub(1).map(|k| (k, p[k])))
            {
                if k <= step && deep.as_bytes() == text {
                    hit |= 1 << i;
                }
            }
        });
        Ok((mask, depth, hit))
    }

    /// The paths that still match a child at `step` (its depth less one): a
    /// step that `fits`, or a deep path whose prefix matched higher up.
    fn child_mask(&self, parent: u64, step: usize, fits: impl Fn(&Step) -> bool) -> u64 {
        let mut mask = 0;
        for_each_bit(parent, |i| {
            let Some(path) = self.paths.get(i) else { return };
            let deep = matches!(path.last(), Some(Step::Deep(_))) && step + 1 >= path.len();
            if deep || path.get(step).is_some_and(&fits) {
                mask |= 1 << i;
            }
        });
        mask
    }

    /// Closes the innermost container (its closing bracket already read):
    /// an object's names are checked for repeats and dropped.
    fn close(&mut self, stack: &mut Vec<Frame>) -> Result<Done, JsonError> {
        let Some(frame) = stack.pop() else {
            return Err(JsonError::Syntax);
        };
        if frame.object {
            let (bytes, arena) = (self.bytes, &self.arena);
            let names = &mut self.names[frame.names_from..];
            let mut comparisons = 0u64;
            names.sort_unstable_by(|a, b| {
                comparisons += 1;
                name_bytes(bytes, arena, *a).cmp(name_bytes(bytes, arena, *b))
            });
            self.comparisons += comparisons;
            for pair in names.windows(2) {
                self.comparisons += 1;
                if name_bytes(bytes, arena, pair[0]).cmp(name_bytes(bytes, arena, pair[1])) == Ordering::Equal {
                    let name = String::from_utf8_lossy(name_bytes(bytes, arena, pair[0])).into_owned();
                    return Err(JsonError::Duplicate(name));
                }
            }
            self.names.truncate(frame.names_from);
            self.arena.truncate(frame.arena_from);
        }
        Ok(Done {
            kind: if frame.object { Kind::Object } else { Kind::Array },
            start: frame.start,
            mask: frame.mask,
            hit: frame.hit,
            depth: frame.depth,
            has_members: frame.members > 0,
        })
    }

    /// Notes a finished value under every path it completes.
    fn record(&mut self, done: &Done) {
        let paths = self.paths;
        let mut complete = done.hit;
        for_each_bit(done.mask, |i| {
            let exact = paths.get(i).is_some_and(|p| p.len() == done.depth && !matches!(p.last(), Some(Step::Deep(_))));
            if exact {
                complete |= 1 << i;
            }
        });
        for_each_bit(complete, |i| {
            self.found.push(Found {
                path: i,
                kind: done.kind,
                start: done.start,
                end: self.pos,
                has_members: done.has_members,
            });
        });
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<Kind, JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(kind)
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - from
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, and finite
    /// as a double.
    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        self.number_grammar()?;
        let text = &self.bytes[start..self.pos];
        // Only an exponent or some 300 digits can reach infinity.
        if text.len() > 300 || text.iter().any(|b| matches!(b, b'e' | b'E')) {
            let finite = std::str::from_utf8(text).ok().and_then(|t| t.parse::<f64>().ok()).is_some_and(f64::is_finite);
            if !finite {
                return Err(JsonError::NumberOutOfRange);
            }
        }
        Ok(())
    }

    fn number_grammar(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        Ok(())
    }

    /// A string, its quotes included. Returns whether it holds escapes.
    /// Escapes are checked here (lone surrogates refused), so a later
    /// [`unescape`] of the same bytes cannot fail.
    fn string(&mut self) -> Result<bool, JsonError> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            // Most of a body is plain text: skip it eight bytes at a time.
            self.skip_plain();
            match self.peek() {
                None => return Err(JsonError::Syntax),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                        Some(b'u') => {
                            self.pos += 1;
                            let unit = self.hex4()?;
                            if (0xd800..0xdc00).contains(&unit) {
                                // A high surrogate must be followed by a low one.
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(JsonError::Encoding);
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(JsonError::Encoding);
                                }
                            } else if (0xdc00..0xe000).contains(&unit) {
                                return Err(JsonError::Encoding);
                            }
                        }
                        _ => return Err(JsonError::Syntax),
                    }
                }
                Some(0x00..=0x1f) => return Err(JsonError::Syntax),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Advances over bytes that need no attention inside a string (not `"`,
    /// not `\\`, not a control character), a word at a time.
    fn skip_plain(&mut self) {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            // A byte below 0x20 (with a clear high bit), a quote, a backslash.
            let control = v.wrapping_sub(LO * 0x20) & !v & HI;
            if control | has_zero(v ^ (LO * u64::from(b'"'))) | has_zero(v ^ (LO * u64::from(b'\\'))) != 0 {
                return;
            }
            self.pos += 8;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(JsonError::Syntax)?;
        let mut unit = 0u32;
        for d in digits {
            unit = unit * 16 + char::from(*d).to_digit(16).ok_or(JsonError::Syntax)?;
        }
        self.pos += 4;
        Ok(unit)
    }
}

struct Done {
    kind: Kind,
    start: usize,
    mask: u64,
    hit: u64,
    depth: usize,
    has_members: bool,
}

fn for_each_bit(mut bits: u64, mut f: impl FnMut(usize)) {
    while bits != 0 {
        f(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

fn to_u32(n: usize) -> Result<u32, JsonError> {
    u32::try_from(n).map_err(|_| JsonError::Syntax)
}

fn name_bytes<'b>(bytes: &'b [u8], arena: &'b [u8], name: Name) -> &'b [u8] {
    let (start, len) = (name.start as usize, name.len as usize);
    let source = if name.in_arena { arena } else { bytes };
    source.get(start..start + len).unwrap_or_default()
}

/// The text of a string's inside (between its quotes), escapes resolved.
pub fn unescape(inner: &[u8]) -> Result<Cow<'_, str>, JsonError> {
    // `memchr`: the runs between escapes are found a vector at a time.
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).map(Cow::Borrowed).map_err(|_| JsonError::Encoding);
    }
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let run = memchr::memchr(b'\\', &inner[i..]).map_or(inner.len(), |n| i + n);
        out.push_str(std::str::from_utf8(&inner[i..run]).map_err(|_| JsonError::Encoding)?);
        i = run;
        if i >= inner.len() {
            break;
        }
        let esc = inner.get(i + 1).copied().ok_or(JsonError::Syntax)?;
        i += 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex(inner.get(i..i + 4))?;
                i += 4;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    if inner.get(i..i + 2) != Some(b"\\u") {
                        return Err(JsonError::Encoding);
                    }
                    let lo = hex(inner.get(i + 2..i + 6))?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return Err(JsonError::Encoding);
                    }
                    i += 6;
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or(JsonError::Encoding)?
            }
            _ => return Err(JsonError::Syntax),
        };
        out.push(c);
    }
    Ok(Cow::Owned(out))
}

fn hex(digits: Option<&[u8]>) -> Result<u32, JsonError> {
    let digits = digits.ok_or(JsonError::Syntax)?;
    digits.iter().try_fold(0u32, |acc, d| char::from(*d).to_digit(16).map(|v| acc * 16 + v)).ok_or(JsonError::Syntax)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
