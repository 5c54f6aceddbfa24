//! `.nir` files: HDF5 in the layout Python `nir` 1.0.8 writes (`version`
//! at the root; the graph in group `node` with its `type`, `nodes` (one
//! group per node: a `type` string and one dataset per field), `edges`
//! (an `[n, 2]` array of names) and optional `metadata`). Weights are
//! written as f32, neuron constants as f64 (so that a reader's
//! `1 - dt / tau` recovers the f32 decay exactly), integers as i64.
//! Any float width is read; a missing or ill-typed field is one error
//! naming the file, the node and the field.

use snn_core::nir::Graph;
use snn_core::{Error, Result};
use std::path::Path;

/// The NIR version written to the file's `version` dataset.
pub const NIR_VERSION: &str = "1.0.8";

#[cfg(feature = "hdf5")]
pub use with_hdf5::{read, write};

#[cfg(not(feature = "hdf5"))]
fn unavailable(path: &Path) -> Error {
    Error::invalid(
        "NIR file",
        format!(
            "{}: this snn was built without HDF5; install it (scripts/install-hdf5.sh) and build with --features nir",
            path.display()
        ),
    )
}

/// Reads a NIR graph.
#[cfg(not(feature = "hdf5"))]
pub fn read(path: &Path) -> Result<Graph> {
    Err(unavailable(path))
}

/// Writes a NIR graph.
#[cfg(not(feature = "hdf5"))]
pub fn write(path: &Path, _graph: &Graph) -> Result<()> {
    Err(unavailable(path))
}

#[cfg(feature = "hdf5")]
mod with_hdf5 {
    use super::*;
    use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
    use hdf5::{Dataset, Group};
    use snn_core::nir::{Array, Meta, Node};

    fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
        Error::data(path, format!("{what}: {e}"))
    }

    /// Writes `graph` to `path` (replacing it), through a temporary file
    /// so that a failed write leaves no half file.
    pub fn write(path: &Path, graph: &Graph) -> Result<()> {
        let tmp = path.with_extension("nir.partial");
        let result = write_file(&tmp, graph).map_err(|e| bad(path, "writing", e));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    fn write_file(path: &Path, graph: &Graph) -> hdf5::Result<()> {
        let file = hdf5::File::create(path)?;
        text(&file, "version", NIR_VERSION)?;
        let root = file.create_group("node")?;
        text(&root, "type", "NIRGraph")?;
        let nodes = root.create_group("nodes")?;
        for (name, node) in &graph.nodes {
            write_node(&nodes.create_group(name)?, node)?;
        }
        let edges: Vec<VarLenUnicode> = graph
            .edges
            .iter()
            .flat_map(|(a, b)| [a, b])
            .map(|s| s.parse().unwrap_or_default())
            .collect();
        root.new_dataset::<VarLenUnicode>()
            .shape([graph.edges.len(), 2])
            .create("edges")?
            .write_raw(&edges)?;
        if !graph.metadata.is_empty() {
            let meta = root.create_group("metadata")?;
            for (k, v) in &graph.metadata {
                match v {
                    Meta::Int(i) => meta
                        .new_dataset::<i64>()
                        .create(k.as_str())?
                        .write_scalar(i)?,
                    Meta::Float(f) => meta
                        .new_dataset::<f64>()
                        .create(k.as_str())?
                        .write_scalar(f)?,
                    Meta::Text(t) => text(&meta, k, t)?,
                }
            }
        }
        Ok(())
    }

    fn text(g: &Group, name: &str, value: &str) -> hdf5::Result<()> {
        let v: VarLenUnicode = value
            .parse()
            .map_err(|e| hdf5::Error::from(format!("{e}")))?;
        g.new_dataset::<VarLenUnicode>()
            .create(name)?
            .write_scalar(&v)
    }

    fn floats<T: hdf5::H5Type + Copy>(
        g: &Group,
        name: &str,
        a: &Array,
        cast: fn(f64) -> T,
    ) -> hdf5::Result<()> {
        let data: Vec<T> = a.data.iter().map(|v| cast(*v)).collect();
        g.new_dataset::<T>()
            .shape(a.shape.clone())
            .create(name)?
            .write_raw(&data)
    }

    fn ints(g: &Group, name: &str, v: &[usize]) -> hdf5::Result<()> {
        let data: Vec<i64> = v.iter().map(|x| *x as i64).collect();
        g.new_dataset::<i64>()
            .shape([data.len()])
            .create(name)?
            .write_raw(&data)
    }

    fn int(g: &Group, name: &str, v: i64) -> hdf5::Result<()> {
        g.new_dataset::<i64>().create(name)?.write_scalar(&v)
    }

    fn write_node(g: &Group, node: &Node) -> hdf5::Result<()> {
        text(g, "type", node.kind())?;
        let f32s = |name: &str, a: &Array| floats(g, name, a, |v| v as f32);
        let f64s = |name: &str, a: &Array| floats(g, name, a, |v| v);
        match node {
            Node::Input { shape } | Node::Output { shape } => ints(g, "shape", shape),
            Node::Conv2d {
                input_shape,
                weight,
                bias,
                stride,
                padding,
                dilation,
                groups,
            } => {
                ints(g, "input_shape", input_shape)?;
                f32s("weight", weight)?;
                f32s("bias", bias)?;
                ints(g, "stride", stride)?;
                ints(g, "padding", padding)?;
                ints(g, "dilation", dilation)?;
                int(g, "groups", *groups as i64)
            }
            Node::Affine { weight, bias } => {
                f32s("weight", weight)?;
                f32s("bias", bias)
            }
            Node::Linear { weight } => f32s("weight", weight),
            Node::Flatten {
                start_dim,
                end_dim,
                input_type,
            } => {
                int(g, "start_dim", *start_dim)?;
                int(g, "end_dim", *end_dim)?;
                ints(g, "input_type", input_type)
            }
            Node::Lif {
                tau,
                r,
                v_leak,
                v_threshold,
                v_reset,
            } => {
                for (name, a) in [
                    ("tau", tau),
                    ("r", r),
                    ("v_leak", v_leak),
                    ("v_threshold", v_threshold),
                    ("v_reset", v_reset),
                ] {
                    f64s(name, a)?;
                }
                Ok(())
            }
            Node::If {
                r,
                v_threshold,
                v_reset,
            } => {
                for (name, a) in [("r", r), ("v_threshold", v_threshold), ("v_reset", v_reset)] {
                    f64s(name, a)?;
                }
                Ok(())
            }
            Node::SumPool2d {
                kernel_size,
                stride,
                padding,
            }
            | Node::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => {
                ints(g, "kernel_size", kernel_size)?;
                ints(g, "stride", stride)?;
                ints(g, "padding", padding)
            }
            Node::Threshold { threshold } => f64s("threshold", threshold),
        }
    }

    /// Reads the NIR graph in `path`.
    pub fn read(path: &Path) -> Result<Graph> {
        if !path.is_file() {
            return Err(Error::data(path, "no such file"));
        }
        let file = hdf5::File::open(path).map_err(|e| bad(path, "not an HDF5 file", e))?;
        let root = file
            .group("node")
            .map_err(|e| bad(path, "no `node` group (is this a NIR file?)", e))?;
        let r = Reader { path };
        let nodes_group = root
            .group("nodes")
            .map_err(|e| bad(path, "node: no `nodes` group", e))?;
        let mut graph = Graph::default();
        for name in nodes_group
            .member_names()
            .map_err(|e| bad(path, "node/nodes", e))?
        {
            let g = nodes_group
                .group(&name)
                .map_err(|e| bad(path, &format!("node `{name}`"), e))?;
            graph.nodes.insert(name.clone(), r.node(&name, &g)?);
        }
        let edges = r.texts("graph", &root, "edges")?;
        if edges.len() % 2 != 0 {
            return Err(Error::data(
                path,
                "node/edges: expected an [n, 2] array of node names",
            ));
        }
        graph.edges = edges
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        if let Ok(meta) = root.group("metadata") {
            for k in meta.member_names().unwrap_or_default() {
                if let Some(v) = r.meta(&meta, &k) {
                    graph.metadata.insert(k, v);
                }
            }
        }
        Ok(graph)
    }

    struct Reader<'p> {
        path: &'p Path,
    }

    impl Reader<'_> {
        fn err(&self, node: &str, field: &str, msg: impl std::fmt::Display) -> Error {
            Error::data(self.path, format!("node `{node}`, field `{field}`: {msg}"))
        }

        fn dataset(&self, node: &str, g: &Group, field: &str) -> Result<Dataset> {
            g.dataset(field)
                .map_err(|_| self.err(node, field, "missing"))
        }

        fn texts(&self, node: &str, g: &Group, field: &str) -> Result<Vec<String>> {
            let ds = self.dataset(node, g, field)?;
            let kind = ds
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(|e| self.err(node, field, e))?;
            let read = match kind {
                TypeDescriptor::VarLenUnicode => ds
                    .read_raw::<VarLenUnicode>()
                    .map(|v| v.iter().map(|s| s.to_string()).collect()),
                TypeDescriptor::VarLenAscii => ds
                    .read_raw::<VarLenAscii>()
                    .map(|v| v.iter().map(|s| s.to_string()).collect()),
                other => {
                    return Err(self.err(
                        node,
                        field,
                        format!("expected variable-length strings, found {other:?}"),
                    ))
                }
            };
            read.map_err(|e| self.err(node, field, e))
        }

        fn text(&self, node: &str, g: &Group, field: &str) -> Result<String> {
            let mut v = self.texts(node, g, field)?;
            match v.len() {
                1 => Ok(v.remove(0)),
                n => Err(self.err(node, field, format!("expected one string, found {n}"))),
            }
        }

        fn array(&self, node: &str, g: &Group, field: &str) -> Result<Array> {
            let ds = self.dataset(node, g, field)?;
            let data = ds
                .read_raw::<f64>()
                .map_err(|e| self.err(node, field, format!("not a float array: {e}")))?;
            Array::new(ds.shape(), data).map_err(|e| self.err(node, field, e))
        }

        fn ints(&self, node: &str, g: &Group, field: &str) -> Result<Vec<i64>> {
            let ds = self.dataset(node, g, field)?;
            ds.read_raw::<i64>()
                .map_err(|e| self.err(node, field, format!("not integers: {e}")))
        }

        fn sizes(&self, node: &str, g: &Group, field: &str) -> Result<Vec<usize>> {
            self.ints(node, g, field)?
                .into_iter()
                .map(|v| {
                    usize::try_from(v)
                        .map_err(|_| self.err(node, field, format!("{v} is negative")))
                })
                .collect()
        }

        /// A pair such as a stride: two values, or one standing for both.
        fn pair(&self, node: &str, g: &Group, field: &str) -> Result<[usize; 2]> {
            match self.sizes(node, g, field)?[..] {
                [a] => Ok([a, a]),
                [a, b] => Ok([a, b]),
                ref v => {
                    Err(self.err(node, field, format!("expected 2 values, found {}", v.len())))
                }
            }
        }

        fn int(&self, node: &str, g: &Group, field: &str) -> Result<i64> {
            match self.ints(node, g, field)?[..] {
                [v] => Ok(v),
                ref v => Err(self.err(
                    node,
                    field,
                    format!("expected one integer, found {}", v.len()),
                )),
            }
        }

        fn node(&self, name: &str, g: &Group) -> Result<Node> {
            let kind = self.text(name, g, "type")?;
            let a = |f: &str| self.array(name, g, f);
            let p = |f: &str| self.pair(name, g, f);
            // NIR lets v_reset be absent, meaning zeros like the threshold.
            let reset = |th: &Array| {
                if g.link_exists("v_reset") {
                    a("v_reset")
                } else {
                    Ok(Array::filled(&th.shape, 0.0))
                }
            };
            Ok(match kind.as_str() {
                "Input" => Node::Input { shape: self.sizes(name, g, "shape")? },
                "Output" => Node::Output { shape: self.sizes(name, g, "shape")? },
                "Conv2d" => Node::Conv2d {
                    input_shape: p("input_shape")?,
                    weight: a("weight")?,
                    bias: a("bias")?,
                    stride: p("stride")?,
                    padding: p("padding")?,
                    dilation: p("dilation")?,
                    groups: self.int(name, g, "groups")? as usize,
                },
                "Affine" => Node::Affine { weight: a("weight")?, bias: a("bias")? },
                "Linear" => Node::Linear { weight: a("weight")? },
                "Flatten" => Node::Flatten {
                    start_dim: self.int(name, g, "start_dim")?,
                    end_dim: self.int(name, g, "end_dim")?,
                    input_type: if g.link_exists("input_type") { self.sizes(name, g, "input_type")? } else { Vec::new() },
                },
                "LIF" => {
                    let v_threshold = a("v_threshold")?;
                    Node::Lif { tau: a("tau")?, r: a("r")?, v_leak: a("v_leak")?, v_reset: reset(&v_threshold)?, v_threshold }
                }
                "IF" => {
                    let v_threshold = a("v_threshold")?;
                    Node::If { r: a("r")?, v_reset: reset(&v_threshold)?, v_threshold }
                }
                "SumPool2d" => Node::SumPool2d { kernel_size: p("kernel_size")?, stride: p("stride")?, padding: p("padding")? },
                "AvgPool2d" => Node::AvgPool2d { kernel_size: p("kernel_size")?, stride: p("stride")?, padding: p("padding")? },
                "Threshold" => Node::Threshold { threshold: a("threshold")? },
                other => {
                    return Err(self.err(
                        name,
                        "type",
                        format!("`{other}` is not supported; supported: Input, Output, Conv2d, Affine, Linear, Flatten, LIF, IF, SumPool2d, AvgPool2d, Threshold"),
                    ))
                }
            })
        }

        fn meta(&self, g: &Group, key: &str) -> Option<Meta> {
            let ds = g.dataset(key).ok()?;
            match ds.dtype().ok()?.to_descriptor().ok()? {
                TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                    ds.read_scalar::<i64>().ok().map(Meta::Int)
                }
                TypeDescriptor::Float(_) => ds.read_scalar::<f64>().ok().map(Meta::Float),
                _ => self.text("metadata", g, key).ok().map(Meta::Text),
            }
        }
    }
}
