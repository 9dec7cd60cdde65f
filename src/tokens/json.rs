//! A JSON object reader that refuses duplicate member names (RFC 7515 §5.2, RFC 8725 §3.2).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A top-level JSON object whose member names are unique.
#[derive(Debug)]
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with unique member names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some((name, value)) = access.next_entry::<String, Value>()? {
            if map.insert(name, value).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(StrictObject(map))
    }
}

/// Parses `bytes` as a JSON object with unique member names.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes)
        .ok()
        .map(|object| object.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_and_non_objects_are_refused() {
        assert!(parse_object(br#"{"a":1,"b":2}"#).is_some());
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_object(br#"[1]"#).is_none());
        assert!(parse_object(b"{").is_none());
    }
}
