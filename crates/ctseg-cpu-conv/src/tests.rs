//! The kernels against direct loops over the definition of a convolution and of its
//! gradients, on odd shapes (tiles ending mid-image, one-pixel rows, 1×1 and 5×3
//! kernels, asymmetric padding).

use super::*;

/// A deterministic pseudo-random sequence in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
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

/// Every (n, o, y, x, c, i, j) whose input pixel is inside the image.
fn for_each_tap(s: &ConvShape, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    let [h, w] = s.input;
    let [ho, wo] = s.output();
    let [kh, kw] = s.kernel;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            for y in 0..ho {
                for x in 0..wo {
                    for c in 0..s.in_channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y + i) as isize - s.padding[0] as isize;
                                let ix = (x + j) as isize - s.padding[2] as isize;
                                if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                    f(n, o, y, x, c, iy as usize * w + ix as usize, i * kw + j);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= 1e-5 * scale * 10.0,
        "{what}: max |Δ| {worst} at scale {scale}"
    );
}

fn check(s: ConvShape) {
    let [h, w] = s.input;
    let [ho, wo] = s.output();
    let [kh, kw] = s.kernel;
    let (ci, co) = (s.in_channels, s.out_channels);
    let x = values(s.batch * ci * h * w, 1);
    let weight = values(co * ci * kh * kw, 2);
    let bias = values(co, 3);
    let dy = values(s.batch * co * ho * wo, 4);

    let mut y_ref = vec![0f32; s.batch * co * ho * wo];
    let mut dx_ref = vec![0f32; x.len()];
    let mut dw_ref = vec![0f32; weight.len()];
    for_each_tap(&s, |n, o, y, xo, c, pixel, tap| {
        let out = ((n * co + o) * ho + y) * wo + xo;
        let input = (n * ci + c) * h * w + pixel;
        let wi = (o * ci + c) * kh * kw + tap;
        y_ref[out] += x[input] * weight[wi];
        dx_ref[input] += dy[out] * weight[wi];
        dw_ref[wi] += dy[out] * x[input];
    });
    for (i, v) in y_ref.iter_mut().enumerate() {
        *v += bias[(i / (ho * wo)) % co];
    }
    let mut db_ref = vec![0f32; co];
    for (i, v) in dy.iter().enumerate() {
        db_ref[(i / (ho * wo)) % co] += v;
    }

    let what = format!("{s:?}");
    close(
        &conv2d(&s, &x, &weight, Some(&bias)).unwrap(),
        &y_ref,
        &format!("forward {what}"),
    );
    close(
        &conv2d_input_grad(&s, &dy, &weight).unwrap(),
        &dx_ref,
        &format!("dx {what}"),
    );
    close(
        &conv2d_weight_grad(&s, &x, &dy).unwrap(),
        &dw_ref,
        &format!("dw {what}"),
    );
    close(
        &conv2d_bias_grad(&s, &dy).unwrap(),
        &db_ref,
        &format!("db {what}"),
    );
}

#[test]
fn matches_the_definition_on_odd_shapes() {
    let shape = |batch, ci, co, input, kernel, padding| ConvShape {
        batch,
        in_channels: ci,
        out_channels: co,
        input,
        kernel,
        padding,
    };
    // The U-Net's 3×3 "same" convolution, several tiles per image (a 600-pixel-wide
    // row is one tile by itself; 7 rows of 80 pixels cut mid-image).
    check(shape(2, 3, 4, [9, 80], [3, 3], [1, 1, 1, 1]));
    check(shape(1, 2, 3, [2, 600], [3, 3], [1, 1, 1, 1]));
    // The 1×1 head, a single pixel, no padding.
    check(shape(2, 5, 3, [4, 4], [1, 1], [0, 0, 0, 0]));
    check(shape(1, 1, 1, [1, 1], [1, 1], [0, 0, 0, 0]));
    // Asymmetric kernel and padding, "valid" output.
    check(shape(2, 2, 3, [7, 6], [5, 3], [2, 1, 0, 2]));
    check(shape(1, 3, 2, [6, 5], [3, 3], [0, 0, 0, 0]));
    // Many tiles (7 per image) and few, on 1, 2 and 3 threads: the weight gradient
    // sums per-job accumulators when tiles are many, one accumulator when few.
    for threads in [1, 2, 3] {
        on_threads(threads, || {
            check(shape(2, 2, 3, [40, 80], [3, 3], [1, 1, 1, 1]));
            check(shape(1, 3, 2, [13, 80], [3, 3], [1, 1, 1, 1]));
        });
    }
}

/// Run `f` on a rayon pool of `threads` threads.
fn on_threads(threads: usize, f: impl FnOnce() + Send) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f);
}

#[test]
fn bad_shapes_and_lengths_are_errors() {
    let s = ConvShape {
        batch: 1,
        in_channels: 2,
        out_channels: 2,
        input: [4, 4],
        kernel: [3, 3],
        padding: [1, 1, 1, 1],
    };
    let e = conv2d(&s, &[0.0; 31], &[0.0; 36], None).unwrap_err();
    assert_eq!(
        e,
        ConvError::Length {
            what: "input",
            got: 31,
            expected: 32
        }
    );
    let small = ConvShape {
        input: [1, 1],
        padding: [0, 0, 0, 0],
        ..s
    };
    assert!(matches!(
        conv2d(&small, &[0.0; 2], &[0.0; 36], None),
        Err(ConvError::Shape(_))
    ));
    let zero = ConvShape { batch: 0, ..s };
    assert!(matches!(
        conv2d(&zero, &[], &[0.0; 36], None),
        Err(ConvError::Shape(_))
    ));
}

/// The transposed convolution (stride = kernel) against its definition:
/// `y[n, o, i·kh + a, j·kw + b] = Σ_c x[n, c, i, j] · W[c, o, a, b] + bias[o]`.
fn check_up(s: UpShape) {
    let [h, w] = s.input;
    let [kh, kw] = s.kernel;
    let [ho, wo] = s.output();
    let (ci, co) = (s.in_channels, s.out_channels);
    let x = values(s.batch * ci * h * w, 5);
    let weight = values(ci * co * kh * kw, 6);
    let bias = values(co, 7);
    let dy = values(s.batch * co * ho * wo, 8);
    let mut y_ref = vec![0f32; dy.len()];
    let mut dx_ref = vec![0f32; x.len()];
    let mut dw_ref = vec![0f32; weight.len()];
    let mut db_ref = vec![0f32; co];
    for n in 0..s.batch {
        for o in 0..co {
            for i in 0..h {
                for j in 0..w {
                    for a in 0..kh {
                        for b in 0..kw {
                            let out = ((n * co + o) * ho + i * kh + a) * wo + j * kw + b;
                            y_ref[out] += bias[o];
                            db_ref[o] += dy[out];
                            for c in 0..ci {
                                let input = ((n * ci + c) * h + i) * w + j;
                                let wi = ((c * co + o) * kh + a) * kw + b;
                                y_ref[out] += x[input] * weight[wi];
                                dx_ref[input] += dy[out] * weight[wi];
                                dw_ref[wi] += dy[out] * x[input];
                            }
                        }
                    }
                }
            }
        }
    }
    let what = format!("{s:?}");
    close(
        &transpose::conv_transpose2d(&s, &x, &weight, Some(&bias)).unwrap(),
        &y_ref,
        &format!("up forward {what}"),
    );
    close(
        &transpose::conv_transpose2d_input_grad(&s, &dy, &weight).unwrap(),
        &dx_ref,
        &format!("up dx {what}"),
    );
    close(
        &transpose::conv_transpose2d_weight_grad(&s, &x, &dy).unwrap(),
        &dw_ref,
        &format!("up dw {what}"),
    );
    close(
        &transpose::conv_transpose2d_bias_grad(&s, &dy).unwrap(),
        &db_ref,
        &format!("up db {what}"),
    );
}

#[test]
fn transposed_convolution_matches_the_definition() {
    let up = |batch, ci, co, input, kernel| UpShape {
        batch,
        in_channels: ci,
        out_channels: co,
        input,
        kernel,
    };
    // The U-Net's 2×2 stride-2 upsampling: several tiles per image (7 rows of 80
    // pixels cut mid-image), a row wider than a tile, one pixel.
    check_up(up(2, 4, 3, [9, 80], [2, 2]));
    check_up(up(1, 2, 3, [2, 600], [2, 2]));
    check_up(up(2, 3, 2, [1, 1], [2, 2]));
    for threads in [1, 2, 3] {
        on_threads(threads, || {
            check_up(up(2, 2, 3, [40, 80], [2, 2]));
            check_up(up(1, 3, 2, [13, 80], [2, 2]));
        });
    }
    // Other stride = kernel shapes.
    check_up(up(2, 3, 2, [5, 4], [3, 2]));
    check_up(up(1, 1, 1, [3, 3], [1, 1]));
    assert!(matches!(
        transpose::conv_transpose2d(&up(1, 1, 1, [0, 3], [2, 2]), &[], &[0.0; 4], None),
        Err(ConvError::Shape(_))
    ));
    assert!(matches!(
        transpose::conv_transpose2d(&up(1, 1, 1, [2, 2], [2, 2]), &[0.0; 4], &[0.0; 3], None),
        Err(ConvError::Length { what: "weight", .. })
    ));
}

/// BatchNorm with batch statistics, in f64 by its definition: `Σ dy · y` as the loss
/// its gradients are checked on by central differences.
fn batch_norm_f64(s: &NormShape, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    let count = (s.batch * s.spatial) as f64;
    let mut y = vec![0f64; x.len()];
    for c in 0..s.channels {
        let idx = |n: usize, p: usize| (n * s.channels + c) * s.spatial + p;
        let all = || (0..s.batch).flat_map(move |n| (0..s.spatial).map(move |p| idx(n, p)));
        let mean = all().map(|i| x[i]).sum::<f64>() / count;
        let var = all().map(|i| (x[i] - mean).powi(2)).sum::<f64>() / count;
        for i in all() {
            y[i] = (x[i] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
        }
    }
    y
}

#[test]
fn batch_norm_training_matches_the_definition_and_its_gradients() {
    let s = NormShape {
        batch: 2,
        channels: 3,
        spatial: 7,
    };
    let eps = 1e-5;
    // A large offset: the centred sums must not lose it to cancellation.
    let x: Vec<f32> = values(s.batch * s.channels * s.spatial, 9)
        .iter()
        .map(|v| v * 2.0 + 30.0)
        .collect();
    let gamma = values(3, 10);
    let beta = values(3, 11);
    let dy = values(x.len(), 12);
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (xd, gd, bd, dyd) = (wide(&x), wide(&gamma), wide(&beta), wide(&dy));
    let loss = |x: &[f64], g: &[f64], b: &[f64]| {
        batch_norm_f64(&s, x, g, b, eps)
            .iter()
            .zip(&dyd)
            .map(|(y, d)| y * d)
            .sum::<f64>()
    };
    let numeric = |v: &[f64], which: usize| -> Vec<f32> {
        (0..v.len())
            .map(|i| {
                let h = 1e-5;
                let (mut up, mut down) = (v.to_vec(), v.to_vec());
                up[i] += h;
                down[i] -= h;
                let f = |t: &[f64]| match which {
                    0 => loss(t, &gd, &bd),
                    1 => loss(&xd, t, &bd),
                    _ => loss(&xd, &gd, t),
                };
                ((f(&up) - f(&down)) / (2.0 * h)) as f32
            })
            .collect()
    };

    let train = norm::batch_norm_train(&s, &x, &gamma, &beta, eps).unwrap();
    let y_ref: Vec<f32> = batch_norm_f64(&s, &xd, &gd, &bd, eps)
        .iter()
        .map(|&v| v as f32)
        .collect();
    close(&train.output, &y_ref, "bn forward");
    let grads =
        norm::batch_norm_train_backward(&s, &x, &gamma, &train.mean, &train.variance, eps, &dy)
            .unwrap();
    let loose = |a: &[f32], b: &[f32], what: &str| {
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-3 * scale,
            "{what}: max |Δ| {worst} at scale {scale}"
        );
    };
    loose(&grads.x, &numeric(&xd, 0), "bn dx");
    loose(&grads.gamma, &numeric(&gd, 1), "bn dgamma");
    loose(&grads.beta, &numeric(&bd, 2), "bn dbeta");

    // Inference with the batch's own statistics gives the training output.
    let inference =
        norm::batch_norm(&s, &x, &gamma, &beta, &train.mean, &train.variance, eps).unwrap();
    close(&inference, &train.output, "bn inference");
    assert!(matches!(
        norm::batch_norm_train(&s, &x[1..], &gamma, &beta, eps),
        Err(ConvError::Length { what: "input", .. })
    ));
}

/// 2×2 max pooling by its definition: the window scanned row-major, a larger value or
/// a NaN replacing the current maximum.
fn max_pool_definition(s: &PoolShape, x: &[f32]) -> (Vec<f32>, Vec<i64>) {
    let [h, w] = s.input;
    let [ho, wo] = s.output();
    let (mut out, mut idx) = (Vec::new(), Vec::new());
    for p in 0..s.planes {
        for r in 0..ho {
            for c in 0..wo {
                let mut best: Option<(f32, usize)> = None;
                for i in 0..2 {
                    for j in 0..2 {
                        let at = (2 * r + i) * w + 2 * c + j;
                        let v = x[p * h * w + at];
                        if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
                            best = Some((v, at));
                        }
                    }
                }
                let (v, at) = best.expect("a 2×2 window");
                out.push(v);
                idx.push(at as i64);
            }
        }
    }
    (out, idx)
}

#[test]
fn max_pool_matches_the_definition_with_ties_and_nans() {
    for (planes, input) in [(3, [6, 8]), (2, [5, 7]), (1, [2, 2]), (4, [3, 64])] {
        let s = PoolShape { planes, input };
        let len = planes * input[0] * input[1];
        // Few distinct values, so windows have ties; some NaNs.
        let x: Vec<f32> = (0..len)
            .map(|i| match i % 17 {
                5 => f32::NAN,
                k => ((k * 7) % 4) as f32 - 1.0,
            })
            .collect();
        let (want, want_idx) = max_pool_definition(&s, &x);
        let (got, got_idx) = pool::max_pool_2x2_with_indices(&s, &x).unwrap();
        let plain = pool::max_pool_2x2(&s, &x).unwrap();
        assert_eq!(got_idx, want_idx, "indices {s:?}");
        for ((g, p), w) in got.iter().zip(&plain).zip(&want) {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{s:?}"
            );
            assert!(
                p.to_bits() == w.to_bits() || (p.is_nan() && w.is_nan()),
                "{s:?}"
            );
        }
    }
    let one_row = PoolShape {
        planes: 1,
        input: [1, 4],
    };
    assert!(matches!(
        pool::max_pool_2x2(&one_row, &[0.0; 4]),
        Err(ConvError::Shape(_))
    ));
    let s = PoolShape {
        planes: 1,
        input: [2, 2],
    };
    assert!(matches!(
        pool::max_pool_2x2(&s, &[0.0; 3]),
        Err(ConvError::Length { .. })
    ));
}
