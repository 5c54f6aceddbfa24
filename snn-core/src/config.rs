//! Config files: TOML read with errors that name the file, the line and
//! column, and what is accepted, and `--set key=value` overrides. The
//! settings themselves live beside their users (`snn_train::config`,
//! `snn_data::config`, each plugin's spec).

use crate::{registry, Error, Result};
use std::path::{Path, PathBuf};

/// Applies `key.path=value` overrides (as from `--set`) to config text,
/// value in TOML syntax (`train.lr=5e-4`, `neuron.type="lif"`; bare words
/// are strings), and returns the merged text; `path` names the file in
/// errors.
pub fn apply_sets(text: &str, path: &Path, sets: &[String]) -> Result<String> {
    let err = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg,
    };
    let mut doc: toml::Table = parse_toml(text, path)?;
    for set in sets {
        let (key, raw) = set
            .split_once('=')
            .ok_or_else(|| err(format!("--set `{set}`: expected key=value")))?;
        let value = parse_value(raw.trim());
        let mut table = &mut doc;
        let parts: Vec<&str> = key.trim().split('.').collect();
        let (last, parents) = parts
            .split_last()
            .ok_or_else(|| err(format!("--set `{set}`: empty key")))?;
        for p in parents {
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| err(format!("--set `{set}`: `{p}` is not a table")))?;
        }
        table.insert(last.to_string(), value);
    }
    toml::to_string(&doc).map_err(|e| err(e.to_string()))
}

fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Deserialises TOML, turning parse and schema errors into one message with
/// the file, line and column.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        // typetag reports an unknown `type` at the end of its table; point at
        // the `type = "..."` line itself when it can be found.
        let type_line = e
            .message()
            .strip_prefix("unknown variant `")
            .and_then(|rest| rest.split('`').next())
            .and_then(|name| {
                text.lines().position(|l| {
                    let l = l.trim_start();
                    l.starts_with("type") && l.contains(&format!("\"{name}\""))
                })
            });
        let loc = match (type_line, e.span()) {
            (Some(i), _) => format!(":{}:1", i + 1),
            (None, Some(s)) => {
                let (line, col) = line_col(text, s.start);
                format!(":{line}:{col}")
            }
            (None, None) => String::new(),
        };
        // Name the field: the text of the line the error points at.
        let at = e
            .span()
            .and_then(|sp| {
                text[..sp.start.min(text.len())]
                    .rsplit('\n')
                    .next()
                    .map(|head| (head, sp))
            })
            .map(|(head, sp)| {
                let tail = text[sp.start.min(text.len())..]
                    .split('\n')
                    .next()
                    .unwrap_or("");
                format!("{head}{tail}").trim().to_string()
            })
            .filter(|l| !l.is_empty() && type_line.is_none())
            .map(|l| format!(" (at `{l}`)"))
            .unwrap_or_default();
        Error::Config {
            path: PathBuf::from(format!("{}{loc}", path.display())),
            msg: format!("{}{at}", explain(e.message())),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Rewords serde's messages for config authors.
fn explain(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let known = registry::parse_expected(msg);
        if msg.contains("expected one of") || msg.contains("expected `") {
            return format!(
                "unknown type `{name}`; registered: {}",
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    msg.to_string()
}
