//! The phantom's anatomy: body wall, organs, vessels, spine, muscles, lung bases
//! and heart apex, each painted with its TotalSegmentator label.

use super::PhantomConfig;
use super::canvas::*;
use super::shapes::*;

/// Paint one subject's anatomy. Canonical frame: x toward the patient's right, y
/// anterior, z superior, mm, the volume spanning ±160 × ±160 × ±80.
pub(super) fn draw_anatomy(config: &PhantomConfig, rng: &mut Rng) -> Canvas {
    let mut cv = Canvas::new(config);

    // Whole-subject variation: body size, position, fat, spine level.
    let fx = rng.range(0.86, 1.04);
    let fy = rng.range(0.82, 1.04);
    let shift = [rng.jit(6.0), rng.jit(6.0), rng.jit(8.0)];
    let pos =
        |x: f64, y: f64, z: f64| -> Point { [x * fx + shift[0], y * fy + shift[1], z + shift[2]] };
    let organ_scale = 0.6 + 0.4 * (fx + fy) / 2.0;
    let size = |rng: &mut Rng, a: f64, b: f64, c: f64| -> Point {
        [
            a * organ_scale * rng.range(0.88, 1.12),
            b * organ_scale * rng.range(0.88, 1.12),
            c * rng.range(0.88, 1.12),
        ]
    };
    let hu_fat = -100.0 + rng.jit(8.0);
    let hu_visceral_fat = -90.0 + rng.jit(8.0);
    let hu_muscle = 45.0 + rng.jit(5.0);

    // Body outline: superellipse (rounder anteriorly, flatter posteriorly), then
    // subcutaneous fat, the muscle wall, and the cavity inside.
    let ax = 140.0 * fx;
    let by = 105.0 * fy;
    let fat_ant = rng.range(8.0, 30.0);
    let fat_lat = fat_ant * rng.range(0.7, 1.0);
    let fat_post = fat_ant * 0.4 + 4.0;
    let wall = rng.range(7.0, 12.0);
    let body_waves = waves(rng, 0.025);
    let body_texture = Texture::new(rng, 0.05);
    {
        let (cx, cy) = (shift[0], shift[1]);
        // Superellipse radius for given insets (the waves are added by the caller).
        let level =
            |x: f64, y: f64, taper: f64, inset_lat: f64, inset_ant: f64, inset_post: f64| {
                let u = (x - cx) / (ax * taper - inset_lat);
                if y >= cy {
                    let v = (y - cy) / (by - inset_ant);
                    (u * u + v * v).sqrt()
                } else {
                    let v = (y - cy) / (by - inset_post);
                    let (u2, v2) = (u * u, v * v);
                    (u2 * u2 + v2 * v2).sqrt().sqrt()
                }
            };
        let texture = body_texture.axis_factors(&cv.axis);
        let [nx, ny, nz] = cv.shape;
        for k in 0..nz {
            let z = cv.axis[2][k];
            let taper = 1.0 + 0.04 * z / 80.0;
            for j in 0..ny {
                let y = cv.axis[1][j];
                let row = nx * (j + ny * k);
                for i in 0..nx {
                    let x = cv.axis[0][i];
                    let n = [(x - cx) / ax, (y - cy) / by, z / 200.0];
                    let wave = body_waves[0].at(n) + body_waves[1].at(n);
                    if level(x, y, taper, 0.0, 0.0, 0.0) + wave >= 1.0 {
                        continue;
                    }
                    let (region, hu) = if level(x, y, taper, fat_lat, fat_ant, fat_post) + wave
                        >= 1.0
                    {
                        (FAT, hu_fat)
                    } else if level(x, y, taper, fat_lat + wall, fat_ant + wall, fat_post + wall)
                        + wave
                        >= 1.0
                    {
                        (WALL, hu_muscle)
                    } else {
                        (CAVITY, hu_visceral_fat)
                    };
                    cv.region[row + i] = region;
                    cv.hu[row + i] =
                        (hu + 6.0 * texture[0][i] * texture[1][j] * texture[2][k]) as f32;
                }
            }
        }
    }

    // Spine position (needed by several organs): lordosis and a slight scoliosis.
    let pitch = rng.range(30.0, 34.0);
    let spine_top = 102.0 + rng.jit(10.0) + shift[2];
    let lordosis = rng.range(0.0, 8.0);
    let scoliosis = rng.jit(4.0);
    let vb_y0 = -38.0 * fy + shift[1];
    let spine_x = move |z: f64| shift[0] + scoliosis * z / 80.0;
    let spine_y = move |z: f64| vb_y0 - lordosis * z / 80.0;
    let vb_semi = [22.0 * organ_scale, 16.0 * organ_scale];

    // Small bowel: loops (wall and fluid, a little gas) in the lower anterior
    // abdomen; the fat between loops stays unlabelled.
    let bowel = Blob::new(
        pos(0.0, 30.0, -50.0),
        size(rng, 80.0, 55.0, 45.0),
        rng.jit(0.2),
        0.08,
        rng,
    );
    let loops = Gyroid::new(rng, 0.12);
    let gas = Texture::new(rng, 0.11);
    let small_bowel = lab("small_bowel");
    cv.blob(&bowel, 0, true, |_, _| hu_visceral_fat);
    cv.paint(bowel.bbox(), |p, region| {
        if region != CAVITY || bowel.level(p) >= 1.0 {
            return None;
        }
        // One labyrinth of the gyroid: tortuous, branching tubes like bowel loops.
        let g = loops.at(p);
        if g < 0.2 {
            return None;
        }
        let hu = if g < 0.55 {
            40.0
        } else if gas.at(p) > 0.5 {
            -850.0
        } else {
            20.0
        };
        Some((hu, small_bowel))
    });

    // Colon: ascending (right), transverse (anterior), descending (left); gas and
    // mottled stool inside a wall.
    let colon = Tube::new(
        vec![
            pos(95.0, 5.0, -95.0),
            pos(95.0 + rng.jit(5.0), 8.0, -15.0),
            pos(78.0, 38.0, 2.0 + rng.jit(6.0)),
            pos(0.0, 62.0 + rng.jit(6.0), -18.0 + rng.jit(10.0)),
            pos(-75.0, 35.0, 18.0 + rng.jit(6.0)),
            pos(-95.0 + rng.jit(5.0), 0.0, -10.0),
            pos(-92.0, 5.0, -95.0),
        ],
        vec![20.0, 20.0, 19.0, 18.0, 19.0, 18.0, 18.0]
            .into_iter()
            .map(|r| r * organ_scale * rng.range(0.85, 1.15))
            .collect(),
    );
    let stool = Gyroid::new(rng, 0.25);
    cv.tube(&colon, lab("colon"), true, |l, p| {
        if l > 0.82 {
            40.0
        } else {
            let s = stool.at(p);
            if s > 0.1 { -900.0 } else { -60.0 - 100.0 * s }
        }
    });

    // Duodenum: the C-loop around the pancreatic head.
    let duodenum = Tube::new(
        vec![
            pos(30.0, 30.0, 12.0),
            pos(48.0, 12.0, 0.0),
            pos(46.0, -5.0, -22.0),
            pos(20.0, -8.0, -36.0),
            pos(-12.0, -2.0, -32.0),
        ],
        vec![11.0, 12.0, 12.0, 11.0, 10.0],
    );
    cv.tube(&duodenum, lab("duodenum"), true, |l, p| {
        if l < 0.35 && gas.at(p) > 0.3 {
            -800.0
        } else if l > 0.75 {
            45.0
        } else {
            25.0
        }
    });

    // Liver: a right lobe and a left lobe reaching across the midline anteriorly,
    // with brighter hepatic veins running to the IVC.
    let right_lobe = Blob::new(
        pos(62.0, 5.0, 22.0 + rng.jit(6.0)),
        size(rng, 70.0, 80.0, 62.0),
        rng.jit(0.15),
        0.05,
        rng,
    )
    .powers(2.4, 2.0);
    let left_lobe = Blob::new(
        pos(5.0, 48.0, 36.0 + rng.jit(6.0)),
        size(rng, 60.0, 32.0, 30.0),
        0.25 + rng.jit(0.15),
        0.06,
        rng,
    );
    let ivc_top = pos(18.0, 2.0, 62.0);
    let hepatic_veins = Tube::new(
        vec![
            pos(95.0, -5.0, 28.0 + rng.jit(8.0)),
            ivc_top,
            pos(45.0, 60.0, 32.0 + rng.jit(8.0)),
        ],
        vec![3.0, 6.0, 3.0],
    );
    let middle_vein = Tube::new(vec![ivc_top, pos(-20.0, 52.0, 40.0)], vec![5.0, 3.0]);
    let hu_liver = 64.0 + rng.jit(4.0);
    let liver_texture = Texture::new(rng, 0.12);
    for lobe in [&right_lobe, &left_lobe] {
        cv.blob(lobe, lab("liver"), true, |_, p| {
            if hepatic_veins.level(p) < 1.0 || middle_vein.level(p) < 1.0 {
                hu_liver + 40.0
            } else {
                hu_liver + 4.0 * liver_texture.at(p)
            }
        });
    }

    // Spleen: left, posterolateral, under the left dome.
    let spleen = Blob::new(
        pos(-88.0, -30.0, 28.0 + rng.jit(6.0)),
        size(rng, 28.0, 55.0, 45.0),
        -0.6 + rng.jit(0.2),
        0.06,
        rng,
    );
    let hu_spleen = 50.0 + rng.jit(5.0);
    cv.blob(&spleen, lab("spleen"), true, |_, _| hu_spleen);

    // Kidneys: cortex, medulla and a medial sinus; the right one lower.
    for (side, name, dz) in [(1.0, "kidney_right", -24.0), (-1.0, "kidney_left", -12.0)] {
        let c = pos(58.0 * side, -42.0, dz + rng.jit(8.0));
        let s = size(rng, 26.0, 21.0, 48.0);
        let angle = side * (0.5 + rng.jit(0.15));
        let kidney = Blob::new(c, s, angle, 0.04, rng);
        // The sinus opens toward the hilum (anteromedial).
        let sinus = Blob::new(
            [c[0] - side * 0.55 * s[0], c[1] + 0.25 * s[1], c[2]],
            [0.45 * s[0], 0.4 * s[1], 0.5 * s[2]],
            angle,
            0.0,
            rng,
        );
        let cortex = 145.0 + rng.jit(10.0);
        let medulla = 95.0 + rng.jit(10.0);
        cv.blob(&kidney, lab(name), true, |l, p| {
            if sinus.level(p) < 1.0 {
                20.0
            } else if l > 0.75 {
                cortex
            } else {
                medulla
            }
        });
        // Adrenal gland: a thin plate above the upper pole, medially.
        let adrenal = Blob::new(
            [
                c[0] - side * 0.6 * s[0],
                c[1] + 0.3 * s[1],
                c[2] + 0.8 * s[2],
            ],
            [4.0, 14.0, 12.0],
            side * 0.6,
            0.05,
            rng,
        );
        let adrenal_name = if side > 0.0 {
            "adrenal_gland_right"
        } else {
            "adrenal_gland_left"
        };
        cv.blob(&adrenal, lab(adrenal_name), true, |_, _| 35.0);
    }

    // Gallbladder: under the liver, anterior right.
    let gallbladder = Blob::new(
        pos(42.0, 52.0, -8.0 + rng.jit(6.0)),
        size(rng, 16.0, 14.0, 30.0),
        0.7 + rng.jit(0.3),
        0.05,
        rng,
    );
    cv.blob(&gallbladder, lab("gallbladder"), true, |_, _| 12.0);

    // Stomach: left upper quadrant; wall, fluid, and gas anteriorly (supine).
    let stomach = Blob::new(
        pos(-45.0, 38.0, 35.0 + rng.jit(6.0)),
        size(rng, 45.0, 38.0, 45.0),
        -0.5 + rng.jit(0.2),
        0.06,
        rng,
    );
    let gas_level = stomach.c[1] + stomach.s[1] * rng.range(0.1, 0.6);
    cv.blob(&stomach, lab("stomach"), true, |l, p| {
        if l > 0.86 {
            45.0
        } else if p[1] > gas_level {
            -950.0
        } else {
            20.0
        }
    });

    // Pancreas: tail at the splenic hilum, body over the spine, head in the C-loop.
    let pancreas = Tube::new(
        vec![
            pos(-72.0, -18.0, 12.0 + rng.jit(5.0)),
            pos(-20.0, 12.0, 8.0),
            pos(10.0, 14.0, 2.0),
            pos(30.0, 6.0, -8.0 + rng.jit(5.0)),
        ],
        vec![9.0, 11.0, 11.0, 15.0]
            .into_iter()
            .map(|r| r * organ_scale * rng.range(0.85, 1.15))
            .collect(),
    );
    let lobules = Texture::new(rng, 0.5);
    cv.tube(&pancreas, lab("pancreas"), true, |_, p| {
        45.0 + 12.0 * lobules.at(p)
    });

    // Splenic vein along the back of the pancreas, joining the portal vein that
    // runs up to the liver hilum.
    let portal = Tube::new(
        vec![
            pos(-75.0, -25.0, 14.0),
            pos(-20.0, 2.0, 8.0),
            pos(8.0, 5.0, 6.0),
            pos(32.0, 18.0, 28.0),
            pos(55.0, 15.0, 34.0),
        ],
        vec![5.0, 5.5, 7.0, 7.0, 5.0],
    );
    let hu_portal = 150.0 + rng.jit(15.0);
    cv.tube(
        &portal,
        lab("portal_vein_and_splenic_vein"),
        true,
        |_, _| hu_portal,
    );

    // Lung bases above the diaphragm domes (right higher), with the oblique fissure
    // separating the lower lobes from the middle lobe / lingula anteriorly.
    let vessels = Gyroid::new(rng, 0.3);
    for (side, apex, lower, upper) in [
        (
            1.0,
            48.0 + rng.jit(8.0),
            "lung_lower_lobe_right",
            "lung_middle_lobe_right",
        ),
        (
            -1.0,
            40.0 + rng.jit(8.0),
            "lung_lower_lobe_left",
            "lung_upper_lobe_left",
        ),
    ] {
        let c = pos(68.0 * side, -15.0, 0.0);
        let (sx, sy) = (60.0 * fx, 72.0 * fy);
        let apex = apex + shift[2];
        let depth = rng.range(30.0, 45.0);
        let fissure = rng.range(30.0, 50.0);
        let (lower, upper) = (lab(lower), lab(upper));
        let bbox = [
            [c[0] - sx, c[0] + sx],
            [c[1] - sy, c[1] + sy],
            [apex - depth - 1.0, 1000.0],
        ];
        cv.paint(bbox, |p, region| {
            if region != CAVITY {
                return None;
            }
            let (u, v) = ((p[0] - c[0]) / sx, (p[1] - c[1]) / sy);
            let rho2 = u * u + v * v;
            if rho2 >= 1.0 || p[2] <= apex - depth * rho2 {
                return None;
            }
            let hu = if vessels.at(p) > 1.2 { -550.0 } else { -860.0 };
            let anterior = p[1] > c[1] + fissure - (p[2] - apex + 20.0);
            Some((hu, if anterior { upper } else { lower }))
        });
    }

    // Heart apex in the top slices, above the left dome.
    let heart = Blob::new(
        pos(-18.0, 30.0, 96.0 + rng.jit(6.0)),
        size(rng, 62.0, 48.0, 52.0),
        0.5 + rng.jit(0.2),
        0.04,
        rng,
    );
    cv.blob(&heart, lab("heart"), true, |l, _| {
        if l > 0.8 { 45.0 } else { 140.0 }
    });

    // Esophagus: behind the heart, left of the aorta, down to the cardia.
    let esophagus = Tube::new(
        vec![
            [spine_x(95.0) - 5.0, spine_y(95.0) + 24.0, 95.0 + shift[2]],
            [spine_x(60.0) - 12.0, spine_y(60.0) + 30.0, 60.0 + shift[2]],
            pos(-30.0, 20.0, 40.0),
        ],
        vec![8.0, 8.0, 8.0],
    );
    cv.tube(&esophagus, lab("esophagus"), true, |l, _| {
        if l < 0.3 { -700.0 } else { 40.0 }
    });

    // Vessels: IVC (right, entering the liver and the heart), aorta (left anterior
    // of the spine).
    let ivc = Tube::new(
        vec![
            [
                spine_x(-95.0) + 22.0,
                spine_y(-95.0) + 28.0,
                -95.0 + shift[2],
            ],
            [spine_x(20.0) + 24.0, spine_y(20.0) + 34.0, 20.0 + shift[2]],
            ivc_top,
            pos(5.0, 20.0, 100.0),
        ],
        vec![10.0, 11.0, 12.0, 12.0],
    );
    let hu_ivc = 130.0 + rng.jit(15.0);
    cv.tube(&ivc, lab("inferior_vena_cava"), true, |_, _| hu_ivc);
    let aorta_r = 11.0 * organ_scale * rng.range(0.9, 1.1);
    let aorta = Tube::new(
        [95.0, 40.0, 0.0, -40.0, -95.0]
            .into_iter()
            .map(|z: f64| {
                // Posterior mediastinum in the thorax, anterior to the spine below.
                let t = ((z - 40.0) / 55.0).clamp(0.0, 1.0);
                let x = spine_x(z) - 14.0 - 6.0 * t;
                let y = spine_y(z) + vb_semi[1] + aorta_r + 2.0 - 16.0 * t;
                [x, y, z + shift[2]]
            })
            .collect(),
        vec![
            aorta_r * 1.1,
            aorta_r,
            aorta_r,
            aorta_r * 0.95,
            aorta_r * 0.9,
        ],
    );
    let hu_aorta = 180.0 + rng.jit(20.0);
    cv.tube(&aorta, lab("aorta"), true, |_, _| hu_aorta);

    // Paraspinal muscles behind the spine, psoas beside the lumbar bodies. Bounds
    // below cover the spine's drift along z.
    let canal_y = move |z: f64| spine_y(z) - vb_semi[1] - 8.0;
    let drift_x = [
        shift[0] - 1.3 * scoliosis.abs(),
        shift[0] + 1.3 * scoliosis.abs(),
    ];
    let drift_y = [vb_y0 - 1.3 * lordosis, vb_y0 + 1.3 * lordosis];
    for (side, name, psoas) in [
        (1.0, "autochthon_right", "iliopsoas_right"),
        (-1.0, "autochthon_left", "iliopsoas_left"),
    ] {
        let (w, h) = (
            20.0 * fx * rng.range(0.9, 1.1),
            17.0 * fy * rng.range(0.9, 1.1),
        );
        let (off_x, off_y) = (side * 26.0 * fx, -vb_semi[1] - 8.0 - 15.0 * fy);
        let bbox = [
            [drift_x[0] + off_x - w, drift_x[1] + off_x + w],
            [drift_y[0] + off_y - h, drift_y[1] + off_y + h],
            [f64::NEG_INFINITY, f64::INFINITY],
        ];
        let (label, hu) = (lab(name), hu_muscle + 5.0);
        cv.paint(bbox, |p, _| {
            let z = p[2] - shift[2];
            let u = (p[0] - spine_x(z) - off_x) / w;
            let v = (p[1] - spine_y(z) - off_y) / h;
            (u * u + v * v < 1.0).then_some((hu, label))
        });
        let top = spine_top - 2.6 * pitch - shift[2];
        let low = -95.0;
        let psoas_tube = Tube::new(
            vec![
                [
                    spine_x(top) + side * (vb_semi[0] + 6.0),
                    spine_y(top) + 2.0,
                    top + shift[2],
                ],
                [
                    spine_x(low) + side * (vb_semi[0] + 32.0),
                    spine_y(low) + 10.0,
                    low + shift[2],
                ],
            ],
            vec![3.0, 24.0 * organ_scale * rng.range(0.85, 1.15)],
        );
        cv.tube(&psoas_tube, lab(psoas), false, |_, _| hu_muscle + 5.0);
    }

    // The spine: an intervertebral disc column, then each vertebra (body with a
    // cortical shell, neural arch, spinous and transverse processes), then the canal
    // and the cord.
    let disc_bbox = [
        [drift_x[0] - vb_semi[0], drift_x[1] + vb_semi[0]],
        [drift_y[0] - vb_semi[1], drift_y[1] + vb_semi[1]],
        [f64::NEG_INFINITY, f64::INFINITY],
    ];
    cv.paint(disc_bbox, |p, _| {
        let z = p[2] - shift[2];
        let u = (p[0] - spine_x(z)) / (vb_semi[0] * 0.95);
        let v = (p[1] - spine_y(z)) / (vb_semi[1] * 0.95);
        (u * u + v * v < 1.0).then_some((90.0, 0))
    });
    let hu_cortical = 700.0 + rng.jit(60.0);
    let hu_cancellous = 250.0 + rng.jit(40.0);
    let spinous_len = 38.0 * fy;
    for (n, name) in VERTEBRAE.iter().enumerate() {
        let zc = spine_top - n as f64 * pitch;
        let grow = 1.0 + 0.03 * n as f64;
        let (a, b) = (vb_semi[0] * grow, vb_semi[1] * grow);
        let hz = (pitch * 0.5 - 3.5).max(4.0);
        let (cx, cy, yc) = (
            spine_x(zc - shift[2]),
            spine_y(zc - shift[2]),
            canal_y(zc - shift[2]),
        );
        let tp_len = 30.0 + 8.0 * grow;
        let shell = 2.5 / a.min(b).min(hz);
        let label = lab(name);
        let bbox = [
            [cx - tp_len, cx + tp_len],
            [yc - spinous_len, cy + b],
            [zc - hz - 0.35 * spinous_len - 8.0, zc + hz],
        ];
        cv.paint(bbox, |p, _| {
            let (dx, dz) = (p[0] - cx, p[2] - zc);
            // Vertebral body: an elliptic cylinder with rounded rims.
            let (u, v, w) = (dx / a, (p[1] - cy) / b, dz / hz);
            let s = u * u + v * v;
            let r = (s * s + w * w * w * w).sqrt().sqrt();
            if r < 1.0 {
                let hu = if r > 1.0 - shell {
                    hu_cortical
                } else {
                    hu_cancellous
                };
                return Some((hu, label));
            }
            // Posterior elements around the canal; the spinous process slopes down.
            let dy = p[1] - yc;
            let ring = (dx * dx + 1.4 * dy * dy).sqrt();
            let arch = ring > 9.0 && ring < 16.0 && dy < 4.0 && dz.abs() < hz * 0.75;
            let spinous =
                dx.abs() < 4.0 && dy < -10.0 && dy > -spinous_len && (dz - 0.35 * dy).abs() < 8.0;
            let transverse =
                (dy - 3.0).abs() < 5.0 && dx.abs() > 10.0 && dx.abs() < tp_len && dz.abs() < 6.0;
            (arch || spinous || transverse).then_some((450.0, label))
        });
    }
    // Spinal canal (CSF, unlabelled) and the cord, which ends at the L1/L2 disc.
    let canal_line = |zs: &[f64]| -> Vec<Point> {
        zs.iter()
            .map(|&z| [spine_x(z), canal_y(z), z + shift[2]])
            .collect()
    };
    let canal = Tube::new(canal_line(&[-130.0, -40.0, 40.0, 130.0]), vec![8.5; 4]);
    cv.tube(&canal, 0, false, |_, _| 10.0);
    let conus = spine_top - 3.5 * pitch - shift[2];
    let cord = Tube::new(canal_line(&[conus, 40.0, 130.0]), vec![4.5; 3]);
    cv.tube(&cord, lab("spinal_cord"), false, |_, _| 35.0);

    cv
}
