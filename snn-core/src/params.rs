//! The parameter store: every learned tensor (and every buffer, such as batch
//! norm running statistics) of a model, by name.
//!
//! dfdx's own modules are typed at compile time and cannot hold a layer list
//! read from a config, so layers here register named tensors in a store and
//! look them up at forward time. Tensors are kept flat (`[numel]`) with their
//! logical shape beside them; layers reshape on the tape, so gradients land on
//! the flat tensor's id.

use crate::{device::Tp, fsutil, Dev, Error, Flat, FlatT, Result};
use dfdx::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One named tensor.
#[derive(Clone, Debug)]
pub struct Param {
    pub value: Flat,
    pub shape: Vec<usize>,
    /// Frozen entries (buffers, fixed neuron constants) get no gradient and
    /// are skipped by the optimizers, but are saved and loaded like the rest.
    pub trainable: bool,
    /// Factor on the run's learning rate for this entry (1 unless the model
    /// asks otherwise, as ESVAE's prior layer does: PyTorch's per-group
    /// `lr`). Part of the model's definition, rebuilt from its config, so
    /// not saved.
    pub lr_scale: f32,
}

impl Param {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A safetensors entry read from or written to disk.
pub type RawTensor = (String, Vec<usize>, Vec<f32>);

const FROZEN_KEY: &str = "snn.frozen";
const FORMAT_KEY: &str = "format";
const FORMAT_VALUE: &str = "snn-rs/params";

#[derive(Clone, Debug)]
pub struct ParamStore {
    dev: Dev,
    entries: BTreeMap<String, Param>,
}

impl ParamStore {
    pub fn new(dev: Dev) -> Self {
        Self {
            dev,
            entries: BTreeMap::new(),
        }
    }

    pub fn dev(&self) -> &Dev {
        &self.dev
    }

    /// The store as one layer sees it: entries registered through the scope
    /// are named `name.entry`.
    pub fn scope(&mut self, name: &str) -> Scope<'_> {
        Scope {
            store: self,
            prefix: name.to_string(),
        }
    }

    /// Adds a tensor. Names are unique: registering one twice is a bug in the
    /// model builder and is reported, not silently overwritten.
    pub fn insert(
        &mut self,
        name: &str,
        shape: &[usize],
        data: Vec<f32>,
        trainable: bool,
    ) -> Result<()> {
        let numel: usize = shape.iter().product();
        if data.len() != numel {
            return Err(Error::Param {
                name: name.into(),
                msg: format!("{} values for shape {shape:?}", data.len()),
            });
        }
        if self.entries.contains_key(name) {
            return Err(Error::Param {
                name: name.into(),
                msg: "registered twice".into(),
            });
        }
        let value = self.dev.tensor_from_vec(data, (numel,));
        self.entries.insert(
            name.to_string(),
            Param {
                value,
                shape: shape.to_vec(),
                trainable,
                lr_scale: 1.0,
            },
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<&Param> {
        self.entries.get(name).ok_or_else(|| Error::Param {
            name: name.into(),
            msg: "not in the parameter store".into(),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The tensor on a fresh tape, ready to join a forward pass. Its gradient
    /// is collected under the stored tensor's id.
    pub fn taped(&self, name: &str) -> Result<FlatT> {
        Ok(self.get(name)?.value.retaped::<Tp>())
    }

    /// A host copy of the values.
    pub fn values(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.get(name)?.value.as_vec())
    }

    /// Replaces the values of an existing entry (same shape).
    pub fn set_values(&mut self, name: &str, data: Vec<f32>) -> Result<()> {
        let dev = self.dev.clone();
        let p = self.entries.get_mut(name).ok_or_else(|| Error::Param {
            name: name.into(),
            msg: "not in the parameter store".into(),
        })?;
        if data.len() != p.numel() {
            return Err(Error::Param {
                name: name.into(),
                msg: format!("{} values for shape {:?}", data.len(), p.shape),
            });
        }
        p.value = dev.tensor_from_vec(data, (p.numel(),));
        Ok(())
    }

    /// Sets the factor on the learning rate of an existing trainable entry
    /// (a positive finite number).
    pub fn set_lr_scale(&mut self, name: &str, scale: f32) -> Result<()> {
        let p = self.entries.get_mut(name).ok_or_else(|| Error::Param {
            name: name.into(),
            msg: "not in the parameter store".into(),
        })?;
        if !(p.trainable && scale.is_finite() && scale > 0.0) {
            return Err(Error::Param {
                name: name.into(),
                msg: format!(
                    "learning-rate factor {scale}: needs a trainable entry and a positive finite factor"
                ),
            });
        }
        p.lr_scale = scale;
        Ok(())
    }

    /// Replaces an entry's tensor (used by optimizers; same length).
    pub fn set_tensor(&mut self, name: &str, value: Flat) -> Result<()> {
        let p = self.entries.get_mut(name).ok_or_else(|| Error::Param {
            name: name.into(),
            msg: "not in the parameter store".into(),
        })?;
        if value.shape().0 != p.numel() {
            return Err(Error::Param {
                name: name.into(),
                msg: format!("{} values for shape {:?}", value.shape().0, p.shape),
            });
        }
        p.value = value;
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.entries.iter()
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.entries
            .values()
            .filter(|p| p.trainable)
            .map(Param::numel)
            .sum()
    }

    /// A gradient accumulator with a zeroed slot for every trainable tensor,
    /// so a parameter a forward pass did not touch reads as zero gradient.
    /// Trace the model input with it: `x.traced(store.new_grads()?)`.
    ///
    /// It is "leaky" (keeps intermediate gradients until dropped): dfdx 0.13
    /// offers no public way to name leaf ids, and its backward pass holds all
    /// intermediate gradients until the end anyway, so peak memory is equal.
    pub fn new_grads(&self) -> Result<Gradients<f32, Dev>> {
        let mut grads = Gradients::leaky();
        for p in self.entries.values().filter(|p| p.trainable) {
            grads
                .try_alloc_for(&p.value)
                .map_err(|e| Error::Device(format!("{e:?}")))?;
        }
        Ok(grads)
    }

    /// The gradient of a trainable entry, if the accumulator holds one.
    pub fn grad(&self, grads: &Gradients<f32, Dev>, name: &str) -> Result<Flat> {
        let p = self.get(name)?;
        if !p.trainable {
            return Err(Error::Param {
                name: name.into(),
                msg: "is frozen and has no gradient".into(),
            });
        }
        Ok(grads.get(&p.value))
    }

    /// The first entry (in name order) holding a NaN or an infinity.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, p)| p.value.as_vec().iter().any(|v| !v.is_finite()))
            .map(|(n, _)| n.as_str())
    }

    /// Every entry as host data, in name order.
    pub fn to_raw(&self) -> Vec<RawTensor> {
        self.entries
            .iter()
            .map(|(n, p)| (n.clone(), p.shape.clone(), p.value.as_vec()))
            .collect()
    }

    /// Saves all entries to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let frozen: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, p)| !p.trainable)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut meta = HashMap::new();
        meta.insert(FORMAT_KEY.to_string(), FORMAT_VALUE.to_string());
        meta.insert(
            FROZEN_KEY.to_string(),
            serde_json::to_string(&frozen).unwrap_or_default(),
        );
        write_safetensors(path, &self.to_raw(), meta)
    }

    /// Loads values saved by [`ParamStore::save`] into this store, whose
    /// entries (built from the same config) fix the expected names and shapes.
    /// Any missing, extra or mis-shaped tensor is an error naming it; the
    /// store is only changed when the whole file matches.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let (raw, _) = read_safetensors(path)?;
        let err = |msg: String| Error::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let mut by_name: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
        for (n, s, d) in raw {
            by_name.insert(n, (s, d));
        }
        for (name, p) in &self.entries {
            match by_name.get(name) {
                None => return Err(err(format!("tensor `{name}` is missing"))),
                Some((s, _)) if *s != p.shape => {
                    return Err(err(format!(
                        "tensor `{name}` has shape {s:?}, the model expects {:?}",
                        p.shape
                    )))
                }
                _ => {}
            }
        }
        if let Some(extra) = by_name.keys().find(|n| !self.entries.contains_key(*n)) {
            return Err(err(format!(
                "tensor `{extra}` is not a parameter of this model (was it saved from another config?)"
            )));
        }
        for (name, (_, data)) in by_name {
            self.set_values(&name, data)?;
        }
        Ok(())
    }

    /// Reads a parameter file into a new store, without a model to check it
    /// against (for inspection tools).
    pub fn from_file(dev: Dev, path: &Path) -> Result<Self> {
        let (raw, meta) = read_safetensors(path)?;
        let frozen: Vec<String> = meta
            .get(FROZEN_KEY)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let mut store = Self::new(dev);
        for (n, s, d) in raw {
            let trainable = !frozen.contains(&n);
            store.insert(&n, &s, d, trainable)?;
        }
        Ok(store)
    }
}

/// Writes f32 tensors and string metadata as a safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[RawTensor],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
            .map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor `{name}`: {e:?}"),
            })?;
        views.push((name.clone(), view));
    }
    let out = safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("cannot serialise: {e:?}"),
    })?;
    fsutil::atomic_write(path, &canonical_header(out, path)?)
}

/// A serialised safetensors file with its JSON header's keys sorted (the
/// crate writes metadata in hash-map order, which differs from run to
/// run): identical contents give identical bytes, so a checksum can prove
/// a reproduction. Offsets are explicit in the header, so reordering its
/// entries changes nothing else.
pub fn canonical_header(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    let bad = |msg: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("cannot serialise: {msg}"),
    };
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad("no header"))? as usize;
    let head = bytes.get(8..8 + n).ok_or_else(|| bad("short header"))?;
    // serde_json's map is ordered by key.
    let value: serde_json::Value = serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
    let mut text = serde_json::to_string(&value).map_err(|e| bad(&e.to_string()))?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text.as_bytes());
    out.extend(&bytes[8 + n..]);
    Ok(out)
}

/// Reads every tensor of a safetensors file as f32, with its metadata.
/// Truncated, foreign or non-f32 files are errors naming the file.
pub fn read_safetensors(path: &Path) -> Result<(Vec<RawTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_safetensors(&bytes, path)
}

/// [`read_safetensors`] of bytes already read; `path` names them in errors.
pub fn parse_safetensors(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<RawTensor>, HashMap<String, String>)> {
    let err = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| err(format!("not a readable safetensors file ({e:?})")))?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a readable safetensors file ({e:?})")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(err(format!(
                "tensor `{name}` has dtype {:?}; only F32 is accepted",
                view.dtype()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, view.shape().to_vec(), data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// A layer's view of the store: `store.scope("conv1").insert("weight", ..)`
/// registers `conv1.weight`, and scopes nest (`scope.scope("bn")` is
/// `conv1.bn`), so no layer builds its keys by hand.
pub struct Scope<'s> {
    store: &'s mut ParamStore,
    prefix: String,
}

impl Scope<'_> {
    /// The layer's name, the prefix of its keys.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// The full key of `entry`: `name.entry`.
    pub fn key(&self, entry: &str) -> String {
        format!("{}.{entry}", self.prefix)
    }

    /// Registers `name.entry` ([`ParamStore::insert`]) and returns its key.
    pub fn insert(
        &mut self,
        entry: &str,
        shape: &[usize],
        data: Vec<f32>,
        trainable: bool,
    ) -> Result<String> {
        let key = self.key(entry);
        self.store.insert(&key, shape, data, trainable)?;
        Ok(key)
    }

    /// A scope inside this one: `name.inner`.
    pub fn scope(&mut self, inner: &str) -> Scope<'_> {
        let prefix = self.key(inner);
        Scope {
            store: self.store,
            prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_entries_under_the_layer_and_nest() {
        let mut store = ParamStore::new(crate::device::create(0).expect("device"));
        let mut block = store.scope("encoder.0");
        assert_eq!(
            block.insert("weight", &[2], vec![1.0, 2.0], true).unwrap(),
            "encoder.0.weight"
        );
        let mut bn = block.scope("bn");
        assert_eq!(bn.name(), "encoder.0.bn");
        assert_eq!(
            bn.insert("running_mean", &[1], vec![0.5], false).unwrap(),
            "encoder.0.bn.running_mean"
        );
        // A name registered twice is refused, through a scope too.
        let again = store
            .scope("encoder.0")
            .insert("weight", &[1], vec![0.0], true);
        assert!(again.unwrap_err().to_string().contains("registered twice"));
        assert_eq!(store.values("encoder.0.weight").unwrap(), vec![1.0, 2.0]);
        assert!(!store.get("encoder.0.bn.running_mean").unwrap().trainable);
    }
}
