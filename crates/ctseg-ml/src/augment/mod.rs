//! Seeded 2-D data augmentation of training samples: one axial slice `image`
//! (`h·w` values in `[0, 1]`, row-major, x fastest) and its label map `labels`
//! (same size, 0 = background, 1..=117 structures).
//!
//! Geometric transforms (rotation, flips, shift-scale-rotate, elastic deformation)
//! are composed into one inverse affine map plus an optional displacement field and
//! applied in a single resampling pass, identical for image and labels: bilinear
//! for the image, nearest-neighbour for the labels (so no label value is ever
//! invented). Samples that fall outside the slice read [`IMAGE_FILL`] /
//! [`LABEL_FILL`]. Intensity transforms (brightness, contrast, Gaussian noise) and
//! coarse dropout then touch the image only.
//!
//! The order is fixed (geometry, brightness, contrast, noise, clamp, dropout), and
//! every random draw comes from the caller's generator, so a seeded generator
//! (e.g. `rand_chacha::ChaCha8Rng::seed_from_u64`) reproduces a sample exactly.
//!
//! Defaults follow nnU-Net / albumentations practice and are cheap enough that the
//! data pipeline never limits training (several thousand 256×256 slices per second
//! per core in release builds).

mod config;
mod noise;
mod resample;

pub use config::*;

use rand::Rng;

use noise::add_gaussian_noise;
use resample::*;

/// Augments one slice in place: `image` and `labels` hold `h·w` values, row-major
/// (x fastest).
///
/// Order: one geometric resampling (rotation + shift-scale-rotate + flips composed
/// into a single affine map, plus the elastic displacement when drawn; bilinear for
/// the image, nearest for the labels, [`IMAGE_FILL`]/[`LABEL_FILL`] outside), then
/// brightness, contrast, Gaussian noise, clamping to `[0, 1]` and coarse dropout
/// (image only). Each transform is drawn with its own probability; when
/// `config.enabled` is `false` nothing is changed and `rng` is not used.
///
/// The output depends only on the inputs and the generator's state, so a seeded
/// generator makes it reproducible. Label values in the output are a subset of the
/// input's values plus [`LABEL_FILL`] (where the slice is moved out of view).
///
/// # Panics
/// If `image.len()` or `labels.len()` differs from `h * w`, or (when a geometric
/// transform other than a flip is drawn) if `h` or `w` is 2^22 or more or the slice
/// has about 2^32 pixels or more.
pub fn augment(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    config: &AugmentConfig,
    rng: &mut impl Rng,
) {
    let n = h.checked_mul(w).expect("h * w overflows usize");
    assert_eq!(
        image.len(),
        n,
        "image has {} values, h*w = {n}",
        image.len()
    );
    assert_eq!(
        labels.len(),
        n,
        "labels have {} values, h*w = {n}",
        labels.len()
    );
    if !config.enabled {
        return;
    }

    // Geometry: draw every parameter first (fixed order), then resample once.
    let rot = coin(rng, config.rotate.p);
    let mut angle_deg = if rot {
        symmetric(rng, config.rotate.limit_deg)
    } else {
        0.0
    };
    let hflip = coin(rng, config.hflip.p);
    let vflip = coin(rng, config.vflip.p);
    let ssr_cfg = &config.shift_scale_rotate;
    let ssr = coin(rng, ssr_cfg.p);
    let (mut scale, mut shift_x, mut shift_y) = (1.0, 0.0, 0.0);
    if ssr {
        angle_deg += symmetric(rng, ssr_cfg.rotate_limit_deg);
        scale = uniform(rng, ssr_cfg.scale_min, ssr_cfg.scale_max);
        shift_x = symmetric(rng, ssr_cfg.shift_limit) * w as f32;
        shift_y = symmetric(rng, ssr_cfg.shift_limit) * h as f32;
    }
    let elastic = coin(rng, config.elastic.p)
        .then(|| ElasticField::random(h, w, config.elastic.alpha, config.elastic.sigma, rng));
    if n > 0 {
        if rot || ssr || elastic.is_some() {
            let map = Affine::inverse_map(h, w, angle_deg, scale, shift_x, shift_y, hflip, vflip);
            resample(image, labels, h, w, &map, elastic.as_ref());
        } else {
            flip_in_place(image, labels, h, w, hflip, vflip);
        }
    }

    // Intensity (image only).
    if coin(rng, config.brightness.p) {
        let delta = symmetric(rng, config.brightness.limit);
        image.iter_mut().for_each(|v| *v += delta);
    }
    if coin(rng, config.contrast.p) {
        let c = uniform(rng, config.contrast.min, config.contrast.max);
        if n > 0 {
            let mean = (image.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
            image.iter_mut().for_each(|v| *v = mean + c * (*v - mean));
        }
    }
    if coin(rng, config.noise.p) {
        let sd = uniform(rng, 0.0, config.noise.max_sd);
        add_gaussian_noise(image, sd, rng);
    }
    if config.clamp {
        image.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }

    // Coarse dropout (image only; labels kept).
    let d = &config.dropout;
    if coin(rng, d.p) && n > 0 {
        let holes = uniform_u32(rng, d.min_holes, d.max_holes);
        for _ in 0..holes {
            let hh = (uniform_u32(rng, d.min_size, d.max_size) as usize).min(h);
            let hw = (uniform_u32(rng, d.min_size, d.max_size) as usize).min(w);
            let y0 = rng.random_range(0..=h - hh);
            let x0 = rng.random_range(0..=w - hw);
            for row in image.chunks_exact_mut(w).skip(y0).take(hh) {
                row[x0..x0 + hw].fill(DROPOUT_FILL);
            }
        }
    }
}

/// True with probability `p` (always draws one number).
fn coin(rng: &mut impl Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// Uniform in `[lo, hi)` (any order of the bounds; never panics).
fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Uniform in `[-limit, limit)`.
pub(super) fn symmetric(rng: &mut impl Rng, limit: f32) -> f32 {
    uniform(rng, -limit, limit)
}

/// Uniform integer in `[lo, hi]`; `lo` when the range is empty.
fn uniform_u32(rng: &mut impl Rng, lo: u32, hi: u32) -> u32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

#[cfg(test)]
mod tests {
    use super::noise::*;
    use super::resample::*;
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const H: usize = 96;
    const W: usize = 128;

    /// Everything off (but enabled): each test switches on what it checks.
    fn nothing() -> AugmentConfig {
        AugmentConfig {
            enabled: true,
            clamp: false,
            rotate: RotateConfig {
                p: 0.0,
                ..Default::default()
            },
            hflip: FlipConfig { p: 0.0 },
            vflip: FlipConfig { p: 0.0 },
            shift_scale_rotate: ShiftScaleRotateConfig {
                p: 0.0,
                ..Default::default()
            },
            elastic: ElasticConfig {
                p: 0.0,
                ..Default::default()
            },
            brightness: BrightnessConfig {
                p: 0.0,
                ..Default::default()
            },
            contrast: ContrastConfig {
                p: 0.0,
                ..Default::default()
            },
            noise: NoiseConfig {
                p: 0.0,
                ..Default::default()
            },
            dropout: DropoutConfig {
                p: 0.0,
                ..Default::default()
            },
        }
    }

    /// Heavy geometry, no intensity transforms, no dropout.
    fn heavy_geometry() -> AugmentConfig {
        let mut c = nothing();
        c.rotate = RotateConfig {
            p: 1.0,
            limit_deg: 30.0,
        };
        c.hflip.p = 0.5;
        c.vflip.p = 0.5;
        c.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.1,
            scale_min: 0.8,
            scale_max: 1.25,
            rotate_limit_deg: 30.0,
        };
        c.elastic.p = 1.0;
        c
    }

    /// Axis-aligned rectangles of many labels (1..=117) on background, some
    /// touching each other, none touching the border.
    fn rect_labels(h: usize, w: usize) -> Vec<u8> {
        let mut l = vec![0u8; h * w];
        let mut label = 1u8;
        for (i, y0) in (4..h - 16).step_by(11).enumerate() {
            for (j, x0) in (4..w - 16).step_by(13).enumerate() {
                let (rh, rw) = (6 + (i + j) % 6, 7 + (i * 3 + j) % 7);
                for y in y0..(y0 + rh).min(h - 4) {
                    for x in x0..(x0 + rw).min(w - 4) {
                        l[y * w + x] = label;
                    }
                }
                label = if label >= 117 { 1 } else { label + 1 };
            }
        }
        // One large structure with the highest label.
        for y in h / 3..h / 3 + 20 {
            for x in w / 4..w / 4 + 40 {
                l[y * w + x] = 117;
            }
        }
        l
    }

    fn image_of(labels: &[u8]) -> Vec<f32> {
        labels.iter().map(|&l| l as f32 / 117.0).collect()
    }

    fn gradient_image(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| ((i % w) as f32 * 0.7 + (i / w) as f32 * 0.3) / (w + h) as f32)
            .collect()
    }

    #[test]
    fn image_and_labels_stay_aligned() {
        let config = heavy_geometry();
        let labels0 = rect_labels(H, W);
        let image0 = image_of(&labels0);
        let mut checked = 0usize;
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(&mut img, &mut lab, H, W, &config, &mut rng);
            assert_ne!(
                lab, labels0,
                "seed {seed}: geometry did not change anything"
            );
            for y in 2..H - 2 {
                for x in 2..W - 2 {
                    let l = lab[y * W + x];
                    if l == 0 {
                        continue;
                    }
                    let uniform =
                        (y - 2..=y + 2).all(|yy| (x - 2..=x + 2).all(|xx| lab[yy * W + xx] == l));
                    if uniform {
                        let v = img[y * W + x];
                        let want = l as f32 / 117.0;
                        assert!(
                            (v - want).abs() < 1e-5,
                            "seed {seed} ({x}, {y}): label {l} but image {v} (want {want})"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} pixels checked");
    }

    #[test]
    fn same_seed_same_result() {
        let mut config = AugmentConfig::default();
        config.elastic.p = 0.5;
        config.dropout.p = 0.5;
        config.noise.p = 0.5;
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        for seed in [1, 7, 42] {
            let run = || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (mut img, mut lab) = (image0.clone(), labels0.clone());
                let mut out = Vec::new();
                for _ in 0..5 {
                    augment(&mut img, &mut lab, H, W, &config, &mut rng);
                    out.push((img.clone(), lab.clone()));
                }
                out
            };
            let (a, b) = (run(), run());
            assert!(a == b, "seed {seed} not reproducible");
        }
        // Different seeds differ.
        let mut r1 = ChaCha8Rng::seed_from_u64(1);
        let mut r2 = ChaCha8Rng::seed_from_u64(2);
        let (mut i1, mut l1) = (image0.clone(), labels0.clone());
        let (mut i2, mut l2) = (image0.clone(), labels0.clone());
        let heavy = heavy_geometry();
        augment(&mut i1, &mut l1, H, W, &heavy, &mut r1);
        augment(&mut i2, &mut l2, H, W, &heavy, &mut r2);
        assert_ne!(i1, i2);
    }

    fn mirror_x(v: &[f32], h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| v[(i / w) * w + (w - 1 - i % w)])
            .collect()
    }

    fn mirror_y(v: &[f32], h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| v[(h - 1 - i / w) * w + i % w]).collect()
    }

    #[test]
    fn flips_are_exact_mirrors() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let lab_f: Vec<f32> = labels0.iter().map(|&l| l as f32).collect();
        for (hf, vf) in [(true, false), (false, true), (true, true)] {
            let mut want_img = image0.clone();
            let mut want_lab = lab_f.clone();
            if hf {
                want_img = mirror_x(&want_img, H, W);
                want_lab = mirror_x(&want_lab, H, W);
            }
            if vf {
                want_img = mirror_y(&want_img, H, W);
                want_lab = mirror_y(&want_lab, H, W);
            }
            let want_lab: Vec<u8> = want_lab.iter().map(|&v| v as u8).collect();
            let mut config = nothing();
            config.hflip.p = if hf { 1.0 } else { 0.0 };
            config.vflip.p = if vf { 1.0 } else { 0.0 };
            // The fast path (flips only) ...
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(3),
            );
            assert_eq!(img, want_img, "fast path {hf} {vf}");
            assert_eq!(lab, want_lab, "fast path {hf} {vf}");
            // ... and the resampling path with an identity rotation/zoom/shift.
            config.rotate = RotateConfig {
                p: 1.0,
                limit_deg: 0.0,
            };
            config.shift_scale_rotate = ShiftScaleRotateConfig {
                p: 1.0,
                shift_limit: 0.0,
                scale_min: 1.0,
                scale_max: 1.0,
                rotate_limit_deg: 0.0,
            };
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(3),
            );
            assert_eq!(img, want_img, "resampled {hf} {vf}");
            assert_eq!(lab, want_lab, "resampled {hf} {vf}");
        }
        // Odd sizes (a middle row/column that stays put).
        let (h, w) = (5, 7);
        let image0: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        let mut img = image0.clone();
        let mut lab: Vec<u8> = (0..h * w).map(|i| i as u8).collect();
        let mut config = nothing();
        config.hflip.p = 1.0;
        config.vflip.p = 1.0;
        augment(
            &mut img,
            &mut lab,
            h,
            w,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert_eq!(img, mirror_y(&mirror_x(&image0, h, w), h, w));
        assert_eq!(lab.iter().map(|&v| v as f32).collect::<Vec<_>>(), img);
    }

    #[test]
    fn disabled_or_all_off_changes_nothing() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let mut all_on = heavy_geometry();
        all_on.brightness.p = 1.0;
        all_on.contrast.p = 1.0;
        all_on.noise.p = 1.0;
        all_on.dropout.p = 1.0;
        all_on.enabled = false;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut img, mut lab) = (image0.clone(), labels0.clone());
        augment(&mut img, &mut lab, H, W, &all_on, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);
        // The generator was not used.
        assert_eq!(
            rng.random::<u64>(),
            ChaCha8Rng::seed_from_u64(5).random::<u64>()
        );

        let config = nothing();
        augment(&mut img, &mut lab, H, W, &config, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);

        // Identity geometry through the resampler is exact too.
        let mut identity = nothing();
        identity.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.0,
            scale_min: 1.0,
            scale_max: 1.0,
            rotate_limit_deg: 0.0,
        };
        augment(&mut img, &mut lab, H, W, &identity, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);
    }

    #[test]
    fn dropout_changes_image_not_labels() {
        let labels0 = rect_labels(H, W);
        let image0 = vec![0.5f32; H * W];
        let mut config = nothing();
        config.dropout = DropoutConfig {
            p: 1.0,
            min_holes: 2,
            max_holes: 4,
            min_size: 5,
            max_size: 20,
        };
        for seed in 0..10 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(lab, labels0);
            let zeros = img.iter().filter(|&&v| v == DROPOUT_FILL).count();
            assert!(zeros >= 25, "seed {seed}: {zeros} pixels dropped");
            assert!(img.iter().all(|&v| v == 0.5 || v == DROPOUT_FILL));
        }
        // Holes larger than the slice are capped.
        config.dropout.min_size = 500;
        config.dropout.max_size = 1000;
        let (mut img, mut lab) = (vec![0.5f32; 6 * 4], vec![1u8; 6 * 4]);
        augment(
            &mut img,
            &mut lab,
            6,
            4,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert!(img.iter().all(|&v| v == DROPOUT_FILL));
        assert!(lab.iter().all(|&v| v == 1));
    }

    #[test]
    fn intensity_transforms_leave_labels_and_clamp() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let mut config = nothing();
        config.brightness = BrightnessConfig { p: 1.0, limit: 0.5 };
        config.contrast = ContrastConfig {
            p: 1.0,
            min: 0.5,
            max: 2.0,
        };
        config.noise = NoiseConfig {
            p: 1.0,
            max_sd: 0.2,
        };
        config.clamp = true;
        for seed in 0..5 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(lab, labels0);
            assert_ne!(img, image0);
            assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Brightness alone shifts every pixel by one constant.
        let mut config = nothing();
        config.brightness = BrightnessConfig { p: 1.0, limit: 0.1 };
        let mut img = image0.clone();
        let mut lab = labels0.clone();
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        let delta = img[0] - image0[0];
        assert!(delta.abs() <= 0.1 && delta != 0.0);
        assert!(
            img.iter()
                .zip(&image0)
                .all(|(a, b)| (a - b - delta).abs() < 1e-6)
        );
        // Contrast alone keeps the mean.
        let mut config = nothing();
        config.contrast = ContrastConfig {
            p: 1.0,
            min: 0.5,
            max: 0.5,
        };
        let mut img = image0.clone();
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean(&img) - mean(&image0)).abs() < 1e-5);
    }

    #[test]
    fn gaussian_noise_has_the_right_spread() {
        let mut img = vec![0.0f32; 100_001];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        add_gaussian_noise(&mut img, 0.5, &mut rng);
        let n = img.len() as f64;
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "sd {}", var.sqrt());
        assert!(img.iter().all(|v| v.is_finite()));
        assert!(img[100_000] != 0.0, "odd tail left out");
    }

    #[test]
    fn labels_are_a_subset_of_the_input() {
        let values = [0u8, 3, 17, 64, 117];
        let mut rng = ChaCha8Rng::seed_from_u64(123);
        let labels0: Vec<u8> = (0..H * W)
            .map(|_| values[rng.random_range(0..values.len())])
            .collect();
        let image0 = image_of(&labels0);
        let mut config = heavy_geometry();
        config.brightness.p = 1.0;
        config.noise.p = 1.0;
        config.dropout.p = 1.0;
        for seed in 0..10 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert!(lab.iter().all(|l| values.contains(l)), "seed {seed}");
        }
        // Without background in the input, only the fill value can be new.
        let labels1 = vec![42u8; H * W];
        let mut lab = labels1.clone();
        let mut img = image_of(&labels1);
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert!(lab.iter().all(|&l| l == 42 || l == LABEL_FILL));
    }

    #[test]
    fn elastic_field_has_simard_statistics() {
        // Displacement sd of alpha · G_sigma * U(-1, 1): alpha / (2·sqrt(3π)·sigma).
        for (sigma, alpha) in [(2.0f32, 40.0f32), (10.0, 150.0), (16.0, 300.0)] {
            let want = alpha / (2.0 * (3.0 * std::f32::consts::PI).sqrt() * sigma);
            let mut rng = ChaCha8Rng::seed_from_u64(sigma as u64);
            let mut sq = 0.0f64;
            let mut count = 0usize;
            for _ in 0..20 {
                let f = ElasticField::random(256, 256, alpha, sigma, &mut rng);
                for v in f.dx.iter().chain(&f.dy) {
                    sq += (*v as f64).powi(2);
                    count += 1;
                }
            }
            let sd = (sq / count as f64).sqrt() as f32;
            assert!(
                (sd / want - 1.0).abs() < 0.1,
                "sigma {sigma}: sd {sd} px, want about {want}"
            );
        }
    }

    #[test]
    fn zoom_keeps_the_centre_fixed() {
        // A zoom of 2 keeps the centre pixel and doubles distances from it.
        let (h, w) = (33, 33);
        let mut labels0 = vec![0u8; h * w];
        labels0[16 * w + 16] = 9; // centre
        labels0[16 * w + 20] = 5; // 4 px right of the centre
        let mut config = nothing();
        config.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.0,
            scale_min: 2.0,
            scale_max: 2.0,
            rotate_limit_deg: 0.0,
        };
        let mut lab = labels0.clone();
        let mut img = image_of(&labels0);
        augment(
            &mut img,
            &mut lab,
            h,
            w,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert_eq!(lab[16 * w + 16], 9);
        assert_eq!(lab[16 * w + 24], 5);
        assert_eq!(lab[16 * w + 12], 0);
    }

    #[test]
    fn validate_catches_bad_settings() {
        assert!(AugmentConfig::default().validate().is_ok());
        assert!(heavy_geometry().validate().is_ok());
        let mut c = AugmentConfig::default();
        c.rotate.p = 1.5;
        c.shift_scale_rotate.scale_min = 0.0;
        c.elastic.sigma = -1.0;
        c.dropout.min_size = 40;
        let msg = c.validate().unwrap_err().to_string();
        for key in ["rotate.p", "scale_min", "elastic.sigma", "dropout.min_size"] {
            assert!(msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn toml_round_trip() {
        let default = AugmentConfig::default();
        let text = toml::to_string(&default).unwrap();
        assert!(text.contains("shift_limit = 0.0625"), "{text}");
        assert!(text.contains("[vflip]"), "{text}");
        assert_eq!(toml::from_str::<AugmentConfig>(&text).unwrap(), default);

        let mut custom = heavy_geometry();
        custom.dropout.max_holes = 3;
        custom.noise.max_sd = 0.05;
        let text = toml::to_string(&custom).unwrap();
        assert_eq!(toml::from_str::<AugmentConfig>(&text).unwrap(), custom);

        // Partial tables keep the defaults of what they do not name.
        let partial: AugmentConfig =
            toml::from_str("enabled = false\n[elastic]\np = 0.5\n[vflip]\np = 0.1\n").unwrap();
        let mut want = AugmentConfig::disabled();
        want.elastic.p = 0.5;
        want.vflip.p = 0.1;
        assert_eq!(partial, want);
        assert_eq!(toml::from_str::<AugmentConfig>("").unwrap(), default);
        // Unknown keys are rejected.
        assert!(toml::from_str::<AugmentConfig>("[rotate]\nlimit = 3.0\n").is_err());
        assert!(toml::from_str::<AugmentConfig>("rotation = 3.0\n").is_err());
    }

    #[test]
    fn degenerate_sizes_do_not_panic() {
        let config = heavy_geometry();
        for (h, w) in [(0, 0), (1, 1), (1, 7), (7, 1), (2, 3)] {
            let mut img = vec![0.5f32; h * w];
            let mut lab = vec![1u8; h * w];
            augment(
                &mut img,
                &mut lab,
                h,
                w,
                &config,
                &mut ChaCha8Rng::seed_from_u64(1),
            );
        }
    }
}
