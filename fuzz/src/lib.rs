//! The fuzz targets' bodies (`targets.rs`, shared with the regression test CI runs:
//! `tests/fuzz_regressions.rs`) and the allocation guard they run under.
pub mod targets;
