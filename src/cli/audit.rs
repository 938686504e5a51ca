//! `sopsync audit DIR...`: what every SOPS file under the directories trusts and what
//! is wrong with it, for a CI job (issue 14). The checks on recipients are decided in
//! `repo::rekey` (pure); this module finds files, runs the key checks and prints.
//!
//! Exit codes (also in the README): 0 when nothing is wrong; 1 when any problem is
//! found (the report lists them); another code when the audit could not run (100: a
//! directory does not exist, 2: it or git could not be read, 8: bad flags).
//!
//! No output carries a value or a digest of one: recipients, `lastmodified`, rule
//! names and error kinds only (the `mac` is never printed).

use super::repo_files::{discover, Configs};
use super::{format_for, rule_path, Context};
use crate::core::formats::{codec, FormatOptions};
use crate::core::{self as core_ops, DecryptOptions};
use crate::error::CliError;
use crate::repo::rekey::{self, Finding};
use rayon::prelude::*;
use std::path::PathBuf;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// A JUnit XML report (GitLab shows it in merge requests).
    Junit,
}

/// `audit` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directories to audit.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Only the checks that need no key (recipients, rules, plaintext): for jobs that
    /// must not hold one, e.g. merge requests from forks. Without it, the identities
    /// from SOPS_AGE_KEY{,_FILE,_CMD} must open every file and its MAC must verify.
    #[arg(long)]
    structural_only: bool,
}

/// What the audit says about one file.
struct FileReport {
    path: String,
    encrypted: bool,
    recipients: Vec<String>,
    last_modified: Option<String>,
    findings: Vec<Finding>,
}

pub(super) fn run(ctx: &Context, a: Args) -> Result<(), CliError> {
    let found = discover(&a.dirs)?;
    let configs = Configs::new(ctx.config.clone());
    let ids = (!a.structural_only).then(crate::keysource::age_identities);
    let mut files: Vec<FileReport> = found
        .sops
        .par_iter()
        .map(|f| {
            let mut report = FileReport {
                path: f.shown.clone(),
                encrypted: true,
                recipients: Vec::new(),
                last_modified: None,
                findings: Vec::new(),
            };
            let format = format_for(None, &f.path);
            let c = codec(format, &FormatOptions::default());
            let file = match core_ops::parse_encrypted_with(c.as_ref(), format, &f.bytes) {
                Ok(file) => file,
                Err(e) => {
                    report.findings.push(Finding::Unreadable(e.to_string()));
                    return report;
                }
            };
            let md = &file.metadata;
            report.recipients = rekey::recorded_recipients(md);
            report.last_modified = Some(md.last_modified.to_rfc3339());
            match configs.for_file(&f.path) {
                Err(e) => report.findings.push(Finding::BadConfig(e)),
                Ok(None) => report.findings.push(Finding::NoRule(
                    "no .sops.yaml in its directory or above".into(),
                )),
                Ok(Some((cfg, cfg_path))) => {
                    match cfg.config.rule_for(&rule_path(&f.path, &cfg.dir)) {
                        None => report.findings.push(Finding::NoRule(format!(
                            "no creation rule in {} matches it",
                            cfg_path.display()
                        ))),
                        Some(rule) => report.findings.extend(rekey::recipient_findings(md, rule)),
                    }
                }
            }
            if let Some(ids) = &ids {
                match ctx.unwrap_key(md, ids, std::path::Path::new(&f.shown)) {
                    Err(e) => report.findings.push(Finding::CannotOpen(reason(&e))),
                    Ok(key) => {
                        let opts = DecryptOptions {
                            ignore_mac: false,
                            skip_iv_stash: true,
                        };
                        // The plaintext is dropped at once; only the verdict is kept.
                        if let Err(e) = core_ops::decrypt(&file, &key, &opts) {
                            report.findings.push(Finding::MacFailure(e.to_string()));
                        }
                    }
                }
            }
            report
        })
        .collect();
    for (path, why) in &found.failures {
        files.push(FileReport {
            path: path.clone(),
            encrypted: false,
            recipients: Vec::new(),
            last_modified: None,
            findings: vec![Finding::Unreadable(why.clone())],
        });
    }
    for (path, shown) in &found.others {
        if path.file_name().is_some_and(|n| n == ".sops.yaml") {
            continue;
        }
        let Ok(Some((cfg, cfg_path))) = configs.for_file(path) else {
            continue;
        };
        let rules = &cfg.config.creation_rules;
        let Some(rule) = cfg.config.rule_for(&rule_path(path, &cfg.dir)) else {
            continue;
        };
        // A catch-all rule (no path_regex) says how to encrypt, not that every file
        // must be encrypted: only a path_regex rule makes a plaintext file suspect.
        if let Some(re) = &rule.path_regex {
            let index = rules
                .iter()
                .position(|r| std::ptr::eq(r, rule))
                .unwrap_or(0);
            files.push(FileReport {
                path: shown.clone(),
                encrypted: false,
                recipients: Vec::new(),
                last_modified: None,
                findings: vec![Finding::Plaintext(format!(
                    "not encrypted, but creation_rules[{index}] (path_regex `{re}`) of {} matches it",
                    cfg_path.display()
                ))],
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for n in &found.notes {
        eprintln!("note: {}", super::terminal_safe(n));
    }
    let key_checks = ids.is_some();
    let out = match a.format {
        OutputFormat::Table => table(&files, key_checks),
        OutputFormat::Json => json(&files, key_checks, &found.notes),
        OutputFormat::Junit => junit(&files, key_checks),
    };
    super::write_stdout(out.as_bytes())?;
    let problems: usize = files.iter().map(|f| f.findings.len()).sum();
    let bad_files = files.iter().filter(|f| !f.findings.is_empty()).count();
    if problems == 0 {
        Ok(())
    } else {
        Err(CliError::Other {
            message: format!("audit found {problems} problem(s) in {bad_files} file(s)"),
            code: 1,
            hint: Some("see the report above; README \"Auditing and rotating a repository\" says what to do for each kind".into()),
        })
    }
}

/// The error without the file name (the report already names the file).
fn reason(e: &CliError) -> String {
    match e {
        CliError::Core { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn table(files: &[FileReport], key_checks: bool) -> String {
    let width = files.iter().map(|f| f.path.len()).max().unwrap_or(4).max(4);
    let mut s = format!(
        "{:width$}  {:20}  {:10}  STATUS\n",
        "FILE", "LASTMODIFIED", "RECIPIENTS"
    );
    for f in files {
        let status = match f.findings.len() {
            0 => "ok".to_string(),
            n => format!("{n} problem(s)"),
        };
        s.push_str(&format!(
            "{:width$}  {:20}  {:10}  {status}\n",
            super::terminal_safe(&f.path),
            f.last_modified.as_deref().unwrap_or("-"),
            if f.encrypted {
                f.recipients.len().to_string()
            } else {
                "-".into()
            },
        ));
        for r in &f.recipients {
            s.push_str(&format!("    recipient {}\n", super::terminal_safe(r)));
        }
        for p in &f.findings {
            s.push_str(&format!(
                "    {}: {}\n",
                p.kind(),
                super::terminal_safe(p.detail())
            ));
        }
    }
    let problems: usize = files.iter().map(|f| f.findings.len()).sum();
    s.push_str(&format!(
        "{} file(s), {problems} problem(s); key checks {}\n",
        files.len(),
        if key_checks {
            "run"
        } else {
            "not run (--structural-only)"
        }
    ));
    s
}

fn json(files: &[FileReport], key_checks: bool, notes: &[String]) -> String {
    let list: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "encrypted": f.encrypted,
                "recipients": f.recipients,
                "lastmodified": f.last_modified,
                "problems": f.findings.iter().map(|p| serde_json::json!({
                    "kind": p.kind(),
                    "detail": p.detail(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let problems: usize = files.iter().map(|f| f.findings.len()).sum();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({
        "key_checks": key_checks,
        "problems": problems,
        "files": list,
        "notes": notes,
    }))
    .unwrap_or_default();
    s.push('\n');
    s
}

/// Text for XML content and attributes; characters XML 1.0 cannot carry are dropped.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One test case per file (GitLab shows one failure per case, so a file's problems
/// share one `<failure>`), plus a skipped case when the key checks did not run.
fn junit(files: &[FileReport], key_checks: bool) -> String {
    let failures = files.iter().filter(|f| !f.findings.is_empty()).count();
    let tests = files.len() + usize::from(!key_checks);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"sopsync audit\" tests=\"{tests}\" failures=\"{failures}\">\n  <testsuite name=\"sopsync audit\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{}\">\n",
        usize::from(!key_checks)
    ));
    for f in files {
        s.push_str(&format!(
            "    <testcase classname=\"sopsync.audit\" name=\"{}\"",
            xml_escape(&f.path)
        ));
        if f.findings.is_empty() {
            s.push_str("/>\n");
            continue;
        }
        let kinds: Vec<&str> = f.findings.iter().map(Finding::kind).collect();
        let body: Vec<String> = f
            .findings
            .iter()
            .map(|p| format!("{}: {}", p.kind(), p.detail()))
            .collect();
        s.push_str(&format!(
            ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
            xml_escape(&kinds.join(",")),
            xml_escape(&format!(
                "{} problem(s): {}",
                f.findings.len(),
                kinds.join(", ")
            )),
            xml_escape(&body.join("\n"))
        ));
    }
    if !key_checks {
        s.push_str("    <testcase classname=\"sopsync.audit\" name=\"key checks (can open, MAC)\">\n      <skipped message=\"--structural-only: no key in this job; the protected job runs them\"/>\n    </testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_keeps_markup_out_of_the_report() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\nd"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;d"
        );
    }
}
