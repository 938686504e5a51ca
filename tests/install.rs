//! How users install sopsync (issue 17): the container image carries every program the
//! binary can run, the shell completions and the man page generate from the clap tree,
//! and every subcommand's `--help` ends with examples that still parse.
//!
//! No image can be built on the development machines or in CI (no container engine), so
//! the image is checked by reading the Dockerfile: the programs the binary spawns are
//! found in `src/` (every `Command::new(`), not copied into a hand list, so a new spawn
//! site without an image change fails here.

use super::support::{project_root, run, run_ok, sopsync, tempdir, tool};
use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How the runtime image provides a program.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    /// A Debian package of the runtime stage's `apt-get install`.
    Apt(&'static str),
    /// The pinned, checksum-verified helm copied from its own stage.
    Helm,
}

/// Every program the image must hold, with what provides it. A program the source
/// spawns that is missing here fails the check with the line that spawns it.
const PROGRAMS: &[(&str, Provider)] = &[
    ("git", Provider::Apt("git")),
    // git's helper for http(s):// remotes, shipped in Debian's `git` package
    // (/usr/lib/git-core/git-remote-https); it verifies servers with the CA bundle.
    ("git-remote-https", Provider::Apt("git")),
    ("ssh", Provider::Apt("openssh-client")),
    // bookworm-slim's /bin/sh (Essential, installed anyway; named so the list is explicit).
    ("sh", Provider::Apt("dash")),
    ("helm", Provider::Helm),
    // PID 1 of the image, which reaps the helpers git leaves behind.
    ("tini", Provider::Apt("tini")),
    // Stops the gpg-agent of the controller's private GnuPG home (issue 15).
    ("gpgconf", Provider::Apt("gpgconf")),
    // PGP keys: the default GnuPG (SOPS_GPG_EXEC unset) and the agent it starts.
    ("gpg", Provider::Apt("gpg")),
    ("gpg-agent", Provider::Apt("gpg-agent")),
];

/// Spawn sites whose program the user chooses at run time: the image cannot carry it,
/// so the Dockerfile must say what it does instead (a comment naming the variable).
/// (file, the argument of `Command::new`, the variable the Dockerfile must discuss).
const USER_CHOSEN: &[(&str, &str, &str)] = &[
    // `edit`: $SOPS_EDITOR, $EDITOR, then vim, nano or vi from PATH.
    ("src/cli/edit.rs", "&argv[0]", "SOPS_EDITOR"),
    // The age identity command of SOPS_AGE_KEY_CMD.
    ("src/keysource.rs", "prog", "SOPS_AGE_KEY_CMD"),
    // `sopsync helm` and the Argo CD plugin: $SOPSYNC_HELM, else the image's helm.
    ("src/helm.rs", "program", "SOPSYNC_HELM"),
    // GnuPG (issue 15): $SOPS_GPG_EXEC, else the image's gpg.
    ("src/pgp.rs", "&self.program", "SOPS_GPG_EXEC"),
];

/// Programs that a spawned program runs in turn, when the source shows the trigger.
/// (text in src/, program, why).
const INDIRECT: &[(&str, &str, &str)] = &[
    (
        "GIT_SSH_COMMAND",
        "ssh",
        "git runs GIT_SSH_COMMAND for ssh:// URLs",
    ),
    (
        "GIT_SSH_COMMAND",
        "sh",
        "git runs GIT_SSH_COMMAND through `sh -c`",
    ),
    (
        "Command::new(\"git\")",
        "git-remote-https",
        "git runs it for http(s):// URLs",
    ),
    (
        "SOPS_GPG_EXEC",
        "gpg",
        "the default GnuPG when SOPS_GPG_EXEC is unset",
    ),
    (
        "SOPS_GPG_EXEC",
        "gpg-agent",
        "gpg starts it for every secret-key operation",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One `Command::new(…)` of a process (not clap's `Command`), with where it is.
struct SpawnSite {
    file: String,
    line: usize,
    argument: String,
}

/// Every process spawn in `src/`, and the concatenated source (for the triggers).
fn spawn_sites() -> (Vec<SpawnSite>, String) {
    let root = project_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut sites = Vec::new();
    let mut all = String::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read source");
        let rel = path
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        for (at, _) in text.match_indices("Command::new(") {
            if text[..at].ends_with("clap::") {
                continue;
            }
            let rest = &text[at + "Command::new(".len()..];
            let mut depth = 0usize;
            let end = rest
                .char_indices()
                .find(|&(_, c)| match c {
                    '(' | '[' => {
                        depth += 1;
                        false
                    }
                    ')' | ']' if depth > 0 => {
                        depth -= 1;
                        false
                    }
                    ')' => true,
                    _ => false,
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("{rel}: unclosed Command::new("));
            sites.push(SpawnSite {
                file: rel.clone(),
                line: text[..at].lines().count(),
                argument: rest[..end].trim().to_string(),
            });
        }
        all.push_str(&text);
    }
    (sites, all)
}

/// The Dockerfile with continuation lines joined, split into stages at each `FROM`.
fn dockerfile_stages() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(project_root().join("Dockerfile"))
        .expect("the Dockerfile at the project root (issue 17)");
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') && current.is_empty() {
            lines.push(trimmed.to_string());
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for line in lines {
        if line.to_ascii_uppercase().starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(line);
        }
    }
    assert!(stages.len() >= 2, "the Dockerfile must be multi-stage");
    stages
}

/// The packages of every `apt-get install` in a stage.
fn apt_packages(stage: &[String]) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for line in stage.iter().filter(|l| l.starts_with("RUN ")) {
        for command in line.split(['&', ';', '|']) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) else {
                continue;
            };
            for word in &words[at + 2..] {
                if !word.starts_with('-') {
                    packages.insert(word.to_string());
                }
            }
        }
    }
    packages
}

fn stage_named<'a>(stages: &'a [Vec<String>], name: &str) -> &'a [String] {
    stages
        .iter()
        .find(|s| {
            s[0].split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("as") && w[1] == name)
        })
        .unwrap_or_else(|| panic!("no Dockerfile stage `AS {name}`"))
}

#[test]
fn every_program_the_binary_can_spawn_is_installed_in_the_image() {
    let (sites, source) = spawn_sites();
    assert!(
        sites.iter().any(|s| s.argument == "\"git\""),
        "the scan found no `Command::new(\"git\")`: is it still reading src/?"
    );
    let mut needed: Vec<(String, String)> = Vec::new(); // (program, why)
    let mut problems = Vec::new();
    let text = std::fs::read_to_string(project_root().join("Dockerfile")).unwrap_or_default();
    for site in &sites {
        let at = format!("{}:{}", site.file, site.line);
        if let Some(program) = site
            .argument
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
        {
            needed.push((program.to_string(), format!("spawned at {at}")));
        } else if let Some((_, _, variable)) = USER_CHOSEN
            .iter()
            .find(|(file, arg, _)| *file == site.file && *arg == site.argument)
        {
            if !text.contains(variable) {
                problems.push(format!(
                    "{at} runs a program the user names ({variable}); the Dockerfile must say in a comment what the image does about it"
                ));
            }
        } else {
            problems.push(format!(
                "{at} spawns `{}`, a program this check does not know: add it to the image (Dockerfile) and to PROGRAMS or USER_CHOSEN in tests/install.rs",
                site.argument
            ));
        }
    }
    for (trigger, program, why) in INDIRECT {
        if source.contains(trigger) {
            needed.push((program.to_string(), why.to_string()));
        }
    }
    // Issue 17: the Argo CD sidecar's helm mode runs helm from the same image.
    needed.push(("helm".into(), "the Argo CD sidecar's helm mode".into()));

    let stages = dockerfile_stages();
    let runtime = stages.last().expect("a runtime stage");
    let packages = apt_packages(runtime);
    for (program, why) in &needed {
        match PROGRAMS.iter().find(|(p, _)| p == program) {
            None => problems.push(format!(
                "`{program}` ({why}) is not in PROGRAMS of tests/install.rs: install it in the Dockerfile's runtime stage and say how here"
            )),
            Some((_, Provider::Apt(package))) if !packages.contains(*package) => {
                problems.push(format!(
                    "`{program}` ({why}) needs the Debian package `{package}` in the runtime stage's apt-get install (found: {packages:?})"
                ))
            }
            Some((_, Provider::Apt(_))) => {}
            Some((_, Provider::Helm)) => {
                let copied = runtime.iter().any(|l| {
                    l.starts_with("COPY --from=helm ") && l.ends_with(" /usr/local/bin/helm")
                });
                if !copied {
                    problems.push(format!(
                        "`helm` ({why}) must be copied into the runtime stage: COPY --from=helm … /usr/local/bin/helm"
                    ));
                }
            }
        }
    }
    // git verifies https servers with the CA bundle; the binary's own TLS (kube) uses
    // its compiled-in roots, but git-remote-https reads /etc/ssl/certs.
    if !packages.contains("ca-certificates") {
        problems.push("the runtime stage must install ca-certificates (git over https)".into());
    }
    if !runtime
        .iter()
        .any(|l| l.starts_with("RUN ") && l.contains("--no-install-recommends"))
    {
        problems.push(
            "the runtime stage's apt-get install must use --no-install-recommends (nothing more than what the binary runs)".into(),
        );
    }
    let entrypoint = runtime
        .iter()
        .find(|l| l.starts_with("ENTRYPOINT "))
        .map(String::as_str)
        .unwrap_or("");
    if !entrypoint.contains("tini") || !entrypoint.contains("sopsync") {
        problems.push(format!(
            "the ENTRYPOINT must run sopsync under tini (PID 1 reaps orphaned git helpers): {entrypoint:?}"
        ));
    }
    assert!(
        problems.is_empty(),
        "the image lacks what the binary runs:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn helm_in_the_image_is_pinned_and_checksum_verified_per_architecture() {
    let stages = dockerfile_stages();
    let helm = stage_named(&stages, "helm").join("\n");
    let arg_value = |name: &str| {
        stages
            .iter()
            .flatten()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("ARG {name}=… missing from the Dockerfile"))
    };
    let version = arg_value("HELM_VERSION");
    assert!(
        version.starts_with("v3.") && version.split('.').count() == 3,
        "HELM_VERSION pins one Helm 3 release: {version}"
    );
    for arch in ["AMD64", "ARM64"] {
        let sum = arg_value(&format!("HELM_SHA256_{arch}"));
        assert!(
            sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()),
            "HELM_SHA256_{arch} is a sha256: {sum}"
        );
        assert!(
            helm.contains(&format!("HELM_SHA256_{arch}")),
            "the helm stage uses HELM_SHA256_{arch}"
        );
    }
    assert!(
        helm.contains("sha256sum -c") || helm.contains("sha256sum --check"),
        "the helm stage checks the download with sha256sum -c:\n{helm}"
    );
    assert!(
        helm.contains("TARGETARCH"),
        "the helm stage picks its archive by TARGETARCH (amd64 and arm64)"
    );
}

#[test]
fn image_runs_as_the_charts_fixed_non_root_uid_with_a_passwd_entry() {
    let stages = dockerfile_stages();
    let runtime = stages.last().expect("a runtime stage");
    let user = runtime
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap_or_else(|| panic!("the runtime stage sets no USER"))
        .trim();
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: u32 = uid.parse().unwrap_or_else(|_| {
        panic!("USER is numeric (Kubernetes checks runAsNonRoot by number): {user}")
    });
    assert_ne!(uid, 0, "USER is not root");
    let values = std::fs::read_to_string(project_root().join("charts/sopsync/values.yaml"))
        .expect("chart values");
    for key in ["runAsUser", "runAsGroup"] {
        let chart: u32 = values
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("values.yaml has no {key}"))
            .trim()
            .parse()
            .expect("numeric");
        let image = if key == "runAsUser" {
            uid.to_string()
        } else {
            gid.to_string()
        };
        assert_eq!(
            image,
            chart.to_string(),
            "the image's USER and the chart's podSecurityContext.{key} agree"
        );
    }
    // ssh refuses to run for a uid without a passwd entry ("No user exists for uid").
    let joined = runtime.join("\n");
    assert!(
        joined.contains(&format!("useradd --uid {uid} --gid {gid}"))
            && joined.contains(&format!("groupadd --gid {gid}")),
        "the runtime stage creates the user and group {uid}:{gid} (ssh needs a passwd entry)"
    );
}

#[test]
fn builder_and_runtime_are_the_same_debian_release() {
    let stages = dockerfile_stages();
    let image = |stage: &[String]| {
        stage[0]
            .split_whitespace()
            .nth(1)
            .expect("FROM names an image")
            .to_string()
    };
    let builder = image(stage_named(&stages, "builder"));
    let runtime = image(stages.last().expect("a runtime stage"));
    // The binary links glibc and loads the runtime's NSS modules: same release, same glibc.
    let release = runtime
        .strip_prefix("debian:")
        .and_then(|r| r.strip_suffix("-slim"))
        .unwrap_or_else(|| panic!("the runtime is a debian:<release>-slim image: {runtime}"));
    assert!(
        builder.starts_with("rust:") && builder.ends_with(&format!("-{release}")),
        "the builder ({builder}) is a rust image on the runtime's Debian release ({release})"
    );
}

#[test]
fn image_has_oci_labels_and_the_build_context_skips_local_state() {
    let text = std::fs::read_to_string(project_root().join("Dockerfile")).expect("Dockerfile");
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.source",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(text.contains(label), "Dockerfile LABEL {label}");
    }
    assert!(
        text.contains("scripts/build-release"),
        "the image ships the release build as scripts/build-release makes it"
    );
    let ignore = std::fs::read_to_string(project_root().join(".dockerignore"))
        .expect(".dockerignore at the project root");
    let entries: BTreeSet<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", ".tools", ".git", ".cargo"] {
        assert!(
            entries.contains(needed) || entries.contains(format!("{needed}/").as_str()),
            ".dockerignore lists {needed}: {entries:?}"
        );
    }
}

/// The subcommand names, from clap's own tree (no hand list).
fn subcommands() -> Vec<String> {
    let names: Vec<String> = sopsync::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    assert!(names.len() > 10, "found the subcommands: {names:?}");
    names
}

#[test]
fn completions_generate_for_each_shell_and_name_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let out = String::from_utf8(run_ok(sopsync().args(["completion", shell])))
            .expect("UTF-8 completion script");
        for name in &names {
            assert!(
                out.contains(name.as_str()),
                "the {shell} completion names `{name}`"
            );
        }
        let header = match shell {
            "bash" => "complete -F _sopsync",
            "zsh" => "#compdef sopsync",
            _ => "complete -c sopsync",
        };
        assert!(
            out.contains(header),
            "the {shell} completion has `{header}`"
        );
        if shell == "bash" {
            let dir = tempdir();
            let script = dir.path().join("sopsync.bash");
            std::fs::write(&script, &out).expect("write script");
            run_ok(
                std::process::Command::new(tool("bash"))
                    .arg("-n")
                    .arg(&script),
            );
        }
    }
    let bad = run(sopsync().args(["completion", "tcsh"]));
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_render_for_the_command_and_each_subcommand() {
    let names = subcommands();
    let page = String::from_utf8(run_ok(sopsync().arg("man"))).expect("UTF-8 roff");
    assert!(page.contains(".TH sopsync 1"), "roff title:\n{page}");
    for name in &names {
        // roff spells a hyphen `\-`.
        let listed = format!("sopsync\\-{}(1)", name.replace('-', "\\-"));
        assert!(page.contains(&listed), "sopsync(1) lists {listed}:\n{page}");
    }
    let dir = tempdir();
    run_ok(sopsync().arg("man").arg("--dir").arg(dir.path()));
    for page in
        std::iter::once("sopsync".to_string()).chain(names.iter().map(|n| format!("sopsync-{n}")))
    {
        let path = dir.path().join(format!("{page}.1"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains(".TH "), "{page}.1 is roff");
        assert!(
            text.contains("Examples:"),
            "{page}.1 carries the --help examples"
        );
    }
}

/// Splits an example line like a POSIX shell would, up to a redirection, pipe or comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut have = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                have = true;
                word.extend(chars.by_ref().take_while(|&c| c != '"'));
            }
            '|' | '>' | '<' | '#' | ';' if !have => break,
            c if c.is_whitespace() => {
                if have {
                    words.push(std::mem::take(&mut word));
                    have = false;
                }
            }
            c => {
                have = true;
                word.push(c);
            }
        }
    }
    if have {
        words.push(word);
    }
    words
}

#[test]
fn every_help_ends_with_examples_that_parse() {
    let mut commands = vec![None];
    commands.extend(subcommands().into_iter().map(Some));
    for name in commands {
        let mut cmd = sopsync();
        cmd.args(name.iter()).arg("--help");
        let help = String::from_utf8(run_ok(&mut cmd)).expect("UTF-8 help");
        let shown = name.as_deref().unwrap_or("sopsync");
        let examples = help
            .split_once("\nExamples:\n")
            .unwrap_or_else(|| panic!("`{shown} --help` has no Examples: section:\n{help}"))
            .1;
        let mut count = 0;
        for line in examples.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<String> = shell_words(line)
                .into_iter()
                .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                .collect();
            assert_eq!(
                words.first().map(String::as_str),
                Some("sopsync"),
                "`{shown} --help`: an example line runs sopsync: {line}"
            );
            if let Some(name) = &name {
                assert_eq!(
                    words.get(1),
                    Some(name),
                    "`{shown} --help`: the example shows `{name}`: {line}"
                );
            }
            match sopsync::cli::Cli::command().try_get_matches_from(&words) {
                Ok(_) => {}
                // `sopsync help render` parses into "print that help".
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {}
                Err(e) => panic!("`{shown} --help`: the example `{line}` does not parse:\n{e}"),
            }
            count += 1;
        }
        assert!(count > 0, "`{shown} --help` shows at least one example");
    }
}
