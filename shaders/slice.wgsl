// Slice compositing on the GPU: window/level of the HU slice, then up to two label
// layers (fill / outline / both) or the TP/FP/FN difference view. The arithmetic
// follows the CPU reference compositor (src/render/cpu.rs); a test renders both and
// compares them.

struct Params {
    window_low: f32,
    window_width: f32,
    opacity0: f32,
    opacity1: f32,
    // Per layer: bit 0 fill, bit 1 outline.
    mode0: u32,
    mode1: u32,
    // Bit 0: layer 0 present, bit 1: layer 1 present, bit 2: difference view
    // (layer 0 = GT, layer 1 = prediction), bit 3: target expects linear colour.
    flags: u32,
    diff_opacity: f32,
    size: vec2<u32>,
    pad: vec2<u32>,
    // Where the image lies in the drawn rectangle: xy = top-left, zw = size, both as
    // fractions of the rectangle (zoom and pan); outside it the view is black.
    image_rect: vec4<f32>,
};

@group(0) @binding(0) var<uniform> params: Params;
// Per label value: sRGB colour 0..255 in xyz, w = 1 when drawn.
@group(0) @binding(1) var<uniform> lut: array<vec4<f32>, 256>;
@group(0) @binding(2) var hu_tex: texture_2d<f32>;
@group(0) @binding(3) var layer0: texture_2d<u32>;
@group(0) @binding(4) var layer1: texture_2d<u32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    // Two triangles covering the viewport; uv (0,0) is the top-left texel.
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let uv = corners[index];
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn label_at(tex: texture_2d<u32>, p: vec2<i32>) -> u32 {
    return textureLoad(tex, p, 0).r;
}

fn shows(label: u32) -> bool {
    return label != 0u && lut[label].w > 0.5;
}

fn is_boundary(tex: texture_2d<u32>, p: vec2<i32>, size: vec2<i32>) -> bool {
    if (p.x == 0 || p.y == 0 || p.x == size.x - 1 || p.y == size.y - 1) {
        return true;
    }
    let l = label_at(tex, p);
    return label_at(tex, p + vec2<i32>(-1, 0)) != l
        || label_at(tex, p + vec2<i32>(1, 0)) != l
        || label_at(tex, p + vec2<i32>(0, -1)) != l
        || label_at(tex, p + vec2<i32>(0, 1)) != l;
}

fn blend(base: vec3<f32>, color: vec3<f32>, a: f32) -> vec3<f32> {
    return base * (1.0 - a) + color * a;
}

fn draw_layer(c: vec3<f32>, tex: texture_2d<u32>, p: vec2<i32>, size: vec2<i32>, mode: u32, opacity: f32) -> vec3<f32> {
    let l = label_at(tex, p);
    if (!shows(l)) {
        return c;
    }
    let color = lut[l].xyz;
    if ((mode & 2u) != 0u && is_boundary(tex, p, size)) {
        return blend(c, color, 1.0);
    }
    if ((mode & 1u) != 0u) {
        return blend(c, color, clamp(opacity, 0.0, 1.0));
    }
    return c;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<i32>(params.size);
    let uv = (in.uv - params.image_rect.xy) / params.image_rect.zw;
    if (uv.x < 0.0 || uv.y < 0.0 || uv.x >= 1.0 || uv.y >= 1.0) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    let p = clamp(vec2<i32>(floor(uv * vec2<f32>(params.size))), vec2<i32>(0), size - vec2<i32>(1));
    let hu = textureLoad(hu_tex, p, 0).r;
    let width = max(params.window_width, 1.1920929e-7);
    let g = round(clamp((hu - params.window_low) / width, 0.0, 1.0) * 255.0);
    var c = vec3<f32>(g, g, g);
    if ((params.flags & 4u) != 0u) {
        let gt = label_at(layer0, p);
        let pred = label_at(layer1, p);
        let a = clamp(params.diff_opacity, 0.0, 1.0);
        if (shows(gt)) {
            if (pred == gt) {
                c = blend(c, vec3<f32>(40.0, 200.0, 60.0), a);
            } else {
                c = blend(c, vec3<f32>(50.0, 120.0, 255.0), a);
            }
        } else if (shows(pred)) {
            c = blend(c, vec3<f32>(230.0, 50.0, 50.0), a);
        }
    } else {
        if ((params.flags & 1u) != 0u) {
            c = draw_layer(c, layer0, p, size, params.mode0, params.opacity0);
        }
        if ((params.flags & 2u) != 0u) {
            c = draw_layer(c, layer1, p, size, params.mode1, params.opacity1);
        }
    }
    var rgb = round(c) / 255.0;
    if ((params.flags & 8u) != 0u) {
        rgb = srgb_to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
