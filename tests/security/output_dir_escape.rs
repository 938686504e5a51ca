//! Issue 11, point 2. `render --output DIR` never writes outside DIR; Secret names, namespaces and data keys are validated wherever Secrets are produced.
