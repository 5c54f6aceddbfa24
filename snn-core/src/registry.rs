//! What typetag has registered, read back for `snn list` and error messages.
//!
//! typetag keeps its registry private, but its deserializer reports the full
//! list of names when it meets an unknown one, in serde's fixed wording
//! ("unknown variant `x`, expected one of `a`, `b`"). Reading the list that way
//! means a plugin crate needs nothing but its `#[typetag::serde]` attribute to
//! show up here.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A name no plugin may use, to provoke the "expected one of" message.
const PROBE: &str = "\u{1}snn-registry-probe";

/// Registered `type` names of a typetag trait object, sorted.
pub fn names<T: ?Sized>() -> Vec<String>
where
    Box<T>: DeserializeOwned,
{
    let probe = serde_json::json!({ "type": PROBE });
    match serde_json::from_value::<Box<T>>(probe) {
        Ok(_) => Vec::new(),
        Err(e) => parse_expected(&e.to_string()),
    }
}

/// Extracts the back-quoted names after "expected" in a serde message.
pub fn parse_expected(msg: &str) -> Vec<String> {
    let Some(pos) = msg.find("expected") else {
        return Vec::new();
    };
    let mut out: Vec<String> = msg[pos..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The spec of `name` with every field at its default, as TOML, or the
/// deserializer's complaint when the spec has required fields.
pub fn defaults<T: ?Sized>(name: &str) -> Result<String, String>
where
    Box<T>: DeserializeOwned + Serialize,
{
    let probe = serde_json::json!({ "type": name });
    let spec: Box<T> = serde_json::from_value(probe).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    toml::to_string(&value).map_err(|e| e.to_string())
}
