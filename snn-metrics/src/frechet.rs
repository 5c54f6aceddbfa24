//! Gaussian fits and the Frechet distance between them,
//! `|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`.
//!
//! `tr((S1 S2)^(1/2))` is computed as `tr((R S2 R)^(1/2))` with
//! `R = S1^(1/2)`: `R S2 R` is symmetric positive semi-definite and similar
//! to `S1 S2`, so both square roots are symmetric eigendecompositions
//! (nalgebra's), with eigenvalues rounded below zero clipped to zero. This
//! avoids the complex intermediate results of `scipy.linalg.sqrtm` on the
//! non-symmetric product that pytorch-fid has to discard.

use nalgebra::{DMatrix, DVector};
use snn_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Mean and covariance of a set of feature vectors (f64 throughout).
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    /// Unbiased covariance (divides by `n - 1`, as `numpy.cov`).
    pub cov: DMatrix<f64>,
    /// Number of vectors fitted.
    pub count: usize,
}

impl Gaussian {
    /// Fits `features` (`n` rows of `dim` values, row-major).
    pub fn fit(features: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || !features.len().is_multiple_of(dim) {
            return Err(Error::shape(
                "features",
                format!("{} values are not rows of {dim}", features.len()),
            ));
        }
        let n = features.len() / dim;
        if n < 2 {
            return Err(Error::invalid(
                "features",
                "a covariance needs at least 2 vectors",
            ));
        }
        let x = DMatrix::from_row_slice(
            n,
            dim,
            &features.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        );
        let mean = x.row_mean().transpose();
        let centred = DMatrix::from_fn(n, dim, |i, j| x[(i, j)] - mean[j]);
        let cov = centred.transpose() * &centred / (n as f64 - 1.0);
        Ok(Self {
            mean,
            cov,
            count: n,
        })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Saves mean and covariance as f64 safetensors (`mean`, `cov`), with
    /// `count` and a free-form `about` line in the metadata.
    pub fn save(&self, path: &Path, about: &str) -> Result<()> {
        let d = self.dim();
        let mean: Vec<u8> = self.mean.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Row-major (the matrix is symmetric, but say what is stored).
        let cov: Vec<u8> = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .flat_map(|(i, j)| self.cov[(i, j)].to_le_bytes())
            .collect();
        let views = [
            (
                "mean",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![d], &mean),
            ),
            (
                "cov",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![d, d], &cov),
            ),
        ];
        let mut tensors = Vec::new();
        for (name, v) in views {
            tensors.push((
                name,
                v.map_err(|e| Error::invalid("gaussian", e.to_string()))?,
            ));
        }
        let meta = HashMap::from([
            ("count".to_string(), self.count.to_string()),
            ("about".to_string(), about.to_string()),
        ]);
        let bytes = safetensors::serialize(tensors, &Some(meta))
            .map_err(|e| Error::invalid("gaussian", e.to_string()))?;
        let bytes = snn_core::params::canonical_header(bytes, path)?;
        snn_core::fsutil::atomic_write(path, &bytes)
    }

    /// Loads what [`Gaussian::save`] wrote; returns the fit and its `about`.
    pub fn load(path: &Path) -> Result<(Self, String)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| Error::data(path, msg);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f64>> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(format!("no `{name}` tensor")))?;
            if t.dtype() != safetensors::Dtype::F64 || t.shape() != shape {
                return Err(bad(format!(
                    "`{name}` must be F64 {shape:?}, found {:?} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect())
        };
        let m = st
            .tensor("mean")
            .map_err(|_| bad("no `mean` tensor".into()))?;
        let d = m.shape().first().copied().unwrap_or(0);
        let mean = read("mean", &[d])?;
        let cov = read("cov", &[d, d])?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let count = meta.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
        let about = meta.get("about").cloned().unwrap_or_default();
        Ok((
            Self {
                mean: DVector::from_vec(mean),
                cov: DMatrix::from_row_slice(d, d, &cov),
                count,
            },
            about,
        ))
    }
}

impl Gaussian {
    /// Loads `mu` (`[d]`) and `sigma` (`[d, d]`) from a NumPy `.npz` (the
    /// format clean-fid and the FSVAE repository store statistics in),
    /// float32 or float64. The fit's count is unknown there (0).
    pub fn load_npz(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::read_npz(std::io::BufReader::new(file), path)
    }

    /// [`Gaussian::load_npz`] from any reader; `path` names it in errors.
    pub fn read_npz<R: std::io::Read + std::io::Seek>(reader: R, path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::data(path, msg);
        let mut npz = npyz::npz::NpzArchive::new(reader)
            .map_err(|e| bad(format!("not a NumPy .npz archive: {e}")))?;
        let mut read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let arr = npz
                .by_name(name)
                .map_err(|e| bad(format!("cannot read `{name}`: {e}")))?
                .ok_or_else(|| {
                    bad(format!(
                        "no `{name}` array (expected `mu` [d] and `sigma` [d, d], as clean-fid stores them)"
                    ))
                })?;
            let shape: Vec<usize> = arr.shape().iter().map(|&d| d as usize).collect();
            // A header may claim any size: refuse before allocating it.
            let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.is_none_or(|n| n > MAX_NPZ_VALUES) {
                return Err(bad(format!(
                    "`{name}` claims shape {shape:?}, too large for statistics"
                )));
            }
            if arr.order() != npyz::Order::C {
                return Err(bad(format!(
                    "`{name}` is in Fortran order; C order expected"
                )));
            }
            let dtype = match arr.dtype() {
                npyz::DType::Plain(t) => t.to_string(),
                other => other.descr(),
            };
            let values = match dtype.as_str() {
                "<f4" => arr
                    .into_vec::<f32>()
                    .map(|v| v.into_iter().map(f64::from).collect()),
                "<f8" => arr.into_vec::<f64>(),
                other => {
                    return Err(bad(format!(
                        "`{name}` has dtype {other}; float32 or float64 accepted"
                    )))
                }
            }
            .map_err(|e| bad(format!("cannot read `{name}`: {e}")))?;
            Ok((shape, values))
        };
        let (ms, mu) = read("mu")?;
        let (ss, sigma) = read("sigma")?;
        let d = mu.len();
        if ms.len() != 1 || ss != [d, d] {
            return Err(bad(format!(
                "`mu` is {ms:?} and `sigma` {ss:?}; expected [d] and [d, d]"
            )));
        }
        if mu.iter().chain(&sigma).any(|v| !v.is_finite()) {
            return Err(bad("`mu` or `sigma` holds a non-finite value".into()));
        }
        Ok(Self {
            mean: DVector::from_vec(mu),
            cov: DMatrix::from_row_slice(d, d, &sigma),
            count: 0,
        })
    }
}

/// Statistics of up to 8192-d features: a `.npz` array claiming more
/// values is refused before it is read.
const MAX_NPZ_VALUES: usize = 8192 * 8192;

/// Symmetric square root of a symmetric positive semi-definite matrix.
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let e = sym.symmetric_eigen();
    let roots = e.eigenvalues.map(|v| v.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&roots) * e.eigenvectors.transpose()
}

/// Frechet distance between two Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(Error::shape(
            "frechet distance",
            format!("dimensions {} and {}", a.dim(), b.dim()),
        ));
    }
    let diff = &a.mean - &b.mean;
    let r = sqrt_psd(&a.cov);
    let inner = &r * &b.cov * &r;
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_sqrt: f64 = inner
        .symmetric_eigenvalues()
        .iter()
        .map(|v| v.max(0.0).sqrt())
        .sum();
    Ok(diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt)
}
