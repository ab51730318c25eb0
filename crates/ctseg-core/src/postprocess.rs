//! Post-processing of predicted label volumes: keep the largest 3-D connected
//! component (6-connectivity) of each structure that is a single object in the body.

use std::collections::VecDeque;

use crate::LabelVolume;
use crate::structures::catalog;

/// Structures that may legitimately consist of several pieces in a scan; all other
/// catalog structures are single objects (organs, bones, vessels, muscles).
pub const MULTI_PART: &[&str] = &[
    "small_bowel",
    "duodenum",
    "colon",
    "kidney_cyst_left",
    "kidney_cyst_right",
    "pulmonary_vein",
    "portal_vein_and_splenic_vein",
    "costal_cartilages",
    "thyroid_gland",
];

/// Whether `label` is a single-object structure.
pub fn is_single_object(label: u8) -> bool {
    catalog()
        .by_label(label)
        .is_some_and(|s| !MULTI_PART.contains(&s.name.as_str()))
}

/// Remove every connected component of a single-object structure except its largest.
/// Returns the number of voxels set to background.
pub fn keep_largest_components(labels: &mut LabelVolume) -> u64 {
    let [nx, ny, nz] = labels.shape();
    let n = nx * ny * nz;
    let data = labels.data_mut();
    // One bit per voxel: 128 MiB for a 1024³ volume instead of a byte each.
    let mut visited = Bits::new(n);
    // (label, size, seed) of every component.
    let mut components: Vec<(u8, usize, usize)> = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..n {
        let l = data[start];
        if l == 0 || visited.get(start) || !is_single_object(l) {
            continue;
        }
        visited.set(start);
        queue.push_back(start);
        let mut size = 0;
        while let Some(v) = queue.pop_front() {
            size += 1;
            for_neighbours(v, nx, ny, nz, |w| {
                if !visited.get(w) && data[w] == l {
                    visited.set(w);
                    queue.push_back(w);
                }
            });
        }
        components.push((l, size, start));
    }
    let mut largest = [0usize; 256];
    let mut largest_seed = [usize::MAX; 256];
    for &(l, size, seed) in &components {
        if size > largest[l as usize] {
            largest[l as usize] = size;
            largest_seed[l as usize] = seed;
        }
    }
    let mut removed = 0u64;
    for &(l, _, seed) in &components {
        if seed == largest_seed[l as usize] {
            continue;
        }
        data[seed] = 0;
        queue.push_back(seed);
        while let Some(v) = queue.pop_front() {
            removed += 1;
            for_neighbours(v, nx, ny, nz, |w| {
                if data[w] == l {
                    data[w] = 0;
                    queue.push_back(w);
                }
            });
        }
    }
    removed
}

/// A fixed-size set of voxel indices, one bit each.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    #[inline]
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    #[inline]
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

#[inline]
fn for_neighbours(v: usize, nx: usize, ny: usize, nz: usize, mut f: impl FnMut(usize)) {
    let x = v % nx;
    let y = (v / nx) % ny;
    let z = v / (nx * ny);
    if x > 0 {
        f(v - 1);
    }
    if x + 1 < nx {
        f(v + 1);
    }
    if y > 0 {
        f(v - nx);
    }
    if y + 1 < ny {
        f(v + nx);
    }
    if z > 0 {
        f(v - nx * ny);
    }
    if z + 1 < nz {
        f(v + nx * ny);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    #[test]
    fn keeps_the_largest_liver_blob_but_all_colon_pieces() {
        let liver = catalog().label_of("liver").expect("liver");
        let colon = catalog().label_of("colon").expect("colon");
        let mut v = LabelVolume::zeros(Geometry::new([10, 4, 3], crate::geometry::IDENTITY));
        let d = v.data_mut();
        d[..4].fill(liver); // 4-voxel blob in row 0 of slice 0
        d[8] = liver; // 1-voxel island
        d[2 * 40 + 9] = colon;
        d[2 * 40] = colon; // two colon pieces
        let removed = keep_largest_components(&mut v);
        assert_eq!(removed, 1);
        let d = v.data();
        assert_eq!(d.iter().filter(|&&l| l == liver).count(), 4);
        assert_eq!(d[8], 0);
        assert_eq!(d.iter().filter(|&&l| l == colon).count(), 2);
    }

    #[test]
    fn components_spanning_many_bit_words_are_found_whole() {
        // A 70×70×3 volume: a liver slab over two slices (9800 voxels, crossing
        // hundreds of 64-bit words of the visited set) and a 3-voxel island in the
        // last slice, a voxel apart.
        let liver = catalog().label_of("liver").expect("liver");
        let mut v = LabelVolume::zeros(Geometry::new([70, 70, 3], crate::geometry::IDENTITY));
        let plane = 70 * 70;
        let d = v.data_mut();
        d[..2 * plane].fill(liver);
        d[2 * plane + 10..2 * plane + 13].fill(liver);
        d[plane + 10] = 0; // the island does not touch the slab through this voxel
        d[plane + 11] = 0;
        d[plane + 12] = 0;
        let removed = keep_largest_components(&mut v);
        assert_eq!(removed, 3);
        assert_eq!(
            v.data().iter().filter(|&&l| l == liver).count(),
            2 * plane - 3
        );
        let mut bits = Bits::new(130);
        for i in [0, 63, 64, 127, 129] {
            assert!(!bits.get(i));
            bits.set(i);
            assert!(bits.get(i));
        }
        assert!(!bits.get(65));
    }
}
