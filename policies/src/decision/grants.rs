//! What a rule grants at an MCP server (docs/mcp.md): tools, their
//! argument constraints, resources, prompts and other methods, each as
//! patterns, and how each matches.

use crate::identity::spiffe::ModelPattern;

/// A rule's MCP members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McpGrants {
    /// `tools`: tool names (`*` any run of characters).
    pub tools: Vec<ModelPattern>,
    /// `arguments`: constraints on the arguments of the tools they name.
    pub arguments: Vec<ArgumentConstraint>,
    /// `resources`: resource URIs.
    pub resources: Vec<PathGlob>,
    /// `prompts`: prompt names (`*` any run of characters).
    pub prompts: Vec<ModelPattern>,
    /// `mcp`: every other method and notification.
    pub methods: Vec<MethodPattern>,
}

impl McpGrants {
    /// Whether the rule grants anything at an MCP server.
    pub fn any(&self) -> bool {
        !self.tools.is_empty() || !self.resources.is_empty() || !self.prompts.is_empty() || !self.methods.is_empty()
    }
}

/// A tool's argument that must be a string matching one of `allowed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgumentConstraint {
    pub tool: ModelPattern,
    pub argument: String,
    pub allowed: Vec<PathGlob>,
}

/// Longest pattern, and longest value a [`PathGlob`] is matched against.
pub const MAX_PATTERN: usize = 256;
pub const MAX_MATCHED_VALUE: usize = 4096;

/// A pattern over `/`-separated text: `*` matches a run of one or more
/// characters but `/`, `**` a run of one or more of any; everything else
/// itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `*`
    Segment,
    /// `**`
    Any,
}

impl PathGlob {
    pub fn parse(s: &str) -> Result<PathGlob, String> {
        if s.is_empty() {
            return Err("a pattern cannot be empty".into());
        }
        if s.len() > MAX_PATTERN {
            return Err(format!("a pattern has at most {MAX_PATTERN} bytes"));
        }
        if s.contains("***") {
            return Err("`***` is no pattern: `*` is one segment's run, `**` any run".into());
        }
        if s.bytes().any(|b| b.is_ascii_control()) {
            return Err("a pattern holds no control characters".into());
        }
        Ok(PathGlob { text: s.to_string() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn tokens(&self) -> Vec<Token> {
        let b = self.text.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'*' {
                if b.get(i + 1) == Some(&b'*') {
                    out.push(Token::Any);
                    i += 2;
                } else {
                    out.push(Token::Segment);
                    i += 1;
                }
            } else {
                out.push(Token::Byte(b[i]));
                i += 1;
            }
        }
        out
    }

    /// Whether `value` matches: one pass over the pattern's tokens, each
    /// over the value's positions (values longer than
    /// [`MAX_MATCHED_VALUE`] never match).
    pub fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        if v.len() > MAX_MATCHED_VALUE {
            return false;
        }
        // reach[i]: the tokens so far can match exactly v[..i].
        let mut reach = vec![false; v.len() + 1];
        reach[0] = true;
        for token in self.tokens() {
            let mut next = vec![false; v.len() + 1];
            match token {
                Token::Byte(c) => {
                    for i in 0..v.len() {
                        next[i + 1] = reach[i] && v[i] == c;
                    }
                }
                Token::Segment | Token::Any => {
                    let mut open = false;
                    // A star takes one character at least.
                    for i in 0..=v.len() {
                        next[i] = open;
                        open |= reach[i];
                        if token == Token::Segment && v.get(i) == Some(&b'/') {
                            open = false;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[v.len()]
    }

    /// Matching as a lenient server might read a name: ignoring ASCII case
    /// and surrounding white space (deny rules).
    pub fn matches_loosely(&self, value: &str) -> bool {
        PathGlob { text: self.text.to_ascii_lowercase() }.matches(&value.trim().to_ascii_lowercase())
    }
}

/// A method pattern: a method, `prefix/*` (any method below the prefix),
/// or `*` (any method the rules do not decide by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodPattern {
    text: String,
}

impl MethodPattern {
    pub fn parse(s: &str) -> Result<MethodPattern, String> {
        let body = s.strip_suffix("/*").unwrap_or(s);
        let well_formed = s == "*"
            || (!body.is_empty()
                && body.split('/').all(|seg| {
                    !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                }));
        if !well_formed {
            return Err("a method (`tools/list`), a prefix (`notifications/*`) or `*`".into());
        }
        Ok(MethodPattern { text: s.to_string() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, method: &str) -> bool {
        if self.text == "*" {
            return true;
        }
        match self.text.strip_suffix("/*") {
            Some(prefix) => method.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
            None => self.text == method,
        }
    }

    /// Ignoring ASCII case and surrounding white space (deny rules).
    pub fn matches_loosely(&self, method: &str) -> bool {
        MethodPattern { text: self.text.to_ascii_lowercase() }.matches(&method.trim().to_ascii_lowercase())
    }
}

/// Whether a constrained argument's value is one a server reads as written:
/// no control character, `\`, `%` or `..` path segment, which a server
/// could read as another path.
pub fn plain_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() || c == '\\' || c == '%') && !value.split('/').any(|s| s == "..")
}

#[cfg(test)]
#[path = "grants_tests.rs"]
mod tests;
