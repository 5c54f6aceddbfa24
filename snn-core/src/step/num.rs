//! The numbers a neuron's step is written in. One step definition, generic
//! over [`Num`], runs as plain host floats ([`f32`], eight at a time as
//! [`Lanes`]), as dual numbers ([`super::Dual`], its derivatives for the
//! derived backward pass) and as taped dfdx tensors (the composed twin in
//! `snn-neurons`).

use crate::surrogate::Surrogate;
use std::ops::{Add, Mul, Sub};

/// Arithmetic plus the three operations that make a neuron: firing with a
/// surrogate derivative, stopping a derivative, and a squashing function
/// for bounded parameters.
pub trait Num: Clone + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> {
    /// The constant `c` as a number of this kind (no derivative).
    fn lit(&self, c: f32) -> Self;

    /// The spike `H(self)` (`H(0) = 1`), whose derivative with respect to
    /// `self` is the surrogate's at `centre` (only `centre`'s value counts).
    fn spike(&self, centre: &Self, surrogate: &Surrogate) -> Self;

    /// The same value, through which no derivative flows.
    fn detach(&self) -> Self;

    /// `1 / (1 + exp(-self))`.
    fn sigmoid(&self) -> Self;
}

/// A number in host memory holding [`HostNum::LANES`] neurons' values, for
/// host kernels and hand-written backward passes.
pub trait HostNum: Num + Copy {
    const LANES: usize;

    /// Every lane `c`.
    fn splat(c: f32) -> Self;

    /// Reads `LANES` values from the front of `src`.
    fn load(src: &[f32]) -> Self;

    /// Writes the lanes to the front of `dst`.
    fn store(self, dst: &mut [f32]);

    /// `H(self)` as a value, no derivative.
    fn heaviside(self) -> Self;

    /// The surrogate derivative at each lane.
    fn surrogate_grad(self, surrogate: &Surrogate) -> Self;

    /// Lane `i`.
    fn lane(&self, i: usize) -> f32;

    /// Sets lane `i`.
    fn set_lane(&mut self, i: usize, v: f32);

    /// The sum of the lanes.
    fn sum(self) -> f32;
}

/// `H(v)` with `H(0) = 1`: the one firing rule every number kind uses.
#[inline(always)]
pub fn fires(v: f32) -> f32 {
    if v >= 0.0 {
        1.0
    } else {
        0.0
    }
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl Num for f32 {
    #[inline(always)]
    fn lit(&self, c: f32) -> Self {
        c
    }

    #[inline(always)]
    fn spike(&self, _centre: &Self, _surrogate: &Surrogate) -> Self {
        fires(*self)
    }

    #[inline(always)]
    fn detach(&self) -> Self {
        *self
    }

    #[inline(always)]
    fn sigmoid(&self) -> Self {
        sigmoid(*self)
    }
}

impl HostNum for f32 {
    const LANES: usize = 1;

    #[inline(always)]
    fn splat(c: f32) -> Self {
        c
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        src[0]
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        dst[0] = self;
    }

    #[inline(always)]
    fn heaviside(self) -> Self {
        fires(self)
    }

    #[inline(always)]
    fn surrogate_grad(self, surrogate: &Surrogate) -> Self {
        surrogate.grad(self)
    }

    #[inline(always)]
    fn lane(&self, _i: usize) -> f32 {
        *self
    }

    #[inline(always)]
    fn set_lane(&mut self, _i: usize, v: f32) {
        *self = v;
    }

    #[inline(always)]
    fn sum(self) -> f32 {
        self
    }
}

/// Eight neurons at once: every operation is a fixed-length loop the
/// compiler turns into vector instructions. Lane for lane the same
/// arithmetic as [`f32`], so a run's tail computed one neuron at a time
/// agrees with its lanes bit for bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lanes(pub [f32; 8]);

impl Lanes {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) -> Self {
        Self(self.0.map(f))
    }

    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Self(std::array::from_fn(|i| f(self.0[i], o.0[i])))
    }
}

impl Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| a + b)
    }
}

impl Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| a - b)
    }
}

impl Mul for Lanes {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self.zip(o, |a, b| a * b)
    }
}

impl Num for Lanes {
    #[inline(always)]
    fn lit(&self, c: f32) -> Self {
        Self([c; 8])
    }

    #[inline(always)]
    fn spike(&self, _centre: &Self, _surrogate: &Surrogate) -> Self {
        self.map(fires)
    }

    #[inline(always)]
    fn detach(&self) -> Self {
        *self
    }

    #[inline(always)]
    fn sigmoid(&self) -> Self {
        self.map(sigmoid)
    }
}

impl HostNum for Lanes {
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(c: f32) -> Self {
        Self([c; 8])
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        // One bounds check and one vector move, not eight checked reads.
        let mut lanes = [0.0; 8];
        lanes.copy_from_slice(&src[..8]);
        Self(lanes)
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        dst[..8].copy_from_slice(&self.0);
    }

    #[inline(always)]
    fn heaviside(self) -> Self {
        self.map(fires)
    }

    #[inline(always)]
    fn surrogate_grad(self, surrogate: &Surrogate) -> Self {
        Self(surrogate.grad_lanes(self.0))
    }

    #[inline(always)]
    fn lane(&self, i: usize) -> f32 {
        self.0[i]
    }

    #[inline(always)]
    fn set_lane(&mut self, i: usize, v: f32) {
        self.0[i] = v;
    }

    #[inline(always)]
    fn sum(self) -> f32 {
        self.0.iter().sum()
    }
}
