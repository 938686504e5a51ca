//! Issue 11, point 1. Option injection into git, transports, local sources and Git hosts (render and the controller).
