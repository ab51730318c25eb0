//! Augmentation throughput on 256×256 slices (one thread): the data pipeline must
//! never be the bottleneck of training. `cargo bench --bench augment` (a release
//! build: the first one compiles Burn in release, 20–40 min on 2 cores).

use criterion::{Criterion, criterion_group, criterion_main};
use ctseg_ml::augment::{AugmentConfig, augment};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn bench(c: &mut Criterion) {
    let (h, w) = (256, 256);
    let image0: Vec<f32> = (0..h * w).map(|i| (i % w) as f32 / w as f32).collect();
    let labels0: Vec<u8> = (0..h * w)
        .map(|i| {
            if (i / w) % 64 < 32 && (i % w) % 64 < 32 {
                5
            } else {
                0
            }
        })
        .collect();
    let mut everything = AugmentConfig::default();
    everything.rotate.p = 1.0;
    everything.shift_scale_rotate.p = 1.0;
    everything.elastic.p = 1.0;
    everything.brightness.p = 1.0;
    everything.contrast.p = 1.0;
    everything.noise.p = 1.0;
    everything.dropout.p = 1.0;
    for (name, config) in [
        ("default", AugmentConfig::default()),
        ("everything", everything),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (mut image, mut labels) = (image0.clone(), labels0.clone());
        c.bench_function(&format!("augment 256² {name}"), |b| {
            b.iter(|| {
                image.copy_from_slice(&image0);
                labels.copy_from_slice(&labels0);
                augment(&mut image, &mut labels, h, w, &config, &mut rng);
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
