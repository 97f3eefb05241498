//! Strict JSON objects: the one parser for request bodies, JWT headers and
//! JWT claims.
//!
//! A JSON object with two members of the same name is ambiguous: we might
//! read the first, the provider the last. `serde_json::Value` keeps the last
//! silently, so the top level is read member by member here and a repeated
//! name — after unescaping, so `"\u006dodel"` is `"model"` — is refused.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// A JSON object's members in document order, each name appearing once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object {
    members: Vec<(String, Value)>,
}

/// Why a document is not one strict JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// Not valid JSON (syntax, encoding, trailing data, lone surrogate, …).
    Syntax,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The named member appears more than once.
    Duplicate(String),
}

impl Object {
    /// Parses `bytes` as exactly one JSON object with unique member names.
    pub fn parse(bytes: &[u8]) -> Result<Self, ObjectError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = de.deserialize_any(ObjectVisitor);
        let object = match parsed {
            Ok(Ok(object)) => object,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ObjectError::Syntax),
        };
        de.end().map_err(|_| ObjectError::Syntax)?;
        Ok(object)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| k.as_str())
    }

    /// Replaces the member's value, or appends the member.
    pub fn set(&mut self, name: &str, value: Value) {
        match self.members.iter_mut().find(|(k, _)| k == name) {
            Some(member) => member.1 = value,
            None => self.members.push((name.to_string(), value)),
        }
    }

    /// Serializes the members in their original order.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.members.len());
        out.push(b'{');
        for (i, (name, value)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing a String or a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, value);
        }
        out.push(b'}');
        out
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    /// The outer `Result` carries serde's syntax errors, the inner our own.
    type Value = Result<Object, ObjectError>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            if members.iter().any(|(k, _)| *k == name) {
                // Keep reading so a syntax error later still wins: it is the
                // more basic fault.
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                return Ok(Err(ObjectError::Duplicate(name)));
            }
            members.push((name, value));
        }
        Ok(Ok(Object { members }))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(ObjectError::NotAnObject))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Err(ObjectError::NotAnObject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_in_order() {
        let o = Object::parse(br#" {"b":1,"a":{"x":[1,2]}} "#).unwrap();
        assert_eq!(o.names().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(o.to_vec(), br#"{"b":1,"a":{"x":[1,2]}}"#.to_vec());
    }

    #[test]
    fn refuses_duplicates_even_when_escaped() {
        for doc in [
            r#"{"model":"a","model":"b"}"#,
            r#"{"model":"a","\u006dodel":"b"}"#,
            r#"{"\u006d\u006f\u0064\u0065\u006c":"a","model":"b"}"#,
        ] {
            assert_eq!(Object::parse(doc.as_bytes()), Err(ObjectError::Duplicate("model".into())), "{doc}");
        }
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for doc in ["", "[]", "1", "\"x\"", "null", "true", "{} {}", "{", "\u{feff}{}", r#"{"a":"\ud800"}"#] {
            let e = Object::parse(doc.as_bytes()).unwrap_err();
            assert!(matches!(e, ObjectError::Syntax | ObjectError::NotAnObject), "{doc:?} → {e:?}");
        }
        assert_eq!(Object::parse(b"[1]"), Err(ObjectError::NotAnObject));
        assert_eq!(Object::parse(b"{\"a\":1}x"), Err(ObjectError::Syntax));
        assert_eq!(Object::parse(&[b'{', 0xff, b'}']), Err(ObjectError::Syntax));
    }

    #[test]
    fn a_syntax_error_after_a_duplicate_is_still_a_syntax_error() {
        assert_eq!(Object::parse(br#"{"a":1,"a":2,"#), Err(ObjectError::Syntax));
    }

    #[test]
    fn set_replaces_or_appends() {
        let mut o = Object::parse(br#"{"a":1}"#).unwrap();
        o.set("a", Value::from(2));
        o.set("b", Value::from(3));
        assert_eq!(o.to_vec(), br#"{"a":2,"b":3}"#.to_vec());
    }
}
