//! The single integration-test binary (STYLE.md 15): one link on 2-core CI.

mod support;

mod age_pq;
mod argocd;
mod chart;
mod cli;
mod commands;
mod controller;
mod fake_apiserver;
mod faults;
mod formats_codec;
mod git;
mod helm;
mod install;
mod interop;
mod kms;
mod kms_keys;
mod layering;
mod leaks;
mod parity;
mod pgp;
mod rbac;
mod render;
mod repo_keys;
mod rotation;
mod security;
mod server;
mod vectors;
mod yaml_codec;
