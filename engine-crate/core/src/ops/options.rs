//! Strict parsing of an op's JSON options: every value is checked and any
//! unknown key is rejected with a message naming `op.key`.

use serde_json::{Map, Value};

use crate::error::{invalid, EngineError};

pub struct Options {
    op: &'static str,
    map: Map<String, Value>,
    known: Vec<&'static str>,
}

impl Options {
    pub fn parse(op: &'static str, text: &str) -> Result<Self, EngineError> {
        let text = text.trim();
        let map = if text.is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(_) => return invalid(format!("{op}: options must be a JSON object")),
                Err(e) => return invalid(format!("{op}: options are not valid JSON: {e}")),
            }
        };
        Ok(Options { op, map, known: Vec::new() })
    }

    fn name(&self, key: &str) -> String {
        format!("{}.{}", self.op, key)
    }

    fn take(&mut self, key: &'static str) -> Option<&Value> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether `key` is given a value other than null.
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// The op whose options these are, for messages naming an option.
    pub fn op(&self) -> &'static str {
        self.op
    }

    pub fn string(&mut self, key: &'static str, default: Option<&str>) -> Result<String, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => invalid(format!("{name}: expected a string, got {other}")),
            None => match default {
                Some(d) => Ok(d.to_string()),
                None => invalid(format!("{name}: required option is missing")),
            },
        }
    }

    pub fn boolean(&mut self, key: &'static str, default: bool) -> Result<bool, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => invalid(format!("{name}: expected true or false, got {other}")),
            None => Ok(default),
        }
    }

    pub fn uint(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> Result<u64, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => invalid(format!("{name}: expected an integer in {min}..={max}, got {v}")),
            },
            None => Ok(default),
        }
    }

    /// A single-byte string such as "," or "\t".
    pub fn byte(&mut self, key: &'static str, default: u8) -> Result<u8, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            Some(Value::String(s)) if s.len() == 1 => Ok(s.as_bytes()[0]),
            Some(other) => invalid(format!("{name}: expected a single one-byte character, got {other}")),
            None => Ok(default),
        }
    }

    /// Whether the value is the string "auto" (a value to be worked out).
    pub fn is_auto(&mut self, key: &'static str) -> bool {
        matches!(self.take(key), Some(Value::String(s)) if s == "auto")
    }

    /// A single-byte string, or none when the string is empty.
    pub fn optional_byte(&mut self, key: &'static str, default: Option<u8>) -> Result<Option<u8>, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            None => Ok(default),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.len() == 1 => Ok(Some(s.as_bytes()[0])),
            Some(other) => invalid(format!("{name}: expected a single one-byte character, or \"\" for none, got {other}")),
        }
    }

    pub fn floats(&mut self, key: &'static str, default: &[f64], min: f64, max: f64) -> Result<Vec<f64>, EngineError> {
        let name = self.name(key);
        match self.take(key) {
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    match it.as_f64() {
                        Some(x) if x >= min && x <= max => out.push(x),
                        _ => return invalid(format!("{name}: each value must be a number in [{min}, {max}], got {it}")),
                    }
                }
                Ok(out)
            }
            Some(other) => invalid(format!("{name}: expected a list of numbers, got {other}")),
            None => Ok(default.to_vec()),
        }
    }

    /// Rejects keys that were never asked for.
    pub fn finish(self) -> Result<(), EngineError> {
        let mut unknown: Vec<&String> = self.map.keys().filter(|k| !self.known.contains(&k.as_str())).collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            let mut known = self.known.clone();
            known.sort();
            let expected = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return invalid(format!("{}.{}: unknown option (expected: {})", self.op, k, expected));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let mut o = Options::parse("stats", r#"{"header": true, "bogus": 1}"#).unwrap();
        assert!(o.boolean("header", false).unwrap());
        let e = o.finish().unwrap_err().to_string();
        assert!(e.contains("stats.bogus"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let mut o = Options::parse("stats", r#"{"delimiter": ",,"}"#).unwrap();
        assert!(o.byte("delimiter", b',').unwrap_err().to_string().contains("stats.delimiter"));
        let mut o = Options::parse("stats", r#"{"quantiles": [0.5, 2]}"#).unwrap();
        assert!(o.floats("quantiles", &[], 0.0, 1.0).unwrap_err().to_string().contains("stats.quantiles"));
    }
}
