//! NIfTI-1 reading and writing (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs).
//!
//! Reading streams the (optionally gzip-compressed) file once, straight into the
//! output voxel buffer: a volume costs its voxel bytes plus a 1 MiB conversion
//! buffer. Header fields are parsed with the `nifti` crate; geometry follows nibabel
//! (sform, else qform, else pixdim) and `scl_slope`/`scl_inter` are applied.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use nifti::NiftiHeader;

use crate::error::{Error, Result};
use crate::geometry::{Affine, Geometry, IDENTITY, affine_to_quaternion, quaternion_to_affine};
use crate::io::atomic_write;
use crate::volume::{Volume, Voxel};

/// NIfTI `intent_code` for label maps (NIFTI_INTENT_LABEL).
pub const INTENT_LABEL: i16 = 1002;

/// Voxel data types ctseg reads from NIfTI files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `DT_INT8` (256)
    I8,
    /// `DT_UINT8` (2)
    U8,
    /// `DT_INT16` (4)
    I16,
    /// `DT_UINT16` (512)
    U16,
    /// `DT_INT32` (8)
    I32,
    /// `DT_UINT32` (768)
    U32,
    /// `DT_INT64` (1024)
    I64,
    /// `DT_UINT64` (1280)
    U64,
    /// `DT_FLOAT32` (16)
    F32,
    /// `DT_FLOAT64` (64)
    F64,
}

impl DataType {
    /// The type of a NIfTI `datatype` code, if ctseg reads it.
    pub fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => Self::U8,
            4 => Self::I16,
            8 => Self::I32,
            16 => Self::F32,
            64 => Self::F64,
            256 => Self::I8,
            512 => Self::U16,
            768 => Self::U32,
            1024 => Self::I64,
            1280 => Self::U64,
            _ => return None,
        })
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// numpy-style name (`int16`, `float32`…).
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }
}

/// Name of a NIfTI datatype code, for messages.
fn datatype_code_name(code: i16) -> String {
    match code {
        0 => "unknown (0)".into(),
        1 => "binary (1)".into(),
        32 => "complex64 (32)".into(),
        128 => "RGB24 (128)".into(),
        1536 => "float128 (1536)".into(),
        1792 => "complex128 (1792)".into(),
        2048 => "complex256 (2048)".into(),
        2304 => "RGBA32 (2304)".into(),
        c => format!("code {c}"),
    }
}

/// Which header fields the `world_from_voxel` affine came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineSource {
    /// `srow_x/y/z` (sform_code > 0)
    Sform,
    /// quaternion + pixdim (qform_code > 0)
    Qform,
    /// pixdim only (neither code set; nibabel's fallback)
    Pixdim,
}

/// One NIfTI header extension: its code and raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `ecode` (0 for TotalSegmentator's CaretExtension label table).
    pub code: i32,
    /// Extension payload (without the 8-byte size/code prefix).
    pub data: Vec<u8>,
}

/// What a NIfTI file says besides its voxels.
#[derive(Debug, Clone)]
pub struct NiftiInfo {
    /// The header file that was read.
    pub path: PathBuf,
    /// On-disk voxel type.
    pub datatype: DataType,
    /// Whether the data was gzip-compressed.
    pub compressed: bool,
    /// Whether the file is big-endian.
    pub big_endian: bool,
    /// sform_code of the header.
    pub sform_code: i16,
    /// qform_code of the header.
    pub qform_code: i16,
    /// Where the affine came from.
    pub affine_source: AffineSource,
    /// Effective scaling slope (1 when the header has 0 or NaN).
    pub scl_slope: f64,
    /// Effective scaling intercept (0 when the header has NaN).
    pub scl_inter: f64,
    /// `intent_code` of the header.
    pub intent_code: i16,
    /// Header extensions, in file order.
    pub extensions: Vec<Extension>,
    /// Voxels whose scaled value did not fit the in-memory type and were clamped.
    pub clipped_voxels: u64,
    /// What the stored values were, before conversion to the in-memory type.
    pub values: ValueStats,
}

/// What the voxel values of a file were, after scaling and before conversion to the
/// in-memory type: what a reader needs to tell a label map from a CT, or a
/// truncated value from a real one. Gathered only where values are converted: a
/// file stored in the in-memory type without scaling is copied as it is (every
/// value fits), and its statistics stay empty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueStats {
    /// Voxels that were NaN (they became 0).
    pub nan: u64,
    /// Voxels whose value had a fractional part (rounded for integer types).
    pub fractional: u64,
    /// One such fractional value, for messages.
    pub fractional_example: Option<f64>,
    /// The smallest and largest finite value, if any voxel was finite.
    pub range: Option<(f64, f64)>,
}

impl ValueStats {
    fn add(&mut self, v: f64) {
        if v.is_nan() {
            self.nan += 1;
            return;
        }
        if v.fract() != 0.0 && v.is_finite() {
            self.fractional += 1;
            self.fractional_example.get_or_insert(v);
        }
        self.range = Some(match self.range {
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
            None => (v, v),
        });
    }

    fn merge(&mut self, other: &ValueStats) {
        self.nan += other.nan;
        self.fractional += other.fractional;
        if self.fractional_example.is_none() {
            self.fractional_example = other.fractional_example;
        }
        if let Some((lo, hi)) = other.range {
            self.range = Some(match self.range {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
}

/// A NIfTI volume and what its header said.
#[derive(Debug, Clone)]
pub struct NiftiImage<T> {
    /// The voxels with their geometry.
    pub volume: Volume<T>,
    /// Header information.
    pub info: NiftiInfo,
}

/// A parsed header positioned at the start of the voxel data.
struct Opened {
    info: NiftiInfo,
    geometry: Geometry,
    data: Box<dyn Read>,
    /// Upper bound on the bytes the data stream can hold, to refuse absurd headers
    /// before allocating.
    max_data_bytes: u64,
    data_path: PathBuf,
}

/// Read a NIfTI-1 volume, converting voxels to `T` (after `scl_slope/scl_inter`).
pub fn read<T: Voxel>(path: impl AsRef<Path>) -> Result<NiftiImage<T>> {
    let path = path.as_ref();
    let mut opened = open(path)?;
    let n = opened.geometry.voxel_count();
    let (data, clipped, values) = read_voxels::<T>(&mut opened, n)?;
    let mut info = opened.info;
    info.clipped_voxels = clipped;
    info.values = values;
    let volume = Volume::new(opened.geometry, data)?;
    Ok(NiftiImage { volume, info })
}

/// Read only the header (and extensions) of a NIfTI file: geometry and info.
pub fn read_header(path: impl AsRef<Path>) -> Result<(Geometry, NiftiInfo)> {
    let opened = open(path.as_ref())?;
    Ok((opened.geometry, opened.info))
}

/// A buffered reader over `path`, transparently gunzipping (by magic bytes).
fn open_stream(path: &Path) -> Result<(Box<dyn Read>, bool, u64)> {
    // Opening a FIFO would block until a writer comes, and a device never ends:
    // only regular files are read.
    let kind = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => crate::io::missing(path),
        _ if matches!(e.raw_os_error(), Some(40 | 62)) => crate::io::missing(path),
        _ => Error::io(path, e),
    })?;
    if !kind.is_file() {
        return Err(Error::format(
            path,
            "not a regular file (a FIFO, socket or device); ctseg reads files and folders only",
        ));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::format(path, "empty file"));
    }
    let mut reader = BufReader::with_capacity(1 << 18, file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if gz {
        Ok((Box::new(MultiGzDecoder::new(reader)), true, len))
    } else {
        Ok((Box::new(reader), false, len))
    }
}

/// Turn an I/O error while reading `what` into a readable message.
fn read_error(path: &Path, compressed: bool, what: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::format(path, format!("file is truncated: {what} ends early"))
        }
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData if compressed => {
            Error::format(path, format!("corrupt gzip data in {what}: {e}"))
        }
        _ => Error::io(path, e),
    }
}

fn open(path: &Path) -> Result<Opened> {
    let (header_path, pair_data) = pair_paths(path)?;
    let (mut stream, compressed, file_len) = open_stream(&header_path)?;
    let mut raw = [0u8; 348];
    read_fully(&mut stream, &mut raw)
        .map_err(|e| read_error(&header_path, compressed, "the header", e))
        .and_then(|got| {
            if got < 348 {
                Err(Error::format(
                    &header_path,
                    format!("not a NIfTI file: {got} bytes, a NIfTI-1 header needs 348"),
                ))
            } else {
                Ok(())
            }
        })?;
    let size_le = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let size_be = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if size_le == 540 || size_be == 540 {
        return Err(Error::unsupported(
            &header_path,
            "NIfTI-2 header; ctseg reads NIfTI-1 (convert with e.g. nibabel: nib.Nifti1Image(img.dataobj, img.affine))",
        ));
    }
    if size_le != 348 && size_be != 348 {
        return Err(Error::format(
            &header_path,
            format!("not a NIfTI file (sizeof_hdr is {size_le}, expected 348)"),
        ));
    }
    let big_endian = size_le != 348;
    let magic = &raw[344..348];
    if magic != b"n+1\0" && magic != b"ni1\0" {
        return Err(Error::unsupported(
            &header_path,
            "no NIfTI magic (an Analyze 7.5 header?); ctseg reads NIfTI-1 only",
        ));
    }
    let header = NiftiHeader::from_reader(&raw[..])
        .map_err(|e| Error::format(&header_path, format!("invalid NIfTI-1 header: {e}")))?;
    let single_file = magic == b"n+1\0";
    if !single_file && pair_data.is_none() {
        return Err(Error::format(
            &header_path,
            "the header's magic \"ni1\" says the voxels are in a separate .img file, but this is a single .nii file: a mislabelled header (its magic should be \"n+1\")",
        ));
    }
    let geometry = geometry_of(&header, &header_path)?;
    let datatype = DataType::from_code(header.datatype).ok_or_else(|| {
        Error::unsupported(
            &header_path,
            format!("voxel type {}", datatype_code_name(header.datatype)),
        )
    })?;
    if header.bitpix != 0 && header.bitpix as usize != datatype.size() * 8 {
        return Err(Error::format(
            &header_path,
            format!(
                "bitpix {} does not match datatype {}",
                header.bitpix,
                datatype.name()
            ),
        ));
    }

    // Extensions: in a single file they sit between byte 348 and vox_offset; in a
    // header/image pair they fill the rest of the header file.
    let mut consumed = 348u64;
    let vox_offset = header.vox_offset as f64;
    let ext_limit = if single_file {
        if vox_offset.is_nan() || vox_offset < 348.0 || vox_offset.fract() != 0.0 {
            return Err(Error::format(
                &header_path,
                format!("invalid vox_offset {vox_offset}"),
            ));
        }
        vox_offset as u64
    } else {
        u64::MAX
    };
    let mut extensions = Vec::new();
    if ext_limit >= 352 {
        let mut extender = [0u8; 4];
        let got = read_fully(&mut stream, &mut extender)
            .map_err(|e| read_error(&header_path, compressed, "the header extensions", e))?;
        consumed += got as u64;
        if got == 4 && extender[0] != 0 {
            extensions = read_extensions(
                &mut stream,
                &header_path,
                compressed,
                big_endian,
                ext_limit,
                &mut consumed,
            )?;
        } else if got < 4 && single_file {
            return Err(Error::format(
                &header_path,
                "file is truncated after the header",
            ));
        }
    }

    let slope = header.scl_slope as f64;
    let inter = header.scl_inter as f64;
    let (scl_slope, scl_inter) = if slope == 0.0 || !slope.is_finite() {
        (1.0, 0.0)
    } else {
        (slope, if inter.is_finite() { inter } else { 0.0 })
    };
    let info = NiftiInfo {
        path: header_path.clone(),
        datatype,
        compressed,
        big_endian,
        sform_code: header.sform_code,
        qform_code: header.qform_code,
        affine_source: affine_source(&header),
        scl_slope,
        scl_inter,
        intent_code: header.intent_code,
        extensions,
        clipped_voxels: 0,
        values: ValueStats::default(),
    };

    let (data, data_compressed, data_len, data_path, offset) = match pair_data {
        None => (
            stream,
            compressed,
            file_len,
            header_path.clone(),
            vox_offset as u64,
        ),
        Some(img) => {
            let (s, c, l) = open_stream(&img)?;
            (s, c, l, img, vox_offset.max(0.0) as u64)
        }
    };
    let mut data = data;
    let already = if single_file { consumed } else { 0 };
    if offset > already {
        let skip = offset - already;
        let skipped = std::io::copy(&mut (&mut data).take(skip), &mut std::io::sink())
            .map_err(|e| read_error(&data_path, data_compressed, "the header extensions", e))?;
        if skipped < skip {
            return Err(Error::format(
                &data_path,
                "file is truncated before the voxel data",
            ));
        }
    }
    // A deflate stream expands at most ~1032×; anything beyond that is a lying header.
    let max_data_bytes = if data_compressed {
        data_len.saturating_mul(1032)
    } else {
        data_len.saturating_sub(offset)
    };
    Ok(Opened {
        info,
        geometry,
        data,
        max_data_bytes,
        data_path,
    })
}

/// For `x.hdr`/`x.img` (optionally `.gz`): the header path and the image path.
fn pair_paths(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let swap = |from: &str, to: &[&str]| -> Option<PathBuf> {
        let stem = &name[..name.len() - from.len()];
        to.iter()
            .map(|ext| path.with_file_name(format!("{stem}{ext}")))
            .find(|p| p.exists())
    };
    for hdr in [".hdr", ".hdr.gz"] {
        if lower.ends_with(hdr) {
            let img = swap(hdr, &[".img", ".img.gz", ".IMG"])
                .ok_or_else(|| Error::format(path, "header file without its .img data file"))?;
            return Ok((path.to_path_buf(), Some(img)));
        }
    }
    for img in [".img", ".img.gz"] {
        if lower.ends_with(img) {
            let hdr = swap(img, &[".hdr", ".hdr.gz", ".HDR"])
                .ok_or_else(|| Error::format(path, "image file without its .hdr header file"))?;
            return Ok((hdr, Some(path.to_path_buf())));
        }
    }
    Ok((path.to_path_buf(), None))
}

/// Read into `buf` until it is full or the stream ends; returns bytes read.
fn read_fully(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_extensions(
    stream: &mut dyn Read,
    path: &Path,
    compressed: bool,
    big_endian: bool,
    limit: u64,
    consumed: &mut u64,
) -> Result<Vec<Extension>> {
    let mut out = Vec::new();
    while *consumed + 8 <= limit {
        let mut head = [0u8; 8];
        let got = read_fully(stream, &mut head)
            .map_err(|e| read_error(path, compressed, "the header extensions", e))?;
        if got == 0 && limit == u64::MAX {
            break;
        }
        if got < 8 {
            return Err(Error::format(
                path,
                "file is truncated inside a header extension",
            ));
        }
        *consumed += 8;
        let int = |b: [u8; 4]| {
            if big_endian {
                i32::from_be_bytes(b)
            } else {
                i32::from_le_bytes(b)
            }
        };
        let esize = int([head[0], head[1], head[2], head[3]]);
        let code = int([head[4], head[5], head[6], head[7]]);
        if esize < 8 || (*consumed - 8).saturating_add(esize as u64) > limit {
            return Err(Error::format(
                path,
                format!("invalid header extension size {esize}"),
            ));
        }
        let mut data = vec![0u8; esize as usize - 8];
        stream
            .read_exact(&mut data)
            .map_err(|e| read_error(path, compressed, "a header extension", e))?;
        *consumed += data.len() as u64;
        out.push(Extension { code, data });
    }
    Ok(out)
}

fn affine_source(h: &NiftiHeader) -> AffineSource {
    if h.sform_code > 0 {
        AffineSource::Sform
    } else if h.qform_code > 0 {
        AffineSource::Qform
    } else {
        AffineSource::Pixdim
    }
}

/// Shape (3-D; 4-D with more than one volume refused) and affine of a header.
fn geometry_of(h: &NiftiHeader, path: &Path) -> Result<Geometry> {
    let ndim = h.dim[0] as i16;
    if !(1..=7).contains(&ndim) {
        return Err(Error::format(
            path,
            format!("invalid dim[0] = {ndim} (must be 1..7)"),
        ));
    }
    let ndim = ndim as usize;
    let dim = |i: usize| -> Result<usize> {
        if i > ndim {
            return Ok(1);
        }
        // dims are signed 16-bit on disk; the `nifti` crate reads them unsigned.
        let d = h.dim[i] as i16;
        if d <= 0 {
            return Err(Error::format(path, format!("invalid dim[{i}] = {d}")));
        }
        Ok(d as usize)
    };
    let shape = [dim(1)?, dim(2)?, dim(3)?];
    let extra: usize = (4..=ndim).map(dim).product::<Result<usize>>()?;
    if extra > 1 {
        return Err(Error::unsupported(
            path,
            format!(
                "{}-D image ({} volumes of {}×{}×{}); ctseg reads one 3-D CT volume — extract one first (e.g. fslroi)",
                ndim, extra, shape[0], shape[1], shape[2]
            ),
        ));
    }
    let pix = |i: usize| h.pixdim[i] as f64;
    let affine: Affine = match affine_source(h) {
        AffineSource::Sform => {
            let mut m = IDENTITY;
            for (r, row) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
                for c in 0..4 {
                    m[r][c] = row[c] as f64;
                }
            }
            m
        }
        AffineSource::Qform => {
            let zooms = [pix(1), pix(2), pix(3)];
            if zooms.iter().any(|z| *z < 0.0) {
                return Err(Error::format(
                    path,
                    format!("negative pixdim {zooms:?} with a qform"),
                ));
            }
            let qfac = if pix(0) < 0.0 { -1.0 } else { 1.0 };
            let bcd = [h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64];
            let offset = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
            quaternion_to_affine(bcd, qfac, zooms, offset)
                .ok_or_else(|| Error::format(path, format!("invalid qform quaternion {bcd:?}")))?
        }
        AffineSource::Pixdim => {
            // nibabel's shape_zoom_affine: x flipped, origin at the volume centre.
            let z = |i: usize| if pix(i) > 0.0 { pix(i) } else { 1.0 };
            let zooms = [-z(1), z(2), z(3)];
            let mut m = IDENTITY;
            for a in 0..3 {
                m[a][a] = zooms[a];
                m[a][3] = -((shape[a] as f64 - 1.0) / 2.0) * zooms[a];
            }
            m
        }
    };
    let g = Geometry::new(shape, affine);
    let finite = affine.iter().flatten().all(|v| v.is_finite());
    if !finite || g.voxel_volume_mm3() <= 0.0 {
        return Err(Error::format(
            path,
            format!(
                "degenerate voxel-to-world affine ({:?}): {affine:?}",
                affine_source(h)
            ),
        ));
    }
    if let Some(why) = g.implausible_spacing() {
        return Err(Error::format(
            path,
            format!("{why} ({:?})", affine_source(h)),
        ));
    }
    Ok(g)
}

/// Read `n` voxels of `opened.info.datatype` and convert them to `T`.
fn read_voxels<T: Voxel>(opened: &mut Opened, n: usize) -> Result<(Vec<T>, u64, ValueStats)> {
    let info = &opened.info;
    let path = opened.data_path.clone();
    let dt = info.datatype;
    let nbytes = (n as u64).saturating_mul(dt.size() as u64);
    if nbytes > opened.max_data_bytes {
        return Err(Error::format(
            &path,
            if info.compressed {
                format!(
                    "header promises {nbytes} bytes of voxel data, more than the compressed file can hold: corrupt header"
                )
            } else {
                format!(
                    "file is truncated: header promises {nbytes} bytes of voxel data, the file holds {}",
                    opened.max_data_bytes
                )
            },
        ));
    }
    let in_memory = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    crate::memory::check_fits(&path, in_memory, "the voxel data")?;
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        Error::format(
            &path,
            format!("cannot allocate {nbytes} bytes for the voxel data"),
        )
    })?;
    out.resize(n, T::default());
    let compressed = info.compressed;
    let identity = info.scl_slope == 1.0 && info.scl_inter == 0.0;
    let native = info.big_endian == cfg!(target_endian = "big");
    let mut clipped = 0u64;
    let mut values = ValueStats::default();
    if identity && native && dt.name() == T::NAME {
        opened
            .data
            .read_exact(bytemuck::cast_slice_mut(&mut out))
            .map_err(|e| read_error(&path, compressed, "the voxel data", e))?;
    } else {
        let (slope, inter, big) = (info.scl_slope, info.scl_inter, info.big_endian);
        let size = dt.size();
        let mut buf = vec![0u8; (1 << 20) / size * size];
        let mut done = 0usize;
        while done < n {
            let count = (n - done).min(buf.len() / size);
            let chunk = &mut buf[..count * size];
            opened
                .data
                .read_exact(chunk)
                .map_err(|e| read_error(&path, compressed, "the voxel data", e))?;
            clipped += convert_chunk(
                chunk,
                dt,
                big,
                (slope, inter),
                &mut out[done..done + count],
                &mut values,
            );
            done += count;
        }
    }
    if compressed {
        // Drain the rest of the gzip stream so its CRC and length are verified.
        std::io::copy(&mut opened.data, &mut std::io::sink())
            .map_err(|e| read_error(&path, compressed, "the gzip trailer", e))?;
    }
    Ok((out, clipped, values))
}

/// Decode raw voxels of type `dt` into `out`, applying scaling (`(slope, intercept)`)
/// and adding what the values were to `values`; returns how many values were clamped
/// to `T`'s range.
fn convert_chunk<T: Voxel>(
    raw: &[u8],
    dt: DataType,
    big: bool,
    (slope, inter): (f64, f64),
    out: &mut [T],
    values: &mut ValueStats,
) -> u64 {
    let mut clipped = 0u64;
    let mut chunk_stats = ValueStats::default();
    macro_rules! each {
        ($t:ty, $n:literal) => {{
            for (o, b) in out.iter_mut().zip(raw.chunks_exact($n)) {
                let bytes: [u8; $n] = b.try_into().unwrap_or([0; $n]);
                let v = if big {
                    <$t>::from_be_bytes(bytes)
                } else {
                    <$t>::from_le_bytes(bytes)
                };
                let scaled = v as f64 * slope + inter;
                chunk_stats.add(scaled);
                let (t, c) = T::from_f64(scaled);
                *o = t;
                clipped += c as u64;
            }
        }};
    }
    match dt {
        DataType::I8 => each!(i8, 1),
        DataType::U8 => each!(u8, 1),
        DataType::I16 => each!(i16, 2),
        DataType::U16 => each!(u16, 2),
        DataType::I32 => each!(i32, 4),
        DataType::U32 => each!(u32, 4),
        DataType::I64 => each!(i64, 8),
        DataType::U64 => each!(u64, 8),
        DataType::F32 => each!(f32, 4),
        DataType::F64 => each!(f64, 8),
    }
    values.merge(&chunk_stats);
    clipped
}

/// How to write a NIfTI file.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Header extensions to embed (e.g. the label table).
    pub extensions: Vec<Extension>,
    /// sform/qform code to write (default 1 = scanner anatomical).
    pub xform_code: Option<i16>,
    /// Mark the volume as a label map (`intent_code` = NIFTI_INTENT_LABEL).
    pub label_map: bool,
    /// gzip level 0–9 for `.nii.gz` (default 1, like nibabel: fast, and CT
    /// compresses little better at higher levels).
    pub compression_level: Option<u32>,
}

/// Write `volume` to `path` (`.nii` or `.nii.gz`), keeping its geometry exactly: the
/// affine goes to the sform and, when it has no shear, to the qform as well.
/// The file is written to a temporary file in the same folder and renamed into
/// place, so an interrupted write never leaves a damaged file at `path`.
pub fn write<T: Voxel>(
    path: impl AsRef<Path>,
    volume: &Volume<T>,
    options: &WriteOptions,
) -> Result<()> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let compress = if name.ends_with(".nii.gz") {
        true
    } else if name.ends_with(".nii") {
        false
    } else {
        return Err(Error::Invalid(format!(
            "{}: NIfTI output must end in .nii or .nii.gz",
            path.display()
        )));
    };
    let datatype = match T::NAME {
        "uint8" => nifti::NiftiType::Uint8,
        "int16" => nifti::NiftiType::Int16,
        "int32" => nifti::NiftiType::Int32,
        "float32" => nifti::NiftiType::Float32,
        other => return Err(Error::Invalid(format!("cannot write voxel type {other}"))),
    };
    let header = header_for(volume.geometry(), options);
    let mut sequence = Vec::new();
    for e in &options.extensions {
        let mut data = e.data.clone();
        data.resize((data.len() + 8).div_ceil(16) * 16 - 8, 0);
        sequence.push(nifti::Extension::new(e.code, data));
    }
    let extender = nifti::Extender::from([u8::from(!sequence.is_empty()), 0, 0, 0]);
    let sequence = nifti::ExtensionSequence::new(extender, sequence);
    let shape = volume.shape();
    let array = ndarray::ArrayView3::from_shape(
        ndarray::ShapeBuilder::f((shape[0], shape[1], shape[2])),
        volume.data(),
    )
    .map_err(|e| Error::Invalid(format!("volume layout: {e}")))?;
    let level = options.compression_level.unwrap_or(1).min(9);
    let suffix = if compress { ".nii.gz" } else { ".nii" };
    atomic_write(path, suffix, |tmp| {
        let mut writer = nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .with_extensions(sequence.clone());
        // `compression_level` switches compression on, so only set it for .nii.gz.
        writer = if compress {
            writer.compression_level(flate2::Compression::new(level))
        } else {
            writer.compress(false)
        };
        writer
            .write_nifti_with_type(&array, datatype)
            .map_err(|e| match e {
                nifti::NiftiError::Io(io) => Error::io(path, io),
                other => Error::format(path, format!("writing NIfTI: {other}")),
            })?;
        let written = std::fs::metadata(tmp).map_err(|e| Error::io(tmp, e))?.len();
        if written == 0 {
            return Err(Error::format(path, "NIfTI writer produced an empty file"));
        }
        Ok(())
    })
}

/// A NIfTI-1 header carrying `geometry` (sform, and qform when representable).
fn header_for(geometry: &Geometry, options: &WriteOptions) -> NiftiHeader {
    let m = &geometry.world_from_voxel;
    let code = options.xform_code.filter(|c| *c > 0).unwrap_or(1);
    let mut h = NiftiHeader {
        sform_code: code,
        xyzt_units: 2 | 8, // mm, seconds
        ..NiftiHeader::default()
    };
    let row = |r: usize| {
        [
            m[r][0] as f32,
            m[r][1] as f32,
            m[r][2] as f32,
            m[r][3] as f32,
        ]
    };
    h.srow_x = row(0);
    h.srow_y = row(1);
    h.srow_z = row(2);
    let spacing = geometry.spacing();
    h.pixdim = [
        1.0,
        spacing[0] as f32,
        spacing[1] as f32,
        spacing[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    if let Some((bcd, qfac, zooms, offset)) = affine_to_quaternion(m) {
        h.qform_code = code;
        h.quatern_b = bcd[0] as f32;
        h.quatern_c = bcd[1] as f32;
        h.quatern_d = bcd[2] as f32;
        h.quatern_x = offset[0] as f32;
        h.quatern_y = offset[1] as f32;
        h.quatern_z = offset[2] as f32;
        h.pixdim[0] = qfac as f32;
        h.pixdim[1] = zooms[0] as f32;
        h.pixdim[2] = zooms[1] as f32;
        h.pixdim[3] = zooms[2] as f32;
    }
    if options.label_map {
        h.intent_code = INTENT_LABEL;
    }
    let descrip = b"ctseg";
    h.descrip = vec![0; 80];
    h.descrip[..descrip.len()].copy_from_slice(descrip);
    h
}
