//! Issue 11, point 5. One bad entry (escaping or dangling symlink, FIFO, large non-SOPS file) does not empty the output.
