//! Loading Inception-v3 from a PyTorch state dict in torchvision's layout
//! (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`,
//! ..., `fc.weight`), converted to safetensors.
//!
//! Two files have this layout: torchvision's ImageNet weights (1000
//! classes) and pytorch-fid's port of TF's 2015-12-05 FID graph (1008
//! classes). The class count tells them apart, and with it the pooling
//! layout ([`Graph`]) and how IS reads the logits: the FID graph's IS (the
//! original TF code, torch-fidelity) takes `features . W` without the bias;
//! torchvision's (the common PyTorch IS code) the full `fc`. Safetensors
//! metadata `inception_graph = "fid2015" | "torchvision"` overrides the
//! guess (needed only for a file without `fc`).
//!
//! Inputs are scaled `p / 127.5 - 1`: torchvision's ImageNet normalisation
//! followed by its `transform_input`, which together undo to that, and
//! pytorch-fid's `2 x - 1`.

use super::{by_name, check_bn, conv_shape, tensor, Conv, Graph, Head, Inception, FEATURES};
use snn_core::{params, Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// torchvision module name -> (our name, stride). Our names are those of
/// the TorchScript FID graph the forward pass is written against.
fn names() -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = [
        ("Conv2d_1a_3x3", "conv", 2),
        ("Conv2d_2a_3x3", "conv_1", 1),
        ("Conv2d_2b_3x3", "conv_2", 1),
        ("Conv2d_3b_1x1", "conv_3", 1),
        ("Conv2d_4a_3x3", "conv_4", 1),
    ]
    .iter()
    .map(|(a, b, s)| (a.to_string(), b.to_string(), *s))
    .collect();
    let mut block = |tv: &str, ours: &str, parts: &[(&str, &str, usize)]| {
        for (a, b, s) in parts {
            out.push((format!("{tv}.{a}"), format!("{ours}.{b}"), *s));
        }
    };
    let a = [
        ("branch1x1", "conv", 1),
        ("branch5x5_1", "tower.conv", 1),
        ("branch5x5_2", "tower.conv_1", 1),
        ("branch3x3dbl_1", "tower_1.conv", 1),
        ("branch3x3dbl_2", "tower_1.conv_1", 1),
        ("branch3x3dbl_3", "tower_1.conv_2", 1),
        ("branch_pool", "tower_2.conv", 1),
    ];
    for (tv, ours) in [
        ("Mixed_5b", "mixed"),
        ("Mixed_5c", "mixed_1"),
        ("Mixed_5d", "mixed_2"),
    ] {
        block(tv, ours, &a);
    }
    block(
        "Mixed_6a",
        "mixed_3",
        &[
            ("branch3x3", "conv", 2),
            ("branch3x3dbl_1", "tower.conv", 1),
            ("branch3x3dbl_2", "tower.conv_1", 1),
            ("branch3x3dbl_3", "tower.conv_2", 2),
        ],
    );
    let c = [
        ("branch1x1", "conv", 1),
        ("branch7x7_1", "tower.conv", 1),
        ("branch7x7_2", "tower.conv_1", 1),
        ("branch7x7_3", "tower.conv_2", 1),
        ("branch7x7dbl_1", "tower_1.conv", 1),
        ("branch7x7dbl_2", "tower_1.conv_1", 1),
        ("branch7x7dbl_3", "tower_1.conv_2", 1),
        ("branch7x7dbl_4", "tower_1.conv_3", 1),
        ("branch7x7dbl_5", "tower_1.conv_4", 1),
        ("branch_pool", "tower_2.conv", 1),
    ];
    for (tv, ours) in [
        ("Mixed_6b", "mixed_4"),
        ("Mixed_6c", "mixed_5"),
        ("Mixed_6d", "mixed_6"),
        ("Mixed_6e", "mixed_7"),
    ] {
        block(tv, ours, &c);
    }
    block(
        "Mixed_7a",
        "mixed_8",
        &[
            ("branch3x3_1", "tower.conv", 1),
            ("branch3x3_2", "tower.conv_1", 2),
            ("branch7x7x3_1", "tower_1.conv", 1),
            ("branch7x7x3_2", "tower_1.conv_1", 1),
            ("branch7x7x3_3", "tower_1.conv_2", 1),
            ("branch7x7x3_4", "tower_1.conv_3", 2),
        ],
    );
    for (tv, ours) in [("Mixed_7b", "mixed_9"), ("Mixed_7c", "mixed_10")] {
        for (a, b) in [
            ("branch1x1", "conv"),
            ("branch3x3_1", "tower_conv"),
            ("branch3x3_2a", "tower_mixed_conv"),
            ("branch3x3_2b", "tower_mixed_conv_1"),
            ("branch3x3dbl_1", "tower_1_conv"),
            ("branch3x3dbl_2", "tower_1_conv_1"),
            ("branch3x3dbl_3a", "tower_1_mixed_conv"),
            ("branch3x3dbl_3b", "tower_1_mixed_conv_1"),
            ("branch_pool", "tower_2_conv"),
        ] {
            out.push((format!("{tv}.{a}"), format!("{ours}_{b}"), 1));
        }
    }
    // Mixed_7b/7c's branches sit beside `conv` in our names: `mixed_9.tower_conv`.
    for (_, ours, _) in out.iter_mut() {
        for m in ["mixed_9", "mixed_10"] {
            if let Some(rest) = ours.strip_prefix(&format!("{m}_")) {
                *ours = format!("{m}.{rest}");
            }
        }
    }
    out
}

/// Padding of each convolution: the stem's as torchvision writes it;
/// inside the blocks, none for stride 2 and "same" otherwise.
fn padding(ours: &str, stride: usize, kh: usize, kw: usize) -> [usize; 2] {
    match ours {
        "conv" | "conv_1" | "conv_3" | "conv_4" => [0, 0],
        "conv_2" => [1, 1],
        _ if stride == 2 => [0, 0],
        _ => [(kh - 1) / 2, (kw - 1) / 2],
    }
}

pub(super) fn load(
    path: &Path,
    tensors: &[params::RawTensor],
    meta: &HashMap<String, String>,
) -> Result<Inception> {
    let by_name = by_name(tensors);
    let mut convs = HashMap::new();
    for (tv, ours, stride) in names() {
        let get = |p: &str| tensor(&by_name, path, &format!("{tv}.{p}"));
        let (ws, w) = get("conv.weight")?;
        let shape = conv_shape(path, &tv, ws)?;
        let bn = [
            get("bn.weight")?.1,
            get("bn.bias")?.1,
            get("bn.running_mean")?.1,
            get("bn.running_var")?.1,
        ];
        check_bn(path, &tv, shape[0], &bn)?;
        let pad = padding(&ours, stride, shape[2], shape[3]);
        let conv = Conv::folded(
            shape,
            w,
            Some(bn[0]),
            [bn[1], bn[2], bn[3]],
            super::EPS,
            stride,
            pad,
        );
        convs.insert(ours, conv);
    }
    let head = match (by_name.get("fc.weight"), by_name.get("fc.bias")) {
        (Some((ws, w)), Some((_, b))) => {
            let [classes, FEATURES] = ws[..] else {
                return Err(Error::data(
                    path,
                    format!("`fc.weight` is {ws:?}, expected [classes, {FEATURES}]"),
                ));
            };
            if b.len() != classes {
                return Err(Error::data(
                    path,
                    format!("`fc.bias` has {} values for {classes} classes", b.len()),
                ));
            }
            Some(Head {
                classes,
                w: w.to_vec(),
                b: b.to_vec(),
            })
        }
        (None, None) => None,
        _ => {
            return Err(Error::data(
                path,
                "`fc.weight` and `fc.bias` must come together",
            ))
        }
    };
    let graph = match meta.get("inception_graph").map(String::as_str) {
        Some("fid2015") => Graph::Fid2015,
        Some("torchvision") => Graph::Torchvision,
        Some(other) => {
            return Err(Error::data(
                path,
                format!("metadata `inception_graph` is `{other}`; accepted: fid2015, torchvision"),
            ))
        }
        None if head.as_ref().is_some_and(|h| h.classes == 1008) => Graph::Fid2015,
        None => Graph::Torchvision,
    };
    // The FID graph's IS reads `features . W` without the bias.
    let head = head.map(|mut h| {
        if graph == Graph::Fid2015 {
            h.b.clear();
        }
        h
    });
    Ok(Inception {
        convs,
        graph,
        scale: 1.0 / 127.5,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_torchvision_convolution_has_one_distinct_name() {
        let n = names();
        // 5 stem + 3 x 7 + 4 + 4 x 10 + 6 + 2 x 9 convolutions.
        assert_eq!(n.len(), 94);
        let ours: std::collections::HashSet<_> = n.iter().map(|(_, o, _)| o.clone()).collect();
        assert_eq!(ours.len(), 94);
        assert!(ours.contains("mixed_10.tower_1_mixed_conv_1"));
        assert!(ours.contains("mixed_8.tower_1.conv_3"));
        // 1x7 and 7x1 kernels pad along their long side only.
        assert_eq!(padding("mixed_4.tower.conv_1", 1, 1, 7), [0, 3]);
        assert_eq!(padding("mixed_4.tower.conv_2", 1, 7, 1), [3, 0]);
        assert_eq!(padding("mixed_3.conv", 2, 3, 3), [0, 0]);
    }

    /// The stride table and padding rule give every convolution the
    /// geometry the TorchScript FID file records (when it is fetched).
    #[test]
    fn geometry_agrees_with_the_torchscript_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/inception/fid-inception.safetensors");
        if !snn_core::checks::needs_file(
            "inception geometry against the TorchScript file",
            &path,
            "SNN_REQUIRE_INCEPTION",
            "scripts/fetch-data.sh inception",
        ) {
            return;
        }
        let (tensors, meta) = params::read_safetensors(&path).unwrap();
        let recorded: HashMap<String, [usize; 3]> =
            serde_json::from_str(&meta["conv_geometry"]).unwrap();
        let shapes: HashMap<String, Vec<usize>> =
            tensors.into_iter().map(|(n, s, _)| (n, s)).collect();
        assert_eq!(recorded.len(), names().len());
        for (tv, ours, stride) in names() {
            let key = format!("net.layers.{ours}");
            let s = &shapes[&format!("{key}.weight")];
            let [ph, pw] = padding(&ours, stride, s[2], s[3]);
            assert_eq!(recorded[&key], [stride, ph, pw], "{tv} = {ours}");
        }
    }
}
