//! A neuron is its step function.
//!
//! A spiking neuron model is defined once, by [`NeuronStep`]: how many
//! floats of state a neuron carries, which per-layer constants it reads
//! (from its stored parameters) and one time step from a state and an input
//! current to a spike and the next state. The step is generic over
//! [`Num`], so the same code runs as
//!
//! - host floats, eight neurons at a time ([`Lanes`]): the multi-step
//!   forward pass, the no-gradient simulation, the fused spike + pool
//!   kernel and the FSVAE's stepper (`snn-neurons`' `StepNeuron` derives
//!   them all);
//! - dual numbers ([`Dual`]): the step's Jacobian, from which its backward
//!   pass through time follows ([`NeuronStep::step_backward`]'s default);
//! - taped dfdx tensors: the composed twin, the test oracle of every host
//!   path and the path on devices without host kernels.
//!
//! A neuron may replace the derived backward step with a hand-written one
//! (LIF does, for speed); the twin tests hold the two together.
//!
//! State is the neuron's own choice of variables. It starts at zero before
//! the first step of every sequence, so a step needs no first-step case.

mod dual;
mod num;

pub use dual::{constants_jacobian, step_backward, Dual, MAX_TANGENTS};
pub use num::{fires, HostNum, Lanes, Num};

use crate::{Error, Result};
use std::fmt::Debug;

/// The most floats of state per neuron a step may carry.
pub const MAX_STATE: usize = 4;

/// The definition of a spiking neuron: one time step.
pub trait NeuronStep: Debug + Send + Sync + 'static {
    /// Floats of state per neuron, at most [`MAX_STATE`].
    const STATE: usize = 1;

    /// The per-layer constants [`NeuronStep::step`] reads, computed once per
    /// pass from the layer's stored parameters (in the order it registered
    /// them): e.g. LIF's decay from its logit. The default reads the
    /// parameters as they are.
    fn constants<N: Num>(&self, params: &[N]) -> Vec<N> {
        params.to_vec()
    }

    /// The neuron's constants as metrics report them (e.g. LIF's decay
    /// rather than its logit), from the stored parameter values. The
    /// default, empty, reports the parameters by name.
    fn report(&self, params: &[f32]) -> Vec<(&'static str, f32)> {
        let _ = params;
        Vec::new()
    }

    /// The step as a leaky neuron with a hard reset to zero
    /// ([`crate::nir::LifForm`]), from its constants `k`, when it is one:
    /// what NIR export writes. `None`, the default, has no NIR form.
    fn lif_form(&self, k: &[f32]) -> Option<crate::nir::LifForm> {
        let _ = k;
        None
    }

    /// One step: from constants `k`, the state before the step (updated in
    /// place to the state after it) and input current `x`, the spike (0 or 1,
    /// from [`Num::spike`]).
    fn step<N: Num>(&self, k: &[N], state: &mut [N], x: N) -> N;

    /// The backward pass of one step. Given the state before the step, its
    /// input, the loss gradients of its spike (`g_spike`) and of the state
    /// after it (`g_state`), it overwrites `g_state` with the gradient of
    /// the state before, adds the constants' gradients into `g_k` and
    /// returns the input's gradient.
    ///
    /// The default derives it from [`NeuronStep::step`] with dual numbers;
    /// a neuron overrides it only for speed.
    fn step_backward<N: HostNum>(
        &self,
        k: &[N],
        state: &[N],
        x: N,
        g_spike: N,
        g_state: &mut [N],
        g_k: &mut [N],
    ) -> N {
        step_backward(self, k, state, x, g_spike, g_state, g_k)
    }
}

/// Checks that a step with `params` stored parameters fits the host
/// kernels' fixed sizes (state, constants, dual-number tangents).
pub fn check<S: NeuronStep>(step: &S, params: usize, name: &str) -> Result<()> {
    let k = step.constants(&vec![0.5f32; params]).len();
    let tangents = S::STATE + 1 + k;
    if S::STATE == 0 || S::STATE > MAX_STATE || params > MAX_TANGENTS || tangents > MAX_TANGENTS {
        return Err(Error::invalid(
            name,
            format!(
                "a neuron step has 1 to {MAX_STATE} state floats, at most {MAX_TANGENTS} \
                 parameters, and state + input + constants at most {MAX_TANGENTS}; this one has \
                 {} state, {params} parameters and {k} constants",
                S::STATE
            ),
        ));
    }
    Ok(())
}
