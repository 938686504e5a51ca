//! A real AWS API on loopback: moto's server (PyPI `moto[server]`, installed by
//! `scripts/install-test-tools`), started on a free port, with keys and IAM made
//! through its API by boto3. It serves KMS, STS and IAM on one endpoint.
//!
//! By default moto authorizes nothing (any credentials pass). [`Moto::start_enforcing`]
//! turns IAM on after the setup requests (moto's `INITIAL_NO_AUTH_ACTION_COUNT`), so a
//! test can show that a KMS call was made with an assumed role's credentials: the
//! caller's own user may only `sts:AssumeRole`, the role may use KMS.

use super::{run_ok, tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for moto's server to accept connections (it imports every AWS model
/// first); past it the test fails with the server's log.
const MOTO_START: Duration = Duration::from_secs(60);

/// How many requests [`Moto::start_enforcing`]'s setup makes before IAM is enforced:
/// create_user, put_user_policy, create_access_key, create_role, put_role_policy,
/// create_key (see `ENFORCING_SETUP`).
const ENFORCING_SETUP_REQUESTS: usize = 6;

/// The setup of an enforcing server, in boto3: a user `ci` that may only assume roles,
/// a role `sops-kms` (trusting `ci`) that may use KMS, and one key. Prints the user's
/// access key, its secret, the role's ARN and the key's ARN.
const ENFORCING_SETUP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1',
          aws_access_key_id='setup', aws_secret_access_key='setup')
iam, kms = boto3.client('iam', **kw), boto3.client('kms', **kw)
allow = lambda action: json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": action, "Resource": "*"}]})
user = iam.create_user(UserName='ci')['User']['Arn']
iam.put_user_policy(UserName='ci', PolicyName='assume-only', PolicyDocument=allow('sts:AssumeRole'))
key = iam.create_access_key(UserName='ci')['AccessKey']
trust = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": user}, "Action": "sts:AssumeRole"}]})
role = iam.create_role(RoleName='sops-kms', AssumeRolePolicyDocument=trust)['Role']['Arn']
iam.put_role_policy(RoleName='sops-kms', PolicyName='kms', PolicyDocument=allow('kms:*'))
arn = kms.create_key()['KeyMetadata']['Arn']
print(key['AccessKeyId'], key['SecretAccessKey'], role, arn)
"#;

/// What [`Moto::start_enforcing`] made.
pub struct EnforcingSetup {
    /// The `ci` user's access key id: allowed `sts:AssumeRole` only.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The role `ci` may assume, allowed `kms:*`.
    pub role: String,
    /// A KMS key.
    pub arn: String,
}

/// moto's server on a free loopback port, ended on drop.
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Credentials [`Moto::env`] gives: dummies, or an enforcing setup's user.
    credentials: (String, String),
}

impl Moto {
    /// A server that authorizes every request.
    pub fn start(dir: &Path) -> Moto {
        Self::spawn(dir, None)
    }

    /// A server that enforces IAM once the setup is made (see the module docs); its
    /// [`Moto::env`] gives the `ci` user's credentials.
    pub fn start_enforcing(dir: &Path) -> (Moto, EnforcingSetup) {
        let mut moto = Self::spawn(dir, Some(ENFORCING_SETUP_REQUESTS));
        let out =
            run_ok(Command::new(moto.python()).args(["-c", ENFORCING_SETUP, &moto.endpoint()]));
        let out = String::from_utf8(out).expect("utf-8");
        let fields: Vec<&str> = out.split_whitespace().collect();
        let [id, secret, role, arn] = fields[..] else {
            panic!("moto setup printed {out:?}");
        };
        moto.credentials = (id.to_string(), secret.to_string());
        let setup = EnforcingSetup {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            role: role.into(),
            arn: arn.into(),
        };
        (moto, setup)
    }

    fn spawn(dir: &Path, free_requests: Option<usize>) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join("moto.log");
        let mut cmd = Command::new(tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("moto log"))
            .stderr(std::fs::File::create(dir.join("moto.err")).expect("moto log"));
        if let Some(n) = free_requests {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("start moto_server");
        let mut moto = Moto {
            child,
            port,
            log,
            credentials: ("test".into(), "test".into()),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait().expect("wait") {
                panic!("moto_server exited with {status}: {}", moto.logs());
            }
            assert!(
                started.elapsed() < MOTO_START,
                "moto_server did not listen within {MOTO_START:?}: {}",
                moto.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The server's own log (requests and errors), for failure messages.
    pub fn logs(&self) -> String {
        let err = self.log.with_file_name("moto.err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// The endpoint of every service it serves.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Python of moto's venv (boto3 comes with moto).
    fn python(&self) -> PathBuf {
        let moto = std::fs::canonicalize(tool("moto_server")).expect("moto_server path");
        moto.with_file_name("python")
    }

    /// A new symmetric key, made through the KMS API (on a server that authorizes
    /// every request).
    pub fn create_key(&self) -> String {
        let script = format!(
            "import boto3\nc = boto3.client('kms', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\nprint(c.create_key()['KeyMetadata']['Arn'])\n",
            self.endpoint()
        );
        let out = run_ok(Command::new(self.python()).args(["-c", &script]));
        let arn = String::from_utf8(out).unwrap().trim().to_string();
        assert!(arn.starts_with("arn:aws:kms:us-east-1:"), "{arn}");
        arn
    }

    /// `c` pointed at this server for KMS and STS, with its credentials and nothing
    /// else of the developer's AWS setup (no profile, no shared files, no instance
    /// metadata).
    pub fn env<'a>(&self, c: &'a mut Command, home: &Path) -> &'a mut Command {
        for k in [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
        ] {
            c.env_remove(k);
        }
        c.env("AWS_ENDPOINT_URL_KMS", self.endpoint())
            .env("AWS_ENDPOINT_URL_STS", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", &self.credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.credentials.1)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
            .env_remove("SOPS_KMS_ARN")
            .env_remove("SOPS_PGP_FP")
    }
}

/// Controller tests: commits `db.yaml`, a Secret manifest whose `password` is `value`,
/// encrypted by the real sops for `kms` (an ARN, `ARN+ROLE` allowed) through `moto`;
/// returns the revision.
pub fn commit_kms_secret(
    c: &super::cluster::Cluster,
    moto: &Moto,
    home: &Path,
    kms: &str,
    value: &str,
) -> String {
    let plain = c.dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        super::cluster::secret_manifest("db", None, &[("password", value)]),
    )
    .unwrap();
    let enc = run_ok(
        moto.env(&mut super::sops(), home)
            .args(["encrypt", "--kms", kms])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(&plain),
    );
    std::fs::remove_file(&plain).unwrap();
    std::fs::write(c.work.join("db.yaml"), enc).unwrap();
    c.commit(&[])
}

/// Controller tests: `namespace`'s key Secret holding AWS credentials (Flux's
/// `sops.aws-kms` entry).
pub fn put_aws_credentials(c: &super::cluster::Cluster, namespace: &str, id: &str, secret: &str) {
    use k8s_openapi::api::core::v1::Secret;
    c.fake.ensure_namespace(namespace);
    c.fake.put(&Secret {
        metadata: super::cluster::meta(namespace, "sopsync-age-key"),
        data: Some(std::collections::BTreeMap::from([(
            "sops.aws-kms".into(),
            k8s_openapi::ByteString(
                format!("aws_access_key_id: {id}\naws_secret_access_key: {secret}\n").into_bytes(),
            ),
        )])),
        ..Secret::default()
    });
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
