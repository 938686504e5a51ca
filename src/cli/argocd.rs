//! `sopsync argocd generate|init`: the Argo CD CMP v2 commands over [`crate::argocd`].
//! Reads the CMP environment and parameters; prints manifests on stdout only when
//! everything succeeded, else one line on stderr and a non-zero exit.

use super::helm::{helm_err, helm_program, helm_timeout};
use super::write_stdout;
use crate::argocd::{self, AppContext, GenerateError, Mode};
use crate::error::CliError;
use std::process::Stdio;
use zeroize::Zeroizing;

/// `argocd` subcommands.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(clap::Subcommand, Debug)]
enum Step {
    /// The CMP `init` step: checks the mode parameter; prints nothing.
    Init,
    /// The CMP `generate` step: the app directory (the working directory) → manifests.
    Generate,
}

/// Seconds helm may take in `helm` and chart apps: under Argo CD's 90 s plugin timeout.
const HELM_TIMEOUT_SECS: u64 = 75;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// A parameter: `ARGOCD_APP_PARAMETERS` (JSON), else `PARAM_<NAME>`; arrays come back
/// as lists, strings split on commas.
fn parameter(name: &str) -> Result<Option<Vec<String>>, CliError> {
    if let Ok(json) = std::env::var("ARGOCD_APP_PARAMETERS") {
        let list: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| bad(format!("ARGOCD_APP_PARAMETERS is not JSON: {e}")))?;
        for p in list.as_array().into_iter().flatten() {
            if p.get("name").and_then(|n| n.as_str()) != Some(name) {
                continue;
            }
            if let Some(s) = p.get("string").and_then(|s| s.as_str()) {
                return Ok(Some(split(s)));
            }
            if let Some(a) = p.get("array").and_then(|a| a.as_array()) {
                return Ok(Some(
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                ));
            }
        }
    }
    Ok(
        std::env::var(format!("PARAM_{}", name.to_ascii_uppercase()))
            .ok()
            .map(|s| split(&s)),
    )
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

fn bad(message: String) -> CliError {
    CliError::Other {
        message,
        code: 1,
        hint: None,
    }
}

fn mode() -> Result<Mode, CliError> {
    let name = match parameter("mode")? {
        Some(v) => v.join(","),
        None => env("ARGOCD_ENV_SOPSYNC_MODE"),
    };
    Mode::parse(&name).map_err(bad)
}

/// Is any age identity configured for the sidecar (then safe mode verifies files)?
fn keys_configured() -> bool {
    ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
        || crate::keysource::default_key_file().is_some_and(|p| p.exists())
}

/// helm with the chart's values files; SOPS ones go through pipes.
fn run_helm(args: &[String]) -> Result<Zeroizing<Vec<u8>>, GenerateError> {
    let os: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let plan = crate::helm::plan_args(&os);
    let keys = crate::keysource::keys();
    let fail = |e: CliError| GenerateError::Helm(e.to_string());
    let values = crate::helm::prepare_values(&plan, &keys).map_err(|e| fail(helm_err(e)))?;
    let limits = crate::child::Limits {
        timeout: helm_timeout(HELM_TIMEOUT_SECS).map_err(fail)?,
        max_stdout: 256 << 20,
        max_stderr: Some(1 << 20),
        on_terminal: false,
    };
    let done = crate::helm::run_helm(
        &helm_program(),
        &plan,
        values,
        |c| {
            c.stdin(Stdio::null());
        },
        &limits,
    )
    .map_err(|e| fail(helm_err(e)))?;
    if !done.status.success() {
        let text = String::from_utf8_lossy(&done.stderr);
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(GenerateError::Helm(format!("{first} ({})", done.status)));
    }
    Ok(done.stdout)
}

fn generate() -> Result<(), CliError> {
    let mode = mode()?;
    let app = AppContext {
        app_name: env("ARGOCD_APP_NAME"),
        namespace: env("ARGOCD_APP_NAMESPACE"),
        revision: env("ARGOCD_APP_REVISION"),
        repo_url: env("ARGOCD_APP_SOURCE_REPO_URL"),
        kube_version: std::env::var("KUBE_VERSION").ok().filter(|v| !v.is_empty()),
        api_versions: split(&env("KUBE_API_VERSIONS")),
        value_files: parameter("valueFiles")?.unwrap_or_default(),
    };
    let root = std::env::current_dir().map_err(|e| bad(format!("no working directory: {e}")))?;
    let keys = crate::keysource::keys();
    let out = argocd::generate(&root, mode, &app, &keys, keys_configured(), &run_helm)
        .map_err(|e| bad(e.to_string()))?;
    write_stdout(&out)
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    let result = match a.step {
        Step::Init => mode().map(|_| ()),
        Step::Generate => generate(),
    };
    if let Err(e) = result {
        // The CMP contract: one line on stderr, nothing on stdout, a non-zero exit.
        let mut line = format!("sopsync argocd: {e}");
        if let Some(hint) = e.hint() {
            line.push_str(&format!(" ({hint})"));
        }
        eprintln!("{}", line.replace('\n', " "));
        std::process::exit(e.exit_code().max(1));
    }
    Ok(())
}
