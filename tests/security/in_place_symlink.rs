//! Issue 11, point 3. Commands that write in place write through a symlink to its target, atomically in the target's directory.
