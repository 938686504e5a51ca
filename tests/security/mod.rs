//! Issue 11: the security classes, tried as an attacker would. One module per class,
//! each test named after the behaviour it pins; `scripts/test security::` runs them all.
//! Every test here failed on the code before issue 11 and passes after.

mod bounded_resources;
mod git_option_injection;
mod in_place_symlink;
mod output_dir_escape;
mod partial_render;
mod readiness_and_ownership;
mod release_hardening;
mod url_credentials;
