//! The pure core: tree, formats, cipher, MAC and key wrapping.
//!
//! Layering rule: nothing in `core` does I/O, spawns threads, reads the
//! environment or the clock, or imports from outside `core` (checked by
//! `tests/layering.rs`). Randomness and time come in as parameters.

pub mod formats;
pub mod keys;
pub mod number;
pub mod secret;
pub mod tree;
