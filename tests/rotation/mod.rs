//! Issue 12: safe rotation. `scripts/test rotation` runs every module here.

mod versioned;
