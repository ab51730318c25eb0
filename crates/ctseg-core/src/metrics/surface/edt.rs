//! Exact squared Euclidean distance transform on an anisotropic grid: Felzenszwalb &
//! Huttenlocher's lower envelope of parabolas, one pass per axis (i, then j, then k).
//!
//! Squared distances are summed in the order scipy's `distance_transform_edt` sums
//! them, `((Δi·s0)² + (Δj·s1)²) + (Δk·s2)²`, so distances between grid points with
//! exactly representable squares (e.g. multiples of 3 mm or of 0.9765625 mm) come out
//! bit-identical to scipy's.

/// Reusable per-line buffers of the transform.
#[derive(Default)]
pub(super) struct Scratch {
    line: Vec<f64>,
    out: Vec<f64>,
    sites: Vec<usize>,
    bounds: Vec<f64>,
}

/// Replace `values` (on a grid of `dims`, i fastest) by the squared distance in mm²
/// to the nearest point whose value is 0; `f64::INFINITY` marks the other points on
/// input and stays where no such point exists.
pub(super) fn squared_edt(
    values: &mut [f64],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    scratch: &mut Scratch,
) {
    let [nx, ny, nz] = dims;
    debug_assert_eq!(values.len(), nx * ny * nz);
    let strides = [1, nx, nx * ny];
    for axis in 0..3 {
        let n = dims[axis];
        let stride = strides[axis];
        scratch.line.resize(n, 0.0);
        scratch.out.resize(n, 0.0);
        // Every line along `axis` starts at one point of the plane across it.
        let (d1, d2) = match axis {
            0 => (ny, nz),
            1 => (nx, nz),
            _ => (nx, ny),
        };
        let (s1, s2) = match axis {
            0 => (strides[1], strides[2]),
            1 => (strides[0], strides[2]),
            _ => (strides[0], strides[1]),
        };
        for b in 0..d2 {
            for a in 0..d1 {
                let start = a * s1 + b * s2;
                let mut any_site = false;
                for (q, l) in scratch.line.iter_mut().enumerate() {
                    *l = values[start + q * stride];
                    any_site |= l.is_finite();
                }
                if !any_site {
                    continue;
                }
                envelope_1d(
                    &scratch.line,
                    &mut scratch.out,
                    spacing_mm[axis],
                    &mut scratch.sites,
                    &mut scratch.bounds,
                );
                for (q, &o) in scratch.out.iter().enumerate() {
                    values[start + q * stride] = o;
                }
            }
        }
    }
}

/// One line: `out[q] = min_v f[v] + ((q − v)·s)²` over the points `v` with finite
/// `f[v]` (at least one).
fn envelope_1d(f: &[f64], out: &mut [f64], s: f64, sites: &mut Vec<usize>, bounds: &mut Vec<f64>) {
    sites.clear();
    bounds.clear();
    for (q, &fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        let xq = q as f64 * s;
        let hq = fq + xq * xq;
        // Drop parabolas hidden by the new one, then add it with its left boundary.
        while let (Some(&p), Some(&left)) = (sites.last(), bounds.last()) {
            let xp = p as f64 * s;
            let cross = (hq - (f[p] + xp * xp)) / (2.0 * (xq - xp));
            if cross <= left {
                sites.pop();
                bounds.pop();
            } else {
                sites.push(q);
                bounds.push(cross);
                break;
            }
        }
        if sites.is_empty() {
            sites.push(q);
            bounds.push(f64::NEG_INFINITY);
        }
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        let xq = q as f64 * s;
        while k + 1 < sites.len() && bounds[k + 1] < xq {
            k += 1;
        }
        let v = sites[k];
        // As scipy: (index difference as a float) × spacing, squared.
        let d = (q as f64 - v as f64) * s;
        *o = f[v] + d * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Brute force over every pair of points.
    fn brute(values: &[f64], dims: [usize; 3], s: [f64; 3]) -> Vec<f64> {
        let [nx, ny, _] = dims;
        let coords = |i: usize| [i % nx, (i / nx) % ny, i / (nx * ny)];
        let sites: Vec<usize> = (0..values.len()).filter(|&i| values[i] == 0.0).collect();
        (0..values.len())
            .map(|i| {
                let c = coords(i);
                sites
                    .iter()
                    .map(|&p| {
                        let d = coords(p);
                        (0..3)
                            .map(|a| ((c[a] as f64 - d[a] as f64) * s[a]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_random_anisotropic_grids() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut scratch = Scratch::default();
        for trial in 0..20 {
            let dims = [
                rng.random_range(1..9),
                rng.random_range(1..9),
                rng.random_range(1..9),
            ];
            let s = [
                rng.random_range(0.3..3.0),
                rng.random_range(0.3..3.0),
                rng.random_range(0.3..3.0),
            ];
            let density = [0.02, 0.1, 0.5][trial % 3];
            let mut v: Vec<f64> = (0..dims.iter().product())
                .map(|_| {
                    if rng.random_bool(density) {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                })
                .collect();
            let expected = brute(&v, dims, s);
            squared_edt(&mut v, dims, s, &mut scratch);
            for (got, want) in v.iter().zip(&expected) {
                assert!(
                    got == want || (got - want).abs() <= 1e-9 * want,
                    "{dims:?} {s:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn no_site_leaves_infinity() {
        let mut v = vec![f64::INFINITY; 8];
        squared_edt(&mut v, [2, 2, 2], [1.0; 3], &mut Scratch::default());
        assert!(v.iter().all(|d| d.is_infinite()));
    }

    #[test]
    fn single_site_gives_exact_squares() {
        let mut v = vec![f64::INFINITY; 27];
        v[0] = 0.0;
        squared_edt(&mut v, [3, 3, 3], [3.0, 3.0, 3.0], &mut Scratch::default());
        assert_eq!(v[26], 108.0); // 3 · (2 · 3 mm)²
        assert_eq!(v[1 + 3], 18.0);
    }
}
