//! On-disk cache of preprocessed subjects, so an epoch never re-reads NIfTI files.
//!
//! Each subject is reoriented to the canonical slice orientation ([`CANONICAL_ORIENTATION`]:
//! columns run to the patient's left, rows to posterior, slices to superior — the
//! radiological view), windowed to the model window ([-200, 300] HU → [0, 1]) and every
//! axial slice resized to the model input (bilinear for CT, nearest for labels).
//! A cache file holds a JSON header, the image slices as `u16` (value·65535) and the
//! label slices as `u8`; it is keyed by the source files (path, size, modification
//! time) and the settings, and written safely (temporary file + rename). Slices are
//! read on demand with positioned reads, so datasets larger than memory work.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ctseg_core::dataset::{CaseRef, DatasetIndex};
use ctseg_core::error::{Error, Result};
use ctseg_core::ids::{fnv1a, folder_safe};
use ctseg_core::io::atomic_write;
use ctseg_core::resample::resize_nearest;
use ctseg_core::slicing::CANONICAL_ORIENTATION;
use ctseg_core::window::{MODEL_WINDOW, model_input_slice};

/// Bump when the cache layout or preprocessing changes.
pub const CACHE_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"CTSEGC01";

/// What a cached subject holds, stored as the file's JSON header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheHeader {
    /// Cache layout version.
    pub version: u32,
    /// Subject id.
    pub id: String,
    /// Side of the square slices.
    pub size: usize,
    /// Number of axial slices.
    pub slices: usize,
    /// Source voxel shape in canonical order.
    pub source_shape: [usize; 3],
    /// Source voxel spacing (mm) in canonical order.
    pub source_spacing: [f64; 3],
    /// Whether each slice contains any labelled voxel.
    pub foreground: Vec<bool>,
    /// Labelled pixels per label value 0..=255 over the whole subject (after resizing).
    pub label_pixels: Vec<u64>,
}

/// A preprocessed subject whose slices are read from its cache file on demand.
#[derive(Debug)]
pub struct CachedSubject {
    /// Header: shape, foreground slices.
    pub header: CacheHeader,
    /// The cache file.
    pub path: PathBuf,
    file: File,
    data_offset: u64,
}

impl CachedSubject {
    /// Number of pixels in one slice.
    pub fn slice_len(&self) -> usize {
        self.header.size * self.header.size
    }

    /// Read slice `k`: image values in [0, 1] into `image`, labels into `labels`
    /// (both `size²` long).
    pub fn read_slice(&self, k: usize, image: &mut [f32], labels: &mut [u8]) -> Result<()> {
        let n = self.slice_len();
        if k >= self.header.slices || image.len() != n || labels.len() != n {
            return Err(Error::Invalid(format!(
                "{}: slice {k} out of range or wrong buffer size",
                self.path.display()
            )));
        }
        let mut raw = vec![0u8; 2 * n];
        let image_at = self.data_offset + (k * 2 * n) as u64;
        read_at(&self.file, &mut raw, image_at).map_err(|e| Error::io(&self.path, e))?;
        for (v, b) in image.iter_mut().zip(raw.chunks_exact(2)) {
            *v = u16::from_le_bytes([b[0], b[1]]) as f32 / 65535.0;
        }
        let labels_at = self.data_offset + (self.header.slices * 2 * n + k * n) as u64;
        read_at(&self.file, labels, labels_at).map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }

    /// All label slices, `slices × size²` (for validation against whole volumes).
    pub fn read_all_labels(&self) -> Result<Vec<u8>> {
        let n = self.slice_len() * self.header.slices;
        let mut labels = vec![0u8; n];
        let at = self.data_offset + (self.header.slices * 2 * self.slice_len()) as u64;
        read_at(&self.file, &mut labels, at).map_err(|e| Error::io(&self.path, e))?;
        Ok(labels)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Cache key of a case under the given input size.
pub fn cache_key(case: &CaseRef, size: usize) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        CACHE_VERSION.to_le_bytes().to_vec(),
        (size as u64).to_le_bytes().to_vec(),
        MODEL_WINDOW.center.to_le_bytes().to_vec(),
        MODEL_WINDOW.width.to_le_bytes().to_vec(),
        CANONICAL_ORIENTATION.as_bytes().to_vec(),
    ];
    for source in &case.sources {
        let abs = std::fs::canonicalize(source).unwrap_or_else(|_| source.clone());
        parts.push(abs.to_string_lossy().as_bytes().to_vec());
        if let Ok(meta) = std::fs::metadata(source) {
            parts.push(meta.len().to_le_bytes().to_vec());
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            parts.push(mtime.to_le_bytes().to_vec());
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let safe_id = folder_safe(&case.id);
    format!("{safe_id}-{size}-{:016x}.bin", fnv1a(&refs))
}

/// Open the cached subject, preprocessing it first when the cache has no valid entry.
/// Returns the subject and whether it was built now.
pub fn load_or_build(
    index: &DatasetIndex,
    case: &CaseRef,
    size: usize,
    cache_dir: &Path,
) -> Result<(CachedSubject, bool)> {
    let path = cache_dir.join(cache_key(case, size));
    if path.is_file()
        && let Ok(subject) = open(&path)
        && subject.header.size == size
    {
        return Ok((subject, false));
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let subject = index.load(case)?;
    let ct = subject.ct.volume.reoriented(CANONICAL_ORIENTATION)?;
    let labels = subject
        .segmentation
        .labels
        .reoriented(CANONICAL_ORIENTATION)?;
    let bytes = preprocess(&case.id, &ct, &labels, size)?;
    atomic_write(&path, ".part", |tmp| {
        std::fs::write(tmp, &bytes).map_err(|e| Error::io(tmp, e))
    })?;
    Ok((open(&path)?, true))
}

/// Preprocess a canonical-orientation CT and its labels into cache-file bytes.
pub fn preprocess(
    id: &str,
    ct: &ctseg_core::Volume<i16>,
    labels: &ctseg_core::LabelVolume,
    size: usize,
) -> Result<Vec<u8>> {
    let [nx, ny, nz] = ct.shape();
    if labels.shape() != ct.shape() {
        return Err(Error::Invalid(format!(
            "{id}: CT shape {:?} and label shape {:?} differ",
            ct.shape(),
            labels.shape()
        )));
    }
    let n = size * size;
    let mut images = Vec::with_capacity(nz * n * 2);
    let mut label_bytes = Vec::with_capacity(nz * n);
    let mut foreground = Vec::with_capacity(nz);
    let mut label_pixels = vec![0u64; 256];
    let mut src = vec![0f32; nx * ny];
    let mut dst = vec![0f32; n];
    let mut lab = vec![0u8; n];
    for k in 0..nz {
        let (Some(ct_slice), Some(label_slice)) = (ct.slice_k(k), labels.slice_k(k)) else {
            break;
        };
        model_input_slice(ct_slice, nx, ny, size, &mut src, &mut dst);
        for &v in &dst {
            let q = (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
            images.extend_from_slice(&q.to_le_bytes());
        }
        resize_nearest(label_slice, nx, ny, size, size, &mut lab);
        let mut any = false;
        for &l in &lab {
            label_pixels[l as usize] += 1;
            any |= l != 0;
        }
        foreground.push(any);
        label_bytes.extend_from_slice(&lab);
    }
    let header = CacheHeader {
        version: CACHE_VERSION,
        id: id.to_string(),
        size,
        slices: nz,
        source_shape: [nx, ny, nz],
        source_spacing: ct.geometry().spacing(),
        foreground,
        label_pixels,
    };
    let json = serde_json::to_vec(&header).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut out = Vec::with_capacity(16 + json.len() + images.len() + label_bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&images);
    out.extend_from_slice(&label_bytes);
    Ok(out)
}

/// Open an existing cache file and check its header against its length.
pub fn open(path: &Path) -> Result<CachedSubject> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut start = [0u8; 16];
    read_at(&file, &mut start, 0).map_err(|_| Error::format(path, "truncated cache file"))?;
    if &start[..8] != MAGIC {
        return Err(Error::format(path, "not a ctseg cache file"));
    }
    let header_len = u64::from_le_bytes(start[8..16].try_into().unwrap_or([0; 8]));
    if header_len > len.saturating_sub(16) {
        return Err(Error::format(path, "truncated cache header"));
    }
    let mut json = vec![0u8; header_len as usize];
    read_at(&file, &mut json, 16).map_err(|e| Error::io(path, e))?;
    let header: CacheHeader = serde_json::from_slice(&json)
        .map_err(|e| Error::format(path, format!("bad cache header: {e}")))?;
    if header.version != CACHE_VERSION {
        return Err(Error::format(path, "cache file from another version"));
    }
    let data_offset = 16 + header_len;
    let expected = data_offset + (header.slices * header.size * header.size * 3) as u64;
    if len != expected || header.foreground.len() != header.slices {
        return Err(Error::format(
            path,
            "cache file length does not match its header",
        ));
    }
    Ok(CachedSubject {
        header,
        path: path.to_path_buf(),
        file,
        data_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctseg_core::Geometry;

    #[test]
    fn preprocess_round_trips_through_a_cache_file() {
        let g = Geometry::new([4, 4, 2], ctseg_core::geometry::IDENTITY);
        let mut ct = ctseg_core::Volume::<i16>::zeros(g.clone());
        let mut labels = ctseg_core::LabelVolume::zeros(g);
        for (i, v) in ct.data_mut().iter_mut().enumerate() {
            *v = -300 + 40 * i as i16; // crosses the window
        }
        labels.data_mut()[16 + 5] = 3; // slice 1 only
        let bytes = preprocess("t", &ct, &labels, 8).expect("preprocess");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.bin");
        std::fs::write(&path, &bytes).expect("write");
        let cached = open(&path).expect("open");
        assert_eq!(cached.header.foreground, vec![false, true]);
        assert_eq!(cached.header.label_pixels[3], 4); // 1 voxel → 2×2 pixels
        let mut image = vec![0f32; 64];
        let mut lab = vec![0u8; 64];
        cached.read_slice(1, &mut image, &mut lab).expect("read");
        assert_eq!(lab.iter().filter(|&&l| l == 3).count(), 4);
        assert!(image.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Voxel 0 of slice 0 is -300 HU: below the window → 0.
        cached.read_slice(0, &mut image, &mut lab).expect("read");
        assert_eq!(image[0], 0.0);
        assert!(cached.read_slice(2, &mut image, &mut lab).is_err());
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
        assert!(open(&path).unwrap_err().to_string().contains("length"));
    }
}
