// copy.wgsl — a plain copy, dst[i] = src[i], to measure the device's own memory bandwidth in the
// same run as a benchmark: (bytes read + bytes written) / time is the denominator of decode
// efficiency.
// Layout: src, dst [n] vec4<f32>; dims.row = invocations per row of the dispatch grid.
// Dispatch: (x, y) workgroups of 256 with x·y·256 ≥ n (y > 1 only past the per-dimension limit);
// invocation i copies element i, so adjacent invocations touch adjacent memory.
// Bindings: `CopyBindings`, uniform `CopyDims` (src/gpu/kernels.rs, uniforms.rs).

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * dims.row + gid.x;
    if (i < dims.n) { dst[i] = src[i]; }
}
