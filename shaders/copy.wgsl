// copy.wgsl — a plain copy, dst[i] = src[i], to measure the device's own memory bandwidth in the
// same run as a benchmark: (bytes read + bytes written) / time is the denominator of decode
// efficiency.
// Layout: src, dst [n] vec4<f32>; dims.row = invocations per row of the dispatch grid.
// Dispatch: (x, y) workgroups of 256 with x·y·256 ≥ n (y > 1 only past the per-dimension limit);
// invocation i copies element i, so adjacent invocations touch adjacent memory.

struct Dims { n: u32, row: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * dims.row + gid.x;
    if (i < dims.n) { dst[i] = src[i]; }
}
