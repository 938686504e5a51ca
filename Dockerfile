# syntax=docker/dockerfile:1
# The sopsync image: the controller of the Helm chart, the Argo CD sidecar, and CI jobs.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t sopsync .
#
# Each platform builds natively in its own builder (under emulation on a one-arch host):
# no cross toolchain, and the builder's glibc is the runtime's. tests/install.rs reads
# this file: it checks that the runtime stage installs every program the binary spawns.

# ---------------------------------------------------------------------------------------
# The release build, exactly as scripts/build-release makes it (the build we test and
# measure, STYLE.md 28), on the Debian release of the runtime below: the binary links
# glibc and loads the runtime's NSS modules at run time, so both must be the same glibc.
FROM rust:1.95-bookworm AS builder
# build-release checks the binary's hardening (PIE, full RELRO) with readelf: binutils,
# already in this image (gcc needs it), named here so that the dependency is visible.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    set -eu; \
    bin="$(scripts/build-release -q)"; \
    install -D -m 0755 "$bin" /out/sopsync; \
    /out/sopsync --version

# ---------------------------------------------------------------------------------------
# helm for the Argo CD sidecar's helm mode: one pinned release, its archive checked
# against the sha256 that Helm publishes beside it (get.helm.sh/…tar.gz.sha256sum; the
# values below were cross-checked against the v3.18.4 release notes). To move to another
# release, pass all three build args.
FROM debian:bookworm-slim AS helm
ARG HELM_VERSION=v3.18.4
ARG HELM_SHA256_AMD64=f8180838c23d7c7d797b208861fecb591d9ce1690d8704ed1e4cb8e2add966c1
ARG HELM_SHA256_ARM64=c0a45e67eef0c7416a8a8c9e9d5d2d30d70e4f4d3f7bea5de28241fffa8f3b89
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) sum="$HELM_SHA256_AMD64" ;; \
      arm64) sum="$HELM_SHA256_ARM64" ;; \
      *) echo "no pinned helm checksum for architecture '$TARGETARCH' (amd64, arm64)" >&2; exit 1 ;; \
    esac; \
    curl --proto '=https' -fsSLo /tmp/helm.tar.gz \
      "https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    echo "$sum  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp "linux-${TARGETARCH}/helm"; \
    install -D -m 0755 "/tmp/linux-${TARGETARCH}/helm" /out/helm

# ---------------------------------------------------------------------------------------
# The runtime: what the binary executes, and nothing more.
#   git, openssh-client  Git sources (git runs ssh for ssh:// and git-remote-https, from
#                        the git package, for https://)
#   ca-certificates      git's https verification (the binary's own TLS has built-in roots)
#   dash                 /bin/sh: git runs GIT_SSH_COMMAND through sh, `exec-env` runs its
#                        command with `sh -c`, and GitLab jobs need a shell (Essential in
#                        Debian, so already there; named to keep the list explicit)
#   tini                 PID 1: a helper that git started (ssh, git-remote-https) and that
#                        ends after git (e.g. killed with git's process group on a timeout)
#                        is re-parented to PID 1; sopsync waits only for its own children,
#                        so as PID 1 it would collect zombies; tini reaps them
#   helm                 the Argo CD sidecar's helm mode and `sopsync helm` (stage above);
#                        SOPSYNC_HELM names another helm binary, which then is the user's
#   gpg, gpg-agent,      PGP keys (issue 15): the controller imports a key Secret's `*.asc`
#   gpgconf              entries into a private GNUPGHOME under /tmp for one reconcile and
#                        stops its agent with gpgconf afterwards; the CLI runs the user's
#                        gpg as sops does (SOPS_GPG_EXEC names another GnuPG binary).
#                        Chosen over a pure-Rust OpenPGP crate: rpgp 0.21 alone brings
#                        ~58 crates new to our graph and took 3m17s of cold release build
#                        on 2 shared cores, for a second PGP implementation beside the
#                        CLI's GnuPG; these packages add a few MB to the image instead
# Not installed:
#   an editor            `edit` opens $SOPS_EDITOR or $EDITOR, else vim, nano or vi; the
#                        image runs controllers and CI jobs, not interactive edits (run
#                        `sopsync edit` on a workstation)
#   SOPS_AGE_KEY_CMD     runs a program the user names (a secret manager's CLI); an image
#                        that needs one is built FROM this one and adds it
# In GitLab CI, override the entrypoint (`image: {name: …, entrypoint: [""]}`) so that the
# job's script runs in sh.
FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sopsync" \
      org.opencontainers.image.description="SOPS-compatible secrets for Kubernetes: decrypt, render, reconcile" \
      org.opencontainers.image.source="https://github.com/sopsync/sopsync" \
      org.opencontainers.image.url="https://github.com/sopsync/sopsync" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The fixed non-root uid/gid of the chart's podSecurityContext (65532). ssh refuses to
# run for a uid that has no passwd entry, so the user exists; HOME is /tmp, as in the
# chart (git and ssh want a writable HOME; the chart mounts /tmp as an emptyDir).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates dash git gpg gpg-agent gpgconf openssh-client tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 sopsync \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin sopsync
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=builder /out/sopsync /usr/local/bin/sopsync
ENV HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sopsync"]
CMD ["--help"]
