//! Fast approximately Gaussian noise from tabulated Box-Muller.

use rand::Rng;

/// Adds N(0, sd²) noise to every value.
///
/// Box-Muller with tabulated transcendental functions: each normal pair is
/// `r·(cos θ, sin θ)` with `r = √(−2 ln u)` read from a 4096-level table of `u`
/// (midpoints, rescaled so that `E[r²]` = 2 exactly) and `θ` from a 1024-level table,
/// so one 64-bit draw yields four values without any `ln`/`sin` per pixel. The
/// marginals are Gaussian to well within augmentation needs (tails cut at ≈4.2 sd).
pub(super) fn add_gaussian_noise(image: &mut [f32], sd: f32, rng: &mut impl Rng) {
    let t = noise_tables();
    let normals = |bits: u64| {
        let r1 = t.radius[(bits & 0xfff) as usize];
        let (c1, s1) = t.angle[((bits >> 12) & 0x3ff) as usize];
        let r2 = t.radius[((bits >> 22) & 0xfff) as usize];
        let (c2, s2) = t.angle[((bits >> 34) & 0x3ff) as usize];
        [r1 * c1, r1 * s1, r2 * c2, r2 * s2]
    };
    let mut quads = image.chunks_exact_mut(4);
    for quad in &mut quads {
        let n = normals(rng.random::<u64>());
        for (v, n) in quad.iter_mut().zip(n) {
            *v += sd * n;
        }
    }
    let rest = quads.into_remainder();
    if !rest.is_empty() {
        let n = normals(rng.random::<u64>());
        for (v, n) in rest.iter_mut().zip(n) {
            *v += sd * n;
        }
    }
}

/// Lookup tables of [`add_gaussian_noise`].
pub(super) struct NoiseTables {
    /// √(−2 ln u) at u = (i + ½)/4096, scaled so the mean square is 2.
    pub(super) radius: Vec<f32>,
    /// (cos θ, sin θ) at θ = 2π·j/1024.
    pub(super) angle: Vec<(f32, f32)>,
}

pub(super) fn noise_tables() -> &'static NoiseTables {
    static TABLES: std::sync::OnceLock<NoiseTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        const R: usize = 4096;
        const A: usize = 1024;
        let mut radius: Vec<f64> = (0..R)
            .map(|i| (-2.0 * ((i as f64 + 0.5) / R as f64).ln()).sqrt())
            .collect();
        let mean_sq = radius.iter().map(|r| r * r).sum::<f64>() / R as f64;
        let gain = (2.0 / mean_sq).sqrt();
        radius.iter_mut().for_each(|r| *r *= gain);
        let angle = (0..A)
            .map(|j| {
                let (s, c) = (std::f64::consts::TAU * j as f64 / A as f64).sin_cos();
                (c as f32, s as f32)
            })
            .collect();
        NoiseTables {
            radius: radius.into_iter().map(|r| r as f32).collect(),
            angle,
        }
    })
}
