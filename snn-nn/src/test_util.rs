//! Reference products and data for the spike kernels' unit tests.

use super::spike_gemm::SpikeMatrix;

pub fn dense(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|l| x[i * k + l] * w[l * n + j]).sum();
        }
    }
    out
}

pub fn close(a: &[f32], b: &[f32]) {
    let scale = b.iter().fold(1.0f32, |s, v| s.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * scale, "{i}: {x} vs {y}");
    }
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Checks a spike kernel's product `out = S W` and weight gradient
/// `dw += S^T G` (`[m, k] x [k, n]`) against the dense definition, at
/// densities from none to all ones and with a scaled spike value.
pub fn check_products(
    m: usize,
    k: usize,
    n: usize,
    matmul: impl Fn(&SpikeMatrix, &[f32], usize, &mut [f32]),
    weight_grad: impl Fn(&SpikeMatrix, &[f32], usize, &mut [f32]),
) {
    let w = values(k * n, 1);
    let g = values(m * n, 2);
    for (density, scale) in [(0.0, 1.0), (0.1, 1.0), (0.8, 2.0), (1.0, 1.0)] {
        let x: Vec<f32> = values(m * k, 3)
            .iter()
            .map(|u| {
                if (u + 1.0) / 2.0 < density {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let s = SpikeMatrix::pack(&x, m, k).unwrap();
        let mut out = vec![f32::NAN; m * n];
        matmul(&s, &w, n, &mut out);
        close(&out, &dense(&x, &w, m, k, n));
        // dW = X^T G, accumulated onto what is there.
        let mut dw = vec![0.5f32; k * n];
        weight_grad(&s, &g, n, &mut dw);
        let xt: Vec<f32> = (0..k * m).map(|i| x[(i % m) * k + i / m]).collect();
        let want: Vec<f32> = dense(&xt, &g, k, m, n).iter().map(|v| v + 0.5).collect();
        close(&dw, &want);
    }
}
