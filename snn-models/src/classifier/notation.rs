//! The paper's Table 8 layer notation, parsed:
//!
//! ```text
//! {c128k3s1-BN-ALIF-MPk2s2}*2-DP-FC2048-ALIF-DP-FC100-ALIF-APk10s10
//! ```
//!
//! - `c<out>k<k>s<s>[p<p>]`: conv, padding `k/2` unless given;
//! - `BN`: batch norm; `DP`: dropout (shared mask over time);
//! - `SN`, `LIF`, `PLIF`, `ALIF`, `IF`: a spiking layer of the *configured*
//!   neuron (the `[neuron]` table decides its type; the marker only reads well);
//! - `MPk<k>s<s>`, `APk<k>s<s>`: max / average pool (window = stride);
//!   `AP` after a fully connected layer is the voting layer;
//! - `FC<n>`: fully connected; `{...}*n`: repeat a group.

use snn_core::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Atom {
    Conv {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    BatchNorm,
    Spike,
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    Dropout,
    Fc {
        out: usize,
    },
}

const NEURON_MARKERS: [&str; 5] = ["SN", "LIF", "PLIF", "ALIF", "IF"];

/// Parses and expands repetitions.
pub fn parse(text: &str) -> Result<Vec<Atom>> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let atoms = parse_seq(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(err(text, pos, "unexpected character"));
    }
    if atoms.is_empty() {
        return Err(Error::invalid("model.layers", "no layers given"));
    }
    Ok(atoms)
}

fn err(text: &str, pos: usize, what: &str) -> Error {
    let at: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .skip(pos)
        .take(12)
        .collect();
    Error::invalid(
        "model.layers",
        format!(
            "{what} at position {} (near `{at}`); expected items like c128k3s1, BN, ALIF, MPk2s2, APk10s10, DP, FC2048 joined by `-`, and groups {{...}}*n",
            pos + 1
        ),
    )
}

fn parse_seq(c: &[char], pos: &mut usize) -> Result<Vec<Atom>> {
    let text: String = c.iter().collect();
    let mut out = Vec::new();
    loop {
        if *pos >= c.len() || c[*pos] == '}' {
            return Ok(out);
        }
        if c[*pos] == '{' {
            *pos += 1;
            let inner = parse_seq(c, pos)?;
            if *pos >= c.len() || c[*pos] != '}' {
                return Err(err(&text, *pos, "missing `}`"));
            }
            *pos += 1;
            if *pos >= c.len() || c[*pos] != '*' {
                return Err(err(&text, *pos, "a group needs `*n` after `}`"));
            }
            *pos += 1;
            let n = number(c, pos).ok_or_else(|| err(&text, *pos, "repeat count"))?;
            for _ in 0..n {
                out.extend_from_slice(&inner);
            }
        } else {
            let start = *pos;
            while *pos < c.len() && !matches!(c[*pos], '-' | '{' | '}') {
                *pos += 1;
            }
            let word: String = c[start..*pos].iter().collect();
            out.push(
                atom(&word).ok_or_else(|| err(&text, start, &format!("unknown layer `{word}`")))?,
            );
        }
        if *pos < c.len() && c[*pos] == '-' {
            *pos += 1;
        } else if *pos < c.len() && c[*pos] != '}' {
            return Err(err(&text, *pos, "expected `-`"));
        }
    }
}

fn number(c: &[char], pos: &mut usize) -> Option<usize> {
    let start = *pos;
    while *pos < c.len() && c[*pos].is_ascii_digit() {
        *pos += 1;
    }
    c[start..*pos].iter().collect::<String>().parse().ok()
}

/// Reads `<prefix><n>` followed by keyed numbers such as `k3s1`.
fn keyed(word: &str, prefix: &str, keys: &[char]) -> Option<Vec<Option<usize>>> {
    let rest = word.strip_prefix(prefix)?;
    let c: Vec<char> = rest.chars().collect();
    let mut pos = 0;
    let mut vals = vec![None; keys.len() + 1];
    if prefix != "MP" && prefix != "AP" {
        vals[0] = Some(number(&c, &mut pos)?);
    }
    while pos < c.len() {
        let k = keys.iter().position(|k| *k == c[pos])?;
        pos += 1;
        vals[k + 1] = Some(number(&c, &mut pos)?);
    }
    Some(vals)
}

fn atom(word: &str) -> Option<Atom> {
    let upper = word.to_ascii_uppercase();
    if NEURON_MARKERS.contains(&upper.as_str()) {
        return Some(Atom::Spike);
    }
    match upper.as_str() {
        "BN" => return Some(Atom::BatchNorm),
        "DP" => return Some(Atom::Dropout),
        _ => {}
    }
    if let Some(v) = keyed(&upper, "FC", &[]) {
        return Some(Atom::Fc { out: v[0]? });
    }
    for (prefix, max) in [("MP", true), ("AP", false)] {
        if let Some(v) = keyed(&upper, prefix, &['K', 'S']) {
            let kernel = v[1]?;
            let stride = v[2].unwrap_or(kernel);
            return Some(if max {
                Atom::MaxPool { kernel, stride }
            } else {
                Atom::AvgPool { kernel, stride }
            });
        }
    }
    let v = keyed(&upper, "C", &['K', 'S', 'P'])?;
    let kernel = v[1].unwrap_or(3);
    Some(Atom::Conv {
        out: v[0]?,
        kernel,
        stride: v[2].unwrap_or(1),
        padding: v[3].unwrap_or(kernel / 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_paper_mnist_network() {
        let atoms =
            parse("{c128k3s1-BN-ALIF-MPk2s2}*2-DP-FC2048-ALIF-DP-FC100-ALIF-APk10s10").unwrap();
        let conv = Atom::Conv {
            out: 128,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let mp = Atom::MaxPool {
            kernel: 2,
            stride: 2,
        };
        let expect = vec![
            conv,
            Atom::BatchNorm,
            Atom::Spike,
            mp,
            conv,
            Atom::BatchNorm,
            Atom::Spike,
            mp,
            Atom::Dropout,
            Atom::Fc { out: 2048 },
            Atom::Spike,
            Atom::Dropout,
            Atom::Fc { out: 100 },
            Atom::Spike,
            Atom::AvgPool {
                kernel: 10,
                stride: 10,
            },
        ];
        assert_eq!(atoms, expect);
    }

    #[test]
    fn nested_groups_expand() {
        let atoms = parse("{{c8k3s1-BN-SN}*3-MPk2s2}*2").unwrap();
        assert_eq!(atoms.len(), 2 * (3 * 3 + 1));
    }

    #[test]
    fn bad_notation_names_the_position() {
        for bad in ["c128k3s1-XX", "{c8-BN}", "{c8-BN*2", "FC-BN", ""] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("model.layers"), "{bad}: {e}");
        }
    }
}
