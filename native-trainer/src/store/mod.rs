//! What a run writes and reads back: checkpoints (a bundle plus the optimizer and the run's state,
//! for `--resume`) and bundles (what `wgpt` and the page load). Every file is written atomically.

use std::io::Write;
use std::path::Path;

pub mod bundle;
pub mod checkpoint;

/// Writes `bytes` to `path` through a temporary file in the same folder, synced then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(())
}
