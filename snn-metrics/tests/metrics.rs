//! Frechet distance and Inception Score against hand-derived values.

use snn_metrics::{frechet_distance, inception_score, Gaussian};

fn gaussian(mean: &[f64], cov: &[f64]) -> Gaussian {
    let d = mean.len();
    Gaussian {
        mean: nalgebra::DVector::from_row_slice(mean),
        cov: nalgebra::DMatrix::from_row_slice(d, d, cov),
        count: 10,
    }
}

#[test]
fn fit_gives_mean_and_unbiased_covariance() {
    let g = Gaussian::fit(&[1.0, 2.0, 3.0, 4.0, 5.0, 0.0], 2).unwrap();
    assert_eq!(g.mean.as_slice(), &[3.0, 2.0]);
    // Deviations x: -2, 0, 2; y: 0, 2, -2; divided by n - 1 = 2.
    assert_eq!(g.cov.as_slice(), &[4.0, -2.0, -2.0, 4.0]);
    assert!(
        Gaussian::fit(&[1.0, 2.0], 2).is_err(),
        "one vector has no covariance"
    );
    assert!(Gaussian::fit(&[1.0, 2.0, 3.0], 2).is_err());
}

#[test]
fn frechet_distance_of_known_gaussians() {
    // Commuting covariances: |dm|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    // = (1 + 4) + (1 - 2)^2 + (2 - 1)^2 = 7.
    let a = gaussian(&[0.0, 0.0], &[1.0, 0.0, 0.0, 4.0]);
    let b = gaussian(&[1.0, 2.0], &[4.0, 0.0, 0.0, 1.0]);
    assert!((frechet_distance(&a, &b).unwrap() - 7.0).abs() < 1e-12);
    // Non-commuting: for 2x2 M with positive eigenvalues,
    // tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)). S1 S2 = [[2, 3], [1, 6]]:
    // tr 8, det 9, so tr sqrt = sqrt(14); d = 1 + 4 + 4 - 2 sqrt(14).
    let a = gaussian(&[1.0, 0.0], &[2.0, 1.0, 1.0, 2.0]);
    let b = gaussian(&[0.0, 0.0], &[1.0, 0.0, 0.0, 3.0]);
    let want = 9.0 - 2.0 * 14f64.sqrt();
    let got = frechet_distance(&a, &b).unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Symmetric in its arguments.
    assert!((frechet_distance(&b, &a).unwrap() - want).abs() < 1e-12);
    assert!(frechet_distance(&a, &gaussian(&[0.0], &[1.0])).is_err());
}

#[test]
fn frechet_distance_of_a_set_to_itself_is_zero() {
    // 64 pseudo-random 16-d features (a fixed LCG, no test dependency).
    let mut s = 12345u64;
    let feats: Vec<f32> = (0..64 * 16)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let g = Gaussian::fit(&feats, 16).unwrap();
    assert!(frechet_distance(&g, &g).unwrap().abs() < 1e-9);
    // A shifted copy is exactly the squared shift away.
    let shifted: Vec<f32> = feats.iter().map(|v| v + 0.5).collect();
    let h = Gaussian::fit(&shifted, 16).unwrap();
    assert!((frechet_distance(&g, &h).unwrap() - 16.0 * 0.25).abs() < 1e-4);
}

#[test]
fn gaussian_round_trips_through_safetensors_and_rejects_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.safetensors");
    let g = gaussian(&[1.5, -2.0], &[2.0, 0.25, 0.25, 1.0]);
    g.save(&path, "mnist test, 10000 images").unwrap();
    let (back, about) = Gaussian::load(&path).unwrap();
    assert_eq!(back, g);
    assert_eq!(about, "mnist test, 10000 images");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let err = Gaussian::load(&path).unwrap_err().to_string();
    assert!(err.contains("stats.safetensors"), "{err}");
}

#[test]
fn inception_score_of_hand_cases() {
    // Confident and evenly spread over 4 classes: IS = 4.
    let mut probs = Vec::new();
    for i in 0..8 {
        let mut row = [0.0f32; 4];
        row[i % 4] = 1.0;
        probs.extend(row);
    }
    let (m, s) = inception_score(&probs, 4, 2).unwrap();
    assert!((m - 4.0).abs() < 1e-9 && s.abs() < 1e-9, "{m} {s}");
    // Every image the same distribution: IS = 1.
    let same: Vec<f32> = (0..6).flat_map(|_| [0.2f32, 0.3, 0.5]).collect();
    let (m, _) = inception_score(&same, 3, 1).unwrap();
    assert!((m - 1.0).abs() < 1e-6);
    // Two images, p(y|x) = (1, 0) and (0.5, 0.5): p(y) = (0.75, 0.25);
    // KL1 = ln(1/0.75), KL2 = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25).
    let (m, _) = inception_score(&[1.0, 0.0, 0.5, 0.5], 2, 1).unwrap();
    let kl = ((1.0f64 / 0.75).ln() + 0.5 * (0.5f64 / 0.75).ln() + 0.5 * 2f64.ln()) / 2.0;
    assert!((m - kl.exp()).abs() < 1e-6, "{m}");
    assert!(inception_score(&probs, 4, 9).is_err());
}
