//! Seconds per layer of the U-Net's 3×3 convolutions at batch 2 (forward, input
//! gradient, weight gradient; the best of 5), to set beside PyTorch's
//! (`benches/pytorch/conv_layers.py`). `cargo run --release -p ctseg-cpu-conv --example
//! layers` (threads: `RAYON_NUM_THREADS`).

use std::time::Instant;

use ctseg_cpu_conv::{ConvShape, conv2d, conv2d_input_grad, conv2d_weight_grad};

fn best(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() -> Result<(), ctseg_cpu_conv::ConvError> {
    let layers = [
        (1, 32, 256),
        (32, 32, 256),
        (64, 32, 256),
        (32, 64, 128),
        (64, 64, 128),
        (128, 128, 64),
        (256, 256, 32),
        (512, 512, 16),
    ];
    println!("| layer | forward s | input grad s | weight grad s |");
    println!("| --- | --- | --- | --- |");
    let (mut tf, mut tx, mut tw) = (0.0, 0.0, 0.0);
    for (ci, co, s) in layers {
        let shape = ConvShape {
            batch: 2,
            in_channels: ci,
            out_channels: co,
            input: [s, s],
            kernel: [3, 3],
            padding: [1, 1, 1, 1],
        };
        let x = vec![0.5f32; 2 * ci * s * s];
        let w = vec![0.01f32; co * ci * 9];
        let dy = vec![0.1f32; 2 * co * s * s];
        let f = best(|| {
            std::hint::black_box(conv2d(&shape, &x, &w, None).ok());
        });
        let dx = best(|| {
            std::hint::black_box(conv2d_input_grad(&shape, &dy, &w).ok());
        });
        let dw = best(|| {
            std::hint::black_box(conv2d_weight_grad(&shape, &x, &dy).ok());
        });
        conv2d(&shape, &x, &w, None)?;
        println!("| {ci}→{co} @{s}² | {f:.4} | {dx:.4} | {dw:.4} |");
        (tf, tx, tw) = (tf + f, tx + dx, tw + dw);
    }
    println!("| sum | {tf:.4} | {tx:.4} | {tw:.4} |");
    element_wise()
}

/// The BCE's log σ over batch 2's logits (117 × 256² per image) against libm's
/// `expf`/`log1pf` on one thread, and the first 2×2 max pooling (2 × 32 × 256²).
fn element_wise() -> Result<(), ctseg_cpu_conv::ConvError> {
    use ctseg_cpu_conv::{PoolShape, activation, pool};
    let logits: Vec<f32> = (0..2 * 117 * 256 * 256)
        .map(|i| ((i % 2001) as f32 - 1000.0) * 0.01)
        .collect();
    let mut out = vec![0f32; logits.len()];
    let libm = best(|| {
        for (o, &x) in out.iter_mut().zip(&logits) {
            *o = x.min(0.0) - (-x.abs()).exp().ln_1p();
        }
        std::hint::black_box(&out);
    });
    let kernel = best(|| {
        for (o, &x) in out.iter_mut().zip(&logits) {
            *o = activation::log_sigmoid(x);
        }
        std::hint::black_box(&out);
    });
    let mut wide = logits.clone();
    let dispatched = best(|| {
        wide.copy_from_slice(&logits);
        ctseg_cpu_conv::simd::map_inplace(&mut wide, &activation::log_sigmoid);
        std::hint::black_box(&wide);
    });
    println!();
    println!(
        "| log σ over 2 × 117 × 256² (1 thread) | libm {libm:.4} s | ctseg {kernel:.4} s | ctseg, widest SIMD {dispatched:.4} s (with a copy) |"
    );
    let shape = PoolShape {
        planes: 2 * 32,
        input: [256, 256],
    };
    let x = &logits[..2 * 32 * 256 * 256];
    let with = best(|| {
        std::hint::black_box(pool::max_pool_2x2_with_indices(&shape, x).ok());
    });
    let without = best(|| {
        std::hint::black_box(pool::max_pool_2x2(&shape, x).ok());
    });
    println!("| 2×2 max pool, 2 × 32 × 256² | with indices {with:.4} s | without {without:.4} s |");
    Ok(())
}
