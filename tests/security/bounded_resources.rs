//! Issue 11, point 4. Memory and time bounded by the input's size: YAML alias expansion, key files, key commands, FIFOs, git's helpers.
