//! Issue 11, point 6. Credentials in Git URLs never reach git's config, argv or messages.
