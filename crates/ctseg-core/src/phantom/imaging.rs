//! What the scanner adds: partial-volume blur and correlated noise, then int16 HU.

use rand::RngCore;

use super::shapes::Rng;

/// Partial-volume blur and correlated noise, then rounding to int16 HU.
pub(super) fn finish(mut hu: Vec<f32>, shape: [usize; 3], rng: &mut Rng) -> Vec<i16> {
    // White noise blurred with the partial-volume kernel becomes correlated noise of
    // about 11 HU; a little white noise (5 HU) is added after.
    add_noise(&mut hu, rng, 24.0);
    for axis in 0..3 {
        blur_axis(&mut hu, shape, axis);
    }
    add_noise(&mut hu, rng, 5.0);
    hu.iter()
        .map(|&v| v.round().clamp(-1024.0, 3071.0) as i16)
        .collect()
}

/// Add approximately Gaussian noise of standard deviation `sd`: the number of set
/// bits of a random 64-bit word is binomial (mean 32, sd 4), which is close enough.
/// The words come from a SplitMix64 sequence seeded from the subject's stream (much
/// faster than ChaCha in unoptimised builds).
pub(super) fn add_noise(hu: &mut [f32], rng: &mut Rng, sd: f64) {
    let scale = (sd / 4.0) as f32;
    let mut state = rng.0.next_u64();
    for v in hu.iter_mut() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        *v += (z.count_ones() as f32 - 32.0) * scale;
    }
}

/// Blur along one axis with the kernel `[1, 6, 1] / 8` (edges clamped): partial
/// volume of a point spread about one voxel wide.
pub(super) fn blur_axis(data: &mut [f32], shape: [usize; 3], axis: usize) {
    let n = shape[axis];
    if n < 2 || data.is_empty() {
        return;
    }
    let stride = [1, shape[0], shape[0] * shape[1]][axis];
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    let strides = [1, shape[0], shape[0] * shape[1]];
    let mut line = vec![0f32; n];
    for b in 0..shape[others[1]] {
        for a in 0..shape[others[0]] {
            let start = a * strides[others[0]] + b * strides[others[1]];
            for (t, v) in line.iter_mut().enumerate() {
                *v = data[start + t * stride];
            }
            for t in 0..n {
                let prev = line[t.saturating_sub(1)];
                let next = line[(t + 1).min(n - 1)];
                data[start + t * stride] = 0.125 * prev + 0.75 * line[t] + 0.125 * next;
            }
        }
    }
}
