//! Issue 11, point 7. The shipped binary keeps ASLR (PIE) and full RELRO.
