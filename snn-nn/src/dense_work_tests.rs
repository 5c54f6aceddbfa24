//! The layers record their dense multiply-accumulates ([`snn_core::dense_work`]).

use crate::{Conv2dConfig, ConvTranspose2dConfig, LinearConfig};
use snn_core::dense_work::take;
use snn_core::dfdx::prelude::*;
use snn_core::init::{self, WeightInit};
use snn_core::{device, ParamStore};

#[test]
fn each_product_records_its_dense_multiply_accumulates() {
    let dev = device::create(0).expect("device");
    let mut store = ParamStore::new(dev.clone());
    let mut rng = init::rng(0);
    let (torch, s, r) = (WeightInit::Torch, &mut store, &mut rng);
    let conv = Conv2dConfig {
        in_channels: 3,
        out_channels: 4,
        kernel: 3,
        stride: 2,
        padding: 1,
        bias: true,
        weight_init: torch,
    }
    .init(&mut s.scope("c"), r)
    .expect("conv");
    let up = ConvTranspose2dConfig {
        in_channels: 4,
        out_channels: 2,
        kernel: 3,
        stride: 2,
        padding: 1,
        output_padding: 1,
        bias: false,
        weight_init: torch,
    }
    .init(&mut s.scope("u"), r)
    .expect("convT");
    let fc = LinearConfig {
        inputs: 6,
        outputs: 5,
        bias: true,
        weight_init: torch,
    }
    .init(&mut s.scope("f"), r)
    .expect("linear");
    take();
    // [2, 5, 5, 3] -> stride-2 3x3 conv -> [2, 3, 3, 4]: 18 pixels x 27 x 4.
    let x = dev.ones_like(&(2, 5, 5, 3)).leaky_traced();
    let y = conv.forward(x, &store).expect("forward");
    assert_eq!(*y.shape(), (2, 3, 3, 4));
    assert_eq!(take(), 18 * 27 * 4);
    // Each of the 18 input pixels of the transposed conv scatters 3x3x2
    // outputs from its 4 channels.
    let _ = up.forward(y, &store).expect("forward");
    assert_eq!(take(), 18 * 4 * 9 * 2);
    let _ = fc
        .forward(dev.ones_like(&(7, 6)).leaky_traced(), &store)
        .expect("forward");
    assert_eq!(take(), 7 * 6 * 5);
    assert_eq!(take(), 0, "take resets the count");
}
