//! Issue 12: safe rotation, end to end against the fake API server, a real git daemon
//! and the real controller (`scripts/test rotation` runs this module).

mod gitops;
mod key_rotation;
