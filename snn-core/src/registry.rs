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
    toml::to_string(&tidy_floats(value)).map_err(|e| e.to_string())
}

/// Rewrites numbers that are exactly an `f32` with that `f32`'s shortest
/// decimal form, so an `f32` field of 0.2 prints as `0.2`, not as the
/// `0.20000000298023224` a detour through `f64` produces.
pub fn tidy_floats(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            let f = x as f32;
            if f as f64 == x {
                let short: f64 = format!("{f}").parse().unwrap_or(x);
                serde_json::Number::from_f64(short).map_or(Value::Number(n), Value::Number)
            } else {
                Value::Number(n)
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(tidy_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, tidy_floats(v))).collect())
        }
        other => other,
    }
}
