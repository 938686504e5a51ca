//! The `sopsync` binary.
fn main() {}
