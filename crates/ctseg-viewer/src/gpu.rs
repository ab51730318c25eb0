//! The GPU slice compositor: `shaders/slice.wgsl` through wgpu. The viewer draws
//! slices with it inside an egui_wgpu paint callback; [`render_offscreen`] draws one
//! slice into a texture so tests can compare it with the CPU reference.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};

use ctseg_core::render::cpu::{CompositeParams, LabelTable, LayerParams};
use ctseg_core::window::Window;

/// The WGSL source.
pub const SHADER: &str = include_str!("../../../shaders/slice.wgsl");

/// Pixels of one slice, as the shader reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceUpload {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// HU values.
    pub hu: Vec<f32>,
    /// First label layer (GT in the difference view); zeros when absent.
    pub layer0: Vec<u8>,
    /// Second label layer (prediction in the difference view); zeros when absent.
    pub layer1: Vec<u8>,
}

/// Everything else the shader needs (small; written every frame).
#[derive(Debug, Clone, PartialEq)]
pub struct ShaderParams {
    /// Display window.
    pub window: Window,
    /// Styles of the two layer slots (`None`: slot empty).
    pub layers: [Option<LayerParams>; 2],
    /// Difference view opacity (`Some` switches to the difference view).
    pub difference: Option<f32>,
    /// Label colours and visibility.
    pub table: LabelTable,
    /// Image rectangle in the drawn rectangle: `[x, y, w, h]` as fractions.
    pub image_rect: [f32; 4],
    /// Whether the render target is sRGB (the shader then writes linear values).
    pub linear_output: bool,
}

/// The shader parameters for compositor inputs, without copying any pixels.
pub fn shader_params(
    n: usize,
    window: Window,
    table: &LabelTable,
    overlays: CompositeParams<'_>,
) -> ShaderParams {
    let mut layers = [None, None];
    let mut difference = None;
    match overlays {
        CompositeParams::Layers(list) => {
            for (slot, (labels, params)) in list.iter().take(2).enumerate() {
                if labels.len() >= n {
                    layers[slot] = Some(*params);
                }
            }
        }
        CompositeParams::Difference { gt, pred, opacity } => {
            if gt.len() >= n && pred.len() >= n {
                difference = Some(opacity);
            }
        }
    }
    ShaderParams {
        window,
        layers,
        difference,
        table: table.clone(),
        image_rect: [0.0, 0.0, 1.0, 1.0],
        linear_output: false,
    }
}

/// Split CPU compositor inputs into what the GPU path uploads.
pub fn shader_inputs(
    hu: &[i16],
    width: usize,
    height: usize,
    window: Window,
    table: &LabelTable,
    overlays: CompositeParams<'_>,
) -> (SliceUpload, ShaderParams) {
    let n = width * height;
    let params = shader_params(n, window, table, overlays);
    let copy = |src: &[u8], used: bool| {
        let mut dst = vec![0u8; n];
        if used {
            dst.copy_from_slice(&src[..n]);
        }
        dst
    };
    let (layer0, layer1) = match overlays {
        CompositeParams::Layers(list) => {
            let get = |i: usize| list.get(i).map_or(&[][..], |(l, _)| *l);
            (
                copy(get(0), params.layers[0].is_some()),
                copy(get(1), params.layers[1].is_some()),
            )
        }
        CompositeParams::Difference { gt, pred, .. } => {
            let used = params.difference.is_some();
            (copy(gt, used), copy(pred, used))
        }
    };
    (
        SliceUpload {
            width,
            height,
            hu: hu.iter().take(n).map(|&v| v as f32).collect(),
            layer0,
            layer1,
        },
        params,
    )
}

impl ShaderParams {
    /// The uniform block `Params` of the shader (64 bytes).
    fn uniform_bytes(&self, width: usize, height: usize) -> Vec<u8> {
        let mut words = [0u32; 16];
        let f = |v: f32| v.to_bits();
        words[0] = f(self.window.low());
        words[1] = f(self.window.width);
        let mode = |p: Option<LayerParams>| {
            p.map_or(0, |p| {
                u32::from(p.mode.fills()) | (u32::from(p.mode.outlines()) << 1)
            })
        };
        words[2] = f(self.layers[0].map_or(0.0, |p| p.opacity));
        words[3] = f(self.layers[1].map_or(0.0, |p| p.opacity));
        words[4] = mode(self.layers[0]);
        words[5] = mode(self.layers[1]);
        words[6] = u32::from(self.layers[0].is_some())
            | (u32::from(self.layers[1].is_some()) << 1)
            | (u32::from(self.difference.is_some()) << 2)
            | (u32::from(self.linear_output) << 3);
        words[7] = f(self.difference.unwrap_or(0.0));
        words[8] = width as u32;
        words[9] = height as u32;
        for (i, v) in self.image_rect.iter().enumerate() {
            words[12 + i] = f(*v);
        }
        bytemuck::cast_slice(&words).to_vec()
    }

    /// The label table as 256 `vec4<f32>`.
    fn lut_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256 * 4);
        for l in 0..256 {
            let c = self.table.colors[l];
            v.extend([
                c[0] as f32,
                c[1] as f32,
                c[2] as f32,
                if self.table.visible[l] { 1.0 } else { 0.0 },
            ]);
        }
        bytemuck::cast_slice(&v).to_vec()
    }
}

/// The render pipeline (one per target format).
pub struct GpuCompositor {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
}

/// GPU resources of one slice view.
pub struct GpuSlice {
    size: (usize, usize),
    params: wgpu::Buffer,
    lut: wgpu::Buffer,
    hu: wgpu::Texture,
    layer0: wgpu::Texture,
    layer1: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn texture_entry(binding: u32, sample_type: wgpu::TextureSampleType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type,
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

impl GpuCompositor {
    /// Compile the shader for render targets of `format`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ctseg slice shader"),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(SHADER)),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("ctseg slice bind group layout"),
            entries: &[
                uniform_entry(0),
                uniform_entry(1),
                texture_entry(2, wgpu::TextureSampleType::Float { filterable: false }),
                texture_entry(3, wgpu::TextureSampleType::Uint),
                texture_entry(4, wgpu::TextureSampleType::Uint),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("ctseg slice pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("ctseg slice pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        GpuCompositor { pipeline, layout }
    }

    /// Allocate the buffers and textures of a `width×height` slice view.
    pub fn create_slice(&self, device: &wgpu::Device, width: usize, height: usize) -> GpuSlice {
        let buffer = |label: &str, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let texture = |label: &str, format: wgpu::TextureFormat| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: width.max(1) as u32,
                    height: height.max(1) as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let params = buffer("ctseg slice params", 64);
        let lut = buffer("ctseg label table", 256 * 16);
        let hu = texture("ctseg hu", wgpu::TextureFormat::R32Float);
        let layer0 = texture("ctseg layer 0", wgpu::TextureFormat::R8Uint);
        let layer1 = texture("ctseg layer 1", wgpu::TextureFormat::R8Uint);
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let (hv, l0v, l1v) = (view(&hu), view(&layer0), view(&layer1));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ctseg slice bind group"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: lut.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&hv),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&l0v),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&l1v),
                },
            ],
        });
        GpuSlice {
            size: (width, height),
            params,
            lut,
            hu,
            layer0,
            layer1,
            bind_group,
        }
    }
}

fn write(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    data: &[u8],
    bytes_per_pixel: usize,
    (w, h): (usize, usize),
) {
    if w == 0 || h == 0 || data.len() < w * h * bytes_per_pixel {
        return;
    }
    queue.write_texture(
        texture.as_image_copy(),
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((w * bytes_per_pixel) as u32),
            rows_per_image: None,
        },
        wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
    );
}

impl GpuSlice {
    /// Slice size in pixels.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Upload new slice pixels (same size as the slice view).
    pub fn upload_pixels(&self, queue: &wgpu::Queue, upload: &SliceUpload) {
        let size = (upload.width, upload.height);
        write(queue, &self.hu, bytemuck::cast_slice(&upload.hu), 4, size);
        write(queue, &self.layer0, &upload.layer0, 1, size);
        write(queue, &self.layer1, &upload.layer1, 1, size);
    }

    /// Upload window, styles and the label table.
    pub fn upload_params(&self, queue: &wgpu::Queue, params: &ShaderParams) {
        queue.write_buffer(
            &self.params,
            0,
            &params.uniform_bytes(self.size.0, self.size.1),
        );
        queue.write_buffer(&self.lut, 0, &params.lut_bytes());
    }

    /// Record the draw (the render pass's viewport is the drawn rectangle).
    pub fn draw(&self, compositor: &GpuCompositor, pass: &mut wgpu::RenderPass<'_>) {
        pass.set_pipeline(&compositor.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}

/// Composite one slice on the GPU into an `Rgba8Unorm` texture of the slice's size
/// and read it back as RGBA8 (tests and the CPU/GPU agreement check).
pub fn render_offscreen(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    upload: &SliceUpload,
    params: &ShaderParams,
) -> Result<Vec<u8>, String> {
    let (w, h) = (upload.width, upload.height);
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let compositor = GpuCompositor::new(device, format);
    let slice = compositor.create_slice(device, w, h);
    slice.upload_pixels(queue, upload);
    let params = ShaderParams {
        linear_output: false,
        image_rect: [0.0, 0.0, 1.0, 1.0],
        ..params.clone()
    };
    slice.upload_params(queue, &params);
    let target = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("ctseg offscreen target"),
        size: wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = target.create_view(&wgpu::TextureViewDescriptor::default());
    let padded = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize)
        * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("ctseg offscreen readback"),
        size: (padded * h) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("ctseg offscreen"),
    });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("ctseg offscreen pass"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        slice.draw(&compositor, &mut pass);
    }
    encoder.copy_texture_to_buffer(
        target.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded as u32),
                rows_per_image: None,
            },
        },
        wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
    );
    let index = queue.submit(std::iter::once(encoder.finish()));
    let (tx, rx) = std::sync::mpsc::channel();
    readback
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(std::time::Duration::from_secs(30)),
        })
        .map_err(|e| format!("GPU did not finish: {e}"))?;
    rx.recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("readback failed: {e}"))?;
    let data = readback
        .slice(..)
        .get_mapped_range()
        .map_err(|e| format!("readback failed: {e:?}"))?;
    let mut out = Vec::with_capacity(w * h * 4);
    for row in data.chunks_exact(padded).take(h) {
        out.extend_from_slice(&row[..w * 4]);
    }
    Ok(out)
}

/// GPU state kept in egui_wgpu's callback resources.
pub struct GpuViews {
    compositor: GpuCompositor,
    /// Per view slot: its resources and the generation of the pixels uploaded.
    slots: HashMap<usize, (GpuSlice, u64)>,
}

impl GpuViews {
    /// Pipeline for the app's render target format.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        GpuViews {
            compositor: GpuCompositor::new(device, format),
            slots: HashMap::new(),
        }
    }
}

/// Paint callback drawing view `slot`: uploads the pixels when their generation is
/// new to the GPU (a frame whose output is discarded never loses an upload), then the
/// params.
pub struct SliceCallback {
    /// View slot.
    pub slot: usize,
    /// The slice's pixels and their generation (changes whenever the pixels do).
    pub upload: (u64, Arc<SliceUpload>),
    /// Window, styles, label table, image rectangle.
    pub params: ShaderParams,
}

impl egui_wgpu::CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(views) = resources.get_mut::<GpuViews>() else {
            return Vec::new();
        };
        let (generation, upload) = &self.upload;
        let size = (upload.width, upload.height);
        let stale = views
            .slots
            .get(&self.slot)
            .is_none_or(|(s, _)| s.size() != size);
        if stale {
            let slice = views.compositor.create_slice(device, size.0, size.1);
            views.slots.insert(self.slot, (slice, u64::MAX));
        }
        if let Some((s, uploaded)) = views.slots.get_mut(&self.slot) {
            if *uploaded != *generation {
                s.upload_pixels(queue, upload);
                *uploaded = *generation;
            }
            s.upload_params(queue, &self.params);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: eframe::egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        if let Some(views) = resources.get::<GpuViews>()
            && let Some((slice, _)) = views.slots.get(&self.slot)
        {
            slice.draw(&views.compositor, pass);
        }
    }
}
