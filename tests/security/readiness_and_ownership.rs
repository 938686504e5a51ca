//! Issue 11, point 8. /readyz with leader election, and ownership by ownerReference uid.
