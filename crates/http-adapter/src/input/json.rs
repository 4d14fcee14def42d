//! Strict JSON: a document with a key twice in one object is refused instead of silently keeping
//! the last value (which two parsers of one request may disagree about).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not JSON; where the parser stopped (the text is never quoted: it may hold a secret).
    Syntax { line: usize, column: usize },
    /// An object repeats a key; the path of the repeated key (object keys and array indexes).
    DuplicateKey { path: Vec<String> },
}

/// Parses `bytes` as one JSON value, refusing duplicate keys at any depth.
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let duplicate = RefCell::new(None);
    let path = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue { path: &path, duplicate: &duplicate }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => match duplicate.into_inner() {
            Some(path) => Err(JsonError::DuplicateKey { path }),
            None => Err(JsonError::Syntax { line: error.line(), column: error.column() }),
        },
    }
}

/// Builds a [`Value`], recording the path of the first repeated key in `duplicate`.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    path: &'a RefCell<Vec<String>>,
    duplicate: &'a RefCell<Option<Vec<String>>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.borrow_mut().push(items.len().to_string());
            let item = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match item? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.borrow_mut().push(key.clone());
            if object.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(self.path.borrow().clone());
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self);
            self.path.borrow_mut().pop();
            object.insert(key, value?);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn valid_documents_parse_as_serde_json_does() {
        let text = br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": "\u00e9"}"#;
        assert_eq!(parse_strict(text), Ok(serde_json::from_slice::<Value>(text).unwrap()));
        assert_eq!(parse_strict(b" 7 "), Ok(json!(7)));
    }

    #[test]
    fn duplicate_keys_are_reported_with_their_path() {
        assert_eq!(
            parse_strict(br#"{"name": "a", "name": "b"}"#),
            Err(JsonError::DuplicateKey { path: vec!["name".into()] })
        );
        assert_eq!(
            parse_strict(br#"{"x": [{"k": 1}, {"k": 1, "k": 2}]}"#),
            Err(JsonError::DuplicateKey { path: vec!["x".into(), "1".into(), "k".into()] })
        );
        // The same key in sibling objects is fine.
        assert!(parse_strict(br#"[{"k": 1}, {"k": 2}]"#).is_ok());
    }

    #[test]
    fn syntax_errors_say_where_never_what() {
        assert_eq!(parse_strict(b"{\"name\": "), Err(JsonError::Syntax { line: 1, column: 9 }));
        assert!(matches!(parse_strict(b"{} {}"), Err(JsonError::Syntax { .. })), "trailing data");
        assert!(matches!(parse_strict(b"\"\\ud800\""), Err(JsonError::Syntax { .. })), "lone surrogate");
    }
}
