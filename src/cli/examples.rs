//! The "Examples:" block that ends each command's `--help` (and its man page). Kept
//! apart from the flag definitions so that they stay short; tests/install.rs parses every
//! example line with the real clap tree, so an example cannot outlive a renamed flag.

/// `sopsync --help`.
pub(super) const SOPSYNC: &str = "\
Examples:
  # Decrypt with the age identity in ~/.config/sops/age/keys.txt (or SOPS_AGE_KEY_FILE)
  sopsync decrypt secrets.enc.yaml
  # Render a Git repository of SOPS files into Secrets
  sopsync render https://git.example.com/team/gitops.git --ref main | kubectl apply -f -
  # More on one command
  sopsync help render";

pub(super) const KEYGEN: &str = "\
Examples:
  # A new identity in a 0600 file; its public key (the recipient) is printed
  sopsync keygen -o ~/.config/sops/age/keys.txt";

pub(super) const ENCRYPT: &str = "\
Examples:
  # For the recipients of the matching .sops.yaml rule, in place
  sopsync encrypt -i secret.yaml
  # For one recipient, only the values under data and stringData
  sopsync encrypt --age \"$(cat team.pub)\" --encrypted-regex '^(data|stringData)$' secret.yaml > secret.enc.yaml";

pub(super) const DECRYPT: &str = "\
Examples:
  SOPS_AGE_KEY_FILE=key.txt sopsync decrypt secret.enc.yaml
  # One value, as JSON
  sopsync decrypt --extract '[\"data\"][\"password\"]' --output-type json secret.enc.yaml";

pub(super) const FILESTATUS: &str = "\
Examples:
  sopsync filestatus secret.enc.yaml";

pub(super) const ROTATE: &str = "\
Examples:
  # A new data key, in place
  sopsync rotate -i secret.enc.yaml
  # Add a recipient (e.g. a new team member's) while rotating
  sopsync rotate -i --add-age \"$(cat new-member.pub)\" secret.enc.yaml
  # Every SOPS file of a repository, resumable after an interruption
  sopsync rotate --recursive --resume clusters/";

pub(super) const UPDATEKEYS: &str = "\
Examples:
  # After changing the recipients in .sops.yaml
  sopsync updatekeys -y secret.enc.yaml
  # A whole repository, and a new data key where a recipient was removed
  sopsync updatekeys --recursive -y --rotate .";

pub(super) const AUDIT: &str = "\
Examples:
  # In a merge-request job without a key: structure and recipients only
  sopsync audit --structural-only --format junit . > audit.xml
  # With the cluster's key: MACs and who can open what
  sopsync audit --format json clusters/";

pub(super) const RENDER: &str = "\
Examples:
  sopsync render ./gitops --namespace staging
  sopsync render https://git.example.com/team/gitops.git --ref v1.4.0 --path apps/web --strict
  # One 0600 file per Secret instead of stdout
  sopsync render ssh://git@git.example.com/team/gitops.git --output ./out";

pub(super) const EDIT: &str = "\
Examples:
  SOPS_EDITOR=nano sopsync edit secret.enc.yaml";

pub(super) const SET: &str = "\
Examples:
  sopsync set secret.enc.yaml '[\"data\"][\"port\"]' 5432
  # A string value from stdin (it stays out of the shell history)
  sopsync set --value-stdin secret.enc.yaml '[\"data\"][\"password\"]' < value.json";

pub(super) const UNSET: &str = "\
Examples:
  sopsync unset secret.enc.yaml '[\"data\"][\"old\"]'";

pub(super) const CONTROLLER: &str = "\
Examples:
  # In a cluster (the Helm chart runs this), one namespace, with leader election
  sopsync controller --namespace team-a --leader-elect
  # On a workstation against the current kubeconfig context
  sopsync controller --kubeconfig ~/.kube/config --listen 127.0.0.1:8080";

pub(super) const CRD: &str = "\
Examples:
  sopsync crd | kubectl apply --server-side -f -
  sopsync crd --output-dir charts/sopsync/crds";

pub(super) const EXEC_ENV: &str = "\
Examples:
  sopsync exec-env db.enc.env 'psql \"$DATABASE_URL\"'
  # Only the decrypted variables, nothing inherited
  sopsync exec-env --pristine app.enc.yaml './migrate'";

pub(super) const EXEC_FILE: &str = "\
Examples:
  # The command reads the plaintext from a named pipe; nothing is written to disk
  sopsync exec-file db.enc.json 'psql --set=sslmode=require -f {}'
  # A tool that needs a real file (it seeks or reads twice): a 0600 file, wiped after
  sopsync exec-file --no-fifo --filename kubeconfig.yaml kube.enc.yaml 'kubectl --kubeconfig {} get pods'";

pub(super) const GROUPS: &str = "\
Examples:
  sopsync groups add --file secret.enc.yaml --age \"$(cat ops.pub)\" --in-place
  sopsync groups delete --file secret.enc.yaml --shamir-secret-sharing-threshold 1 -i 1";

pub(super) const GROUPS_ADD: &str = "\
Examples:
  # A second group: then both groups are needed to open the file (Shamir 2 of 2)
  sopsync groups add --file secret.enc.yaml --age \"$(cat ops.pub)\" --in-place
  # A third group, any two of the three open it
  sopsync groups add -f secret.enc.yaml --age age1... --shamir-secret-sharing-threshold 2 -i";

pub(super) const GROUPS_DELETE: &str = "\
Examples:
  # Delete the second group (groups count from 0); one group left needs a threshold of 1
  sopsync groups delete --file secret.enc.yaml --shamir-secret-sharing-threshold 1 -i 1";

pub(super) const COMPLETION: &str = "\
Examples:
  sopsync completion bash > ~/.local/share/bash-completion/completions/sopsync
  sopsync completion zsh > \"${fpath[1]}/_sopsync\"
  sopsync completion fish > ~/.config/fish/completions/sopsync.fish";

pub(super) const MAN: &str = "\
Examples:
  sopsync man | man -l -
  sopsync man --dir /usr/local/share/man/man1";

pub(super) const HELM: &str = "\
Examples:
  # SOPS values files go to helm over pipes; plain ones and every other flag as given
  SOPS_AGE_KEY_FILE=key.txt sopsync helm upgrade --install web ./chart -f values.yaml -f secrets.yaml
  sopsync helm template web ./chart -n prod --values secrets.yaml";

pub(super) const VALUES: &str = "\
Examples:
  # What helm would get from these files, merged left to right
  sopsync values values.yaml secrets.yaml | less";

pub(super) const HELM_DOWNLOADER: &str = "\
Examples:
  # Run by helm's sops:// downloader plugin (helm-plugin/), as helm calls it
  sopsync helm-downloader '' '' '' sops://secrets.yaml";

pub(super) const ARGOCD: &str = "\
Examples:
  # As Argo CD's repo-server runs it, in the application's directory
  ARGOCD_APP_NAME=web ARGOCD_APP_NAMESPACE=prod sopsync argocd generate
  ARGOCD_ENV_SOPSYNC_MODE=secrets sopsync argocd generate";
