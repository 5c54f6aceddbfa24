//! The CPU convolution kernel: im2col in chunks of images into one reused
//! buffer and a GEMM per chunk, forward and backward, registered on dfdx's
//! tape. It never materialises the whole batch's im2col matrix (the
//! composed path gathers all of it, ~115 MB for the MNIST network's conv2 at
//! T x B = 128), and it recomputes the columns in backward instead of
//! keeping them.
//!
//! When the input is a spike map (every value 0 or one common value) with
//! a whole number of bytes of channels, the product and the weight gradient
//! run on packed bits by table lookup ([`spike_gemm`]) instead, and the
//! backward pass keeps the bit columns (1/32 of the floats) instead of the
//! input.

use super::bias::Bias;
use crate::im2col::{Geometry, Windows};
use crate::spike_gemm::{self, SpikeMatrix};
use crate::Nhwc;
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::gemm::{matmul, Fresh, Op};
use snn_core::{host, FlatT};

// The kernels of one convolution geometry (the type is plain data in
// `im2col.rs`, where the layers build it).
impl Geometry {
    fn col_width(&self) -> usize {
        self.k * self.k * self.c
    }

    /// Images per chunk: about 4 MiB of columns, at least one image.
    fn chunk(&self) -> usize {
        let per_image = self.ho * self.wo * self.col_width() * 4;
        ((4 << 20) / per_image.max(1)).clamp(1, self.n.max(1))
    }

    /// Where the windows fall on one image.
    fn windows(&self) -> Windows {
        Windows {
            h: self.h,
            w: self.w,
            c: self.c,
            kh: self.k,
            kw: self.k,
            stride: self.stride,
            ph: self.pad,
            pw: self.pad,
            ho: self.ho,
            wo: self.wo,
        }
    }

    /// Fills `col` (`[rows, k*k*c]`) for images `n0..n1` of `x` (NHWC), an
    /// image per parallel task.
    fn im2col(&self, x: &[f32], n0: usize, n1: usize, col: &mut [f32]) {
        let win = self.windows();
        let (plane, per_image) = (self.h * self.w * self.c, self.ho * self.wo * win.width());
        col[..(n1 - n0) * per_image]
            .par_chunks_mut(per_image.max(1))
            .zip(x[n0 * plane..n1 * plane].par_chunks(plane.max(1)))
            .for_each(|(dst, image)| win.gather(image, dst));
    }

    /// Adds the columns `col` of images `n0..n1` back into `dx` (NHWC), an
    /// image per parallel task (an image's windows overlap one another,
    /// never another image).
    fn col2im(&self, col: &[f32], n0: usize, n1: usize, dx: &mut [f32]) {
        let (plane, per_image) = (
            self.h * self.w * self.c,
            self.ho * self.wo * self.col_width(),
        );
        dx[n0 * plane..n1 * plane]
            .par_chunks_mut(plane.max(1))
            .zip(col[..(n1 - n0) * per_image].par_chunks(per_image.max(1)))
            .for_each(|(image, cols)| self.col2im_image(cols, image));
    }

    /// [`Geometry::col2im`] of one image: `col` its rows, `dx` its plane.
    fn col2im_image(&self, col: &[f32], dx: &mut [f32]) {
        let g = self;
        let width = g.col_width();
        let mut row = 0;
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let src = &col[row * width..(row + 1) * width];
                for ky in 0..g.k {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for kx in 0..g.k {
                        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                        if ix < 0 || ix >= g.w as isize {
                            continue;
                        }
                        let d = (iy as usize * g.w + ix as usize) * g.c;
                        let s = (ky * g.k + kx) * g.c;
                        for (a, v) in dx[d..d + g.c].iter_mut().zip(&src[s..s + g.c]) {
                            *a += v;
                        }
                    }
                }
                row += 1;
            }
        }
    }

    /// The im2col matrix of a spike input as bits, or `None` when the
    /// input is not binary, its channels do not fill whole bytes, or the
    /// product is too small for the table to pay off.
    pub fn spike_columns(&self, x: &[f32]) -> Option<SpikeMatrix> {
        let rows = self.n * self.ho * self.wo;
        if !self.c.is_multiple_of(8) || !spike_gemm::worthwhile(rows) {
            return None;
        }
        let pixels = SpikeMatrix::pack(x, self.n * self.h * self.w, self.c)?;
        let cell = self.c / 8;
        let stride = self.k * self.k * cell;
        let mut bits = vec![0u8; rows * stride];
        let mut row = 0;
        for b in 0..self.n {
            for oy in 0..self.ho {
                for ox in 0..self.wo {
                    let dst = &mut bits[row * stride..(row + 1) * stride];
                    for ky in 0..self.k {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        for kx in 0..self.k {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                                continue; // padding: zero bits
                            }
                            let src = ((b * self.h + iy as usize) * self.w + ix as usize) * cell;
                            let at = (ky * self.k + kx) * cell;
                            dst[at..at + cell].copy_from_slice(&pixels.bits[src..src + cell]);
                        }
                    }
                    row += 1;
                }
            }
        }
        Some(SpikeMatrix {
            rows,
            k: self.col_width(),
            stride,
            bits,
            scale: pixels.scale,
        })
    }

    pub fn forward(&self, x: &[f32], wt: &[f32]) -> Vec<f32> {
        let (rows_per_image, width) = (self.ho * self.wo, self.col_width());
        let mut y = Fresh::new(self.n * rows_per_image, self.o);
        let chunk = self.chunk();
        let mut col = vec![0.0f32; chunk * rows_per_image * width];
        for n0 in (0..self.n).step_by(chunk) {
            let n1 = (n0 + chunk).min(self.n);
            self.im2col(x, n0, n1, &mut col);
            y.push_product((n1 - n0) * rows_per_image, width, Op::N(&col), Op::N(wt));
        }
        y.finish()
    }

    /// Returns `(dx, dw)` for output gradient `gy`.
    pub fn backward(&self, x: &[f32], wt: &[f32], gy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (rows_per_image, width) = (self.ho * self.wo, self.col_width());
        let mut dx = vec![0.0f32; x.len()];
        let mut dw = vec![0.0f32; width * self.o];
        let chunk = self.chunk();
        let mut col = vec![0.0f32; chunk * rows_per_image * width];
        let mut dcol = vec![0.0f32; chunk * rows_per_image * width];
        for n0 in (0..self.n).step_by(chunk) {
            let n1 = (n0 + chunk).min(self.n);
            let rows = (n1 - n0) * rows_per_image;
            let g = &gy[n0 * rows_per_image * self.o..n1 * rows_per_image * self.o];
            self.im2col(x, n0, n1, &mut col);
            // dW += col^T gy ; dcol = gy W^T
            matmul([width, self.o, rows], Op::T(&col), Op::N(g), &mut dw, true);
            matmul([rows, width, self.o], Op::N(g), Op::T(wt), &mut dcol, false);
            self.col2im(&dcol, n0, n1, &mut dx);
        }
        (dx, dw)
    }
}

impl Geometry {
    /// `col2im(gy W^T)`: the input gradient alone (the forward pass of the
    /// transposed convolution whose adjoint this geometry describes).
    pub fn input_grad(&self, wt: &[f32], gy: &[f32]) -> Vec<f32> {
        let (rows_per_image, width) = (self.ho * self.wo, self.col_width());
        let mut dx = vec![0.0f32; self.n * self.h * self.w * self.c];
        let chunk = self.chunk();
        let mut dcol = vec![0.0f32; chunk * rows_per_image * width];
        for n0 in (0..self.n).step_by(chunk) {
            let n1 = (n0 + chunk).min(self.n);
            let rows = (n1 - n0) * rows_per_image;
            let g = &gy[n0 * rows_per_image * self.o..n1 * rows_per_image * self.o];
            matmul([rows, width, self.o], Op::N(g), Op::T(wt), &mut dcol, false);
            self.col2im(&dcol, n0, n1, &mut dx);
        }
        dx
    }

    /// `(forward(x, wt), im2col(x)^T gy)` from one im2col of `x`: the
    /// transposed convolution's backward, whose input and weight gradients
    /// both read the columns of its output gradient (`gy`: that
    /// convolution's input, `[N, ho, wo, o]`, as it kept it).
    fn forward_and_weight_grad(
        &self,
        x: &[f32],
        wt: &[f32],
        gy: &KeptRows,
    ) -> (Vec<f32>, Vec<f32>) {
        let (rows_per_image, width) = (self.ho * self.wo, self.col_width());
        let mut y = Fresh::new(self.n * rows_per_image, self.o);
        let mut dw = vec![0.0f32; width * self.o];
        let chunk = self.chunk();
        let mut col = vec![0.0f32; chunk * rows_per_image * width];
        let mut unpacked = Vec::new();
        for n0 in (0..self.n).step_by(chunk) {
            let n1 = (n0 + chunk).min(self.n);
            let rows = (n1 - n0) * rows_per_image;
            self.im2col(x, n0, n1, &mut col);
            y.push_product(rows, width, Op::N(&col), Op::N(wt));
            let g = gy.rows(n0 * rows_per_image, n1 * rows_per_image, &mut unpacked);
            matmul([width, self.o, rows], Op::T(&col), Op::N(g), &mut dw, true);
        }
        (y.finish(), dw)
    }
}

/// A `[rows, width]` input that backward multiplies again, as the kernel
/// keeps it: a spike map (every value 0 or one common value) as bits, 1/32
/// of the floats, anything else as the floats.
enum KeptRows {
    Floats(Vec<f32>, usize),
    Spikes(SpikeMatrix),
}

impl KeptRows {
    fn keep(x: Vec<f32>, width: usize) -> Self {
        let rows = x.len() / width.max(1);
        match SpikeMatrix::pack(&x, rows, width) {
            Some(bits) => Self::Spikes(bits),
            None => Self::Floats(x, width),
        }
    }

    /// Rows `r0..r1` as floats: borrowed, or unpacked into `buf`.
    fn rows<'a>(&'a self, r0: usize, r1: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        match self {
            Self::Floats(x, width) => &x[r0 * width..r1 * width],
            Self::Spikes(bits) => {
                buf.resize((r1 - r0) * bits.k, 0.0);
                bits.unpack_rows(r0, r1, buf);
                buf
            }
        }
    }
}

/// What the convolution's backward pass keeps of its input.
enum Saved {
    /// The input itself, `[N, H, W, C]` (columns are recomputed).
    Input(Vec<f32>),
    /// A spike input's im2col matrix as bits (1/32 of the floats).
    SpikeColumns(SpikeMatrix),
}

/// Convolution of `x` (`[N, H, W, C]`) with `weight` (`[k, k, C, O]`
/// flattened) plus the optional per-channel `bias` (`[O]`) on the tape.
pub fn conv2d(x: Nhwc, weight: FlatT, bias: Option<FlatT>, geo: Geometry) -> Nhwc {
    let (n, h, w, c) = *x.shape();
    // Contiguous (a copy only if it was not), so offsets below are physical.
    let x = x.reshape_like(&(n, h, w, c));
    let (x, x_tape) = x.split_tape();
    let (weight, w_tape) = weight.split_tape();
    let (bias, mut tape) = Bias::split(bias, x_tape.merge(w_tape));
    let xs = host::read(&x);
    let ws = host::read(&weight);
    let spikes = geo.spike_columns(&xs);
    let mut y = match &spikes {
        Some(cols) => {
            let mut y = vec![0.0f32; cols.rows * geo.o];
            spike_gemm::matmul(cols, &ws, geo.o, &mut y);
            y
        }
        None => geo.forward(&xs, &ws),
    };
    if let Some(b) = &bias {
        b.add_to(&mut y);
    }
    let out = x
        .device()
        .tensor_from_vec(y, (geo.n, geo.ho, geo.wo, geo.o));
    if !snn_core::grad::is_enabled() {
        return out.put_tape(tape);
    }
    // Keep what backward needs: the bit columns of a spike input, else the
    // input; of the tensors, ghosts (the slots, not the values).
    let saved = match spikes {
        Some(cols) => Saved::SpikeColumns(cols),
        None => Saved::Input(xs),
    };
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let gy = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        if let Some(b) = &bias {
            b.add_grad(grads, &gy)?;
        }
        let (dx, dw) = match &saved {
            Saved::Input(xs) => geo.backward(xs, &ws, &gy),
            Saved::SpikeColumns(cols) => {
                let mut dw = vec![0.0f32; cols.k * geo.o];
                spike_gemm::weight_grad(cols, &gy, geo.o, &mut dw);
                (geo.input_grad(&ws, &gy), dw)
            }
        };
        host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, dx);
        host::add_grad(grads.get_or_alloc_mut(&weight)?, &dw);
        Ok(())
    });
    out.put_tape(tape)
}

/// Transposed convolution of `x` (`[N, h, w, C_in]`) on the tape, computed
/// without the zeros of the dilated input: it is the input gradient of the
/// stride-`s` convolution `adjoint` (which maps `[N, H_out, W_out, C_out]`
/// to `[N, h, w, C_in]`), so forward is one GEMM and a col2im, backward
/// that convolution's forward (for `x`) and weight gradient.
///
/// `weight` is [`crate::ConvTranspose2d`]'s layout, the equivalent
/// stride-1 convolution's `[k, k, C_in, C_out]`; the adjoint convolution's
/// kernel is that flipped in space with the channel axes swapped.
pub fn conv_transpose2d(x: Nhwc, weight: FlatT, bias: Option<FlatT>, adjoint: Geometry) -> Nhwc {
    let (n, h, w, c) = *x.shape();
    let x = x.reshape_like(&(n, h, w, c));
    let (x, x_tape) = x.split_tape();
    let (weight, w_tape) = weight.split_tape();
    let (bias, mut tape) = Bias::split(bias, x_tape.merge(w_tape));
    let xs = host::read(&x);
    let wf = flip_swap(&host::read(&weight), adjoint.k, adjoint.o, adjoint.c);
    let g = adjoint;
    let mut y = g.input_grad(&wf, &xs);
    if let Some(b) = &bias {
        b.add_to(&mut y);
    }
    let out = x.device().tensor_from_vec(y, (g.n, g.h, g.w, g.c));
    if !snn_core::grad::is_enabled() {
        return out.put_tape(tape);
    }
    // Ghosts: backward reads the input from `xs`, bits where it is spikes
    // (`host::take_grad`).
    let xs = KeptRows::keep(xs, c);
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let gy = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        if let Some(b) = &bias {
            b.add_grad(grads, &gy)?;
        }
        let (dx, dwf) = g.forward_and_weight_grad(&gy, &wf, &xs);
        host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, dx);
        // flip_swap is its own inverse (with the channel counts swapped).
        host::add_grad(
            grads.get_or_alloc_mut(&weight)?,
            &flip_swap(&dwf, g.k, g.c, g.o),
        );
        Ok(())
    });
    out.put_tape(tape)
}

/// `[k, k, a, b]` -> `[k, k, b, a]` with both spatial axes reversed.
fn flip_swap(w: &[f32], k: usize, a: usize, b: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; w.len()];
    for ky in 0..k {
        for kx in 0..k {
            let src = ((k - 1 - ky) * k + (k - 1 - kx)) * a * b;
            let dst = (ky * k + kx) * a * b;
            for i in 0..a {
                for j in 0..b {
                    out[dst + j * a + i] = w[src + i * b + j];
                }
            }
        }
    }
    out
}
