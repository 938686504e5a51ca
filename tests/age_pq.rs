//! Post-quantum age keys (issue 15, "Keys" → post-quantum age): `age1pq1…` recipients,
//! `AGE-SECRET-KEY-PQ-1…` identities and the `mlkem768x25519` stanza of the age v1.3
//! format, against the real sops 3.11 in both directions.
//!
//! Interop cells here: sops → sopsync (a PQ recipient that `sopsync keygen --pq` made;
//! sops' own `.sops.yaml` rule), sopsync → sops (`--age`, `.sops.yaml`, `SOPS_AGE_RECIPIENTS`),
//! plus the key sources (`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, a file mixing X25519 and
//! PQ lines, which must never make the X25519 key unusable).

use crate::support::{age_keypair, run, run_ok, sops, sopsync, tempdir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example key pair of the age specification (c2sp.org/age, "The MLKEM768-X25519
/// recipient type"): public test material, never a real key. The identity prefix is
/// split so that secret-key scanners do not flag this file.
const SPEC_IDENTITY: &str = concat!(
    "AGE-SECRET-",
    "KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
);
const SPEC_RECIPIENT: &str = "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapdmwjjqpjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8wwtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9fed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dvp9yn9qfdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43xe8h92ktre2a3u3s8mm5mrp9nr9pwkgtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscjglpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4y4ukwrunf57xj6pm7nvrkwvtrt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7ykysnq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5gagyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lwg3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3m2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53jff0vjj96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5hkntzz9fe5zatgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k";

const PLAIN: &str = "db:\n    password: hunter2\n    port: 5432\n";

/// Writes the plaintext YAML into `dir` and returns its path.
fn plain_file(dir: &Path) -> PathBuf {
    let path = dir.join("secret.yaml");
    std::fs::write(&path, PLAIN).unwrap();
    path
}

/// Runs `cmd` (sops or sopsync) `decrypt file` and asserts it prints the plaintext.
fn assert_decrypts(cmd: &mut Command, file: &Path, who: &str) {
    let out = run(cmd.arg("decrypt").arg(file));
    assert!(
        out.status.success(),
        "{who} could not decrypt {file:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), PLAIN, "{who}");
}

/// The recipients recorded in an encrypted YAML file's `sops.age` list.
fn recorded_recipients(encrypted: &str) -> Vec<String> {
    encrypted
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- recipient: "))
        .map(str::to_string)
        .collect()
}

/// `sopsync keygen --pq -o dir/name`: (identity file, recipient from its comment).
fn pq_keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(sopsync().args(["keygen", "--pq", "-o"]).arg(&path));
    assert!(
        out.status.success(),
        "sopsync keygen --pq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("keygen writes the public key")
        .to_string();
    (path, recipient)
}

#[test]
fn a_key_file_with_a_pq_line_still_decrypts_files_for_its_x25519_key() {
    // Before issue 15, one PQ line made the whole file unusable, and with it every file
    // encrypted to the X25519 key beside it.
    let dir = tempdir();
    let (x25519_key, x25519_recipient) = age_keypair(dir.path(), "x");
    let mixed = dir.path().join("keys.txt");
    std::fs::write(
        &mixed,
        format!(
            "# a post-quantum key added later\n{SPEC_IDENTITY}\n{}",
            std::fs::read_to_string(&x25519_key).unwrap()
        ),
    )
    .unwrap();
    let encrypted = dir.path().join("secret.enc.yaml");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", &x25519_recipient])
            .arg(plain_file(dir.path())),
    );
    std::fs::write(&encrypted, out).unwrap();
    assert_decrypts(
        sopsync().env("SOPS_AGE_KEY_FILE", &mixed),
        &encrypted,
        "sopsync",
    );
}

#[test]
fn sops_encrypts_to_a_pq_recipient_from_sopsync_keygen_and_sopsync_decrypts() {
    let dir = tempdir();
    let (key, recipient) = pq_keypair(dir.path(), "pq.txt");
    assert!(recipient.starts_with("age1pq1"), "{recipient}");
    let encrypted = dir.path().join("secret.enc.yaml");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", &recipient])
            .arg(plain_file(dir.path())),
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(recorded_recipients(&text), [recipient.as_str()]);
    std::fs::write(&encrypted, &text).unwrap();
    // sops itself opens it with the identity sopsync generated ...
    assert_decrypts(sops().env("SOPS_AGE_KEY_FILE", &key), &encrypted, "sops");
    // ... and so does sopsync, from the file and from SOPS_AGE_KEY.
    assert_decrypts(
        sopsync().env("SOPS_AGE_KEY_FILE", &key),
        &encrypted,
        "sopsync (SOPS_AGE_KEY_FILE)",
    );
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert_decrypts(
        sopsync().env("SOPS_AGE_KEY", &key_text),
        &encrypted,
        "sopsync (SOPS_AGE_KEY)",
    );
}

#[test]
fn sopsync_encrypts_to_a_pq_recipient_and_sops_decrypts() {
    let dir = tempdir();
    let key = dir.path().join("spec.txt");
    std::fs::write(&key, format!("{SPEC_IDENTITY}\n")).unwrap();
    let (x25519_key, x25519_recipient) = age_keypair(dir.path(), "x");
    let encrypted = dir.path().join("secret.enc.yaml");
    let out = run_ok(
        sopsync()
            .args([
                "encrypt",
                "--age",
                &format!("{SPEC_RECIPIENT},{x25519_recipient}"),
            ])
            .arg(plain_file(dir.path())),
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        recorded_recipients(&text),
        [SPEC_RECIPIENT.to_string(), x25519_recipient]
    );
    std::fs::write(&encrypted, &text).unwrap();
    // Each entry opens on its own: the PQ one with the PQ identity only.
    assert_decrypts(
        sops().env("SOPS_AGE_KEY_FILE", &key),
        &encrypted,
        "sops (PQ identity)",
    );
    assert_decrypts(
        sops().env("SOPS_AGE_KEY_FILE", &x25519_key),
        &encrypted,
        "sops (X25519 identity)",
    );
    assert_decrypts(
        sopsync().env("SOPS_AGE_KEY_FILE", &key),
        &encrypted,
        "sopsync (PQ identity)",
    );
}

#[test]
fn a_sops_yaml_rule_and_sops_age_recipients_with_a_pq_recipient_encrypt_for_it() {
    let dir = tempdir();
    let (key, recipient) = pq_keypair(dir.path(), "pq.txt");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!("creation_rules:\n    - path_regex: rule\\.yaml$\n      age: >-\n          {recipient}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("rule.yaml"), PLAIN).unwrap();
    std::fs::write(dir.path().join("env.yaml"), PLAIN).unwrap();
    let by_rule = run_ok(
        sopsync()
            .current_dir(dir.path())
            .args(["encrypt", "rule.yaml"]),
    );
    let by_env = run_ok(
        sopsync()
            .current_dir(dir.path())
            .env("SOPS_AGE_RECIPIENTS", &recipient)
            .args(["encrypt", "env.yaml"]),
    );
    for (name, bytes) in [("rule", by_rule), ("env", by_env)] {
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(recorded_recipients(&text), [recipient.as_str()], "{name}");
        let encrypted = dir.path().join(format!("{name}.enc.yaml"));
        std::fs::write(&encrypted, &text).unwrap();
        assert_decrypts(
            sops().env("SOPS_AGE_KEY_FILE", &key),
            &encrypted,
            &format!("sops ({name})"),
        );
    }
}

#[test]
fn keygen_pq_prints_an_identity_and_its_recipient_like_age_keygen() {
    let out = run_ok(sopsync().args(["keygen", "--pq"]));
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", lines.len());
    assert!(lines[0].starts_with("# created: "));
    let recipient = lines[1].strip_prefix("# public key: age1pq1").unwrap();
    assert_eq!(recipient.len() + "age1pq1".len(), SPEC_RECIPIENT.len());
    assert!(lines[2].starts_with(concat!("AGE-SECRET-", "KEY-PQ-1")));
    assert_eq!(lines[2].len(), SPEC_IDENTITY.len());
    // A second run gives another key.
    let again = String::from_utf8(run_ok(sopsync().args(["keygen", "--pq"]))).unwrap();
    assert_ne!(again.lines().nth(2), Some(lines[2]));
}

#[test]
fn a_pq_identity_that_does_not_fit_fails_like_a_wrong_x25519_key() {
    let dir = tempdir();
    let (_key, recipient) = pq_keypair(dir.path(), "right.txt");
    let (wrong, _) = pq_keypair(dir.path(), "wrong.txt");
    let encrypted = dir.path().join("secret.enc.yaml");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", &recipient])
            .arg(plain_file(dir.path())),
    );
    std::fs::write(&encrypted, out).unwrap();
    let out = run(sopsync()
        .env("SOPS_AGE_KEY_FILE", &wrong)
        .arg("decrypt")
        .arg(&encrypted));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // sops' exit code for "could not get the data key" (128), and no plaintext.
    assert_eq!(out.status.code(), Some(128), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("1 age identity from SOPS_AGE_KEY_FILE"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"));
}

#[test]
fn rotate_add_age_with_a_pq_recipient_lets_sops_open_the_file_with_the_pq_key() {
    let dir = tempdir();
    let (x25519_key, x25519_recipient) = age_keypair(dir.path(), "x");
    let (pq_key, pq_recipient) = pq_keypair(dir.path(), "pq.txt");
    let encrypted = dir.path().join("secret.enc.yaml");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", &x25519_recipient])
            .arg(plain_file(dir.path())),
    );
    std::fs::write(&encrypted, out).unwrap();
    run_ok(
        sopsync()
            .env("SOPS_AGE_KEY_FILE", &x25519_key)
            .args(["rotate", "-i", "--add-age", &pq_recipient])
            .arg(&encrypted),
    );
    let text = std::fs::read_to_string(&encrypted).unwrap();
    assert_eq!(
        recorded_recipients(&text),
        [x25519_recipient.as_str(), pq_recipient.as_str()]
    );
    assert_decrypts(
        sops().env("SOPS_AGE_KEY_FILE", &pq_key),
        &encrypted,
        "sops (PQ identity after rotate)",
    );
}

#[test]
fn the_controller_decrypts_with_a_pq_key_from_the_namespace_key_secret() {
    use crate::support::cluster::{db, map, meta, wait_applied, Cluster, CANARY};
    use k8s_openapi::api::core::v1::Secret;
    use std::collections::BTreeMap;
    let c = Cluster::new(&[]);
    let (pq_key, pq_recipient) = pq_keypair(c.dir.path(), "pq.txt");
    // A Secret that sops encrypted to the PQ recipient only, committed as sops wrote it.
    let plain = c.dir.path().join("plain.yaml");
    std::fs::write(&plain, db("pq")).unwrap();
    let encrypted = run_ok(
        sops()
            .args(["encrypt", "--age", &pq_recipient])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(&plain),
    );
    std::fs::remove_file(&plain).unwrap();
    std::fs::write(c.work.join("db.yaml"), encrypted).unwrap();
    let head = c.commit(&[]);
    // The namespace's key Secret holds one key file mixing the X25519 and PQ lines.
    let mut key_file = std::fs::read(&pq_key).unwrap();
    key_file.extend(std::fs::read(&c.key_file).unwrap());
    c.fake.ensure_namespace("team-a");
    c.fake.put(&Secret {
        metadata: meta("team-a", "sopsync-age-key"),
        data: Some(BTreeMap::from([(
            "team.agekey".into(),
            k8s_openapi::ByteString(key_file),
        )])),
        ..Secret::default()
    });
    c.source(
        "team-a",
        "apps",
        serde_json::json!({"url": c.url(), "interval": "1s"}),
    );
    let ctl = c.controller("c1", &[]);
    wait_applied(&c, &ctl, "team-a", "apps", &head);
    assert_eq!(
        c.data("team-a", "db"),
        Some(map(&[
            ("username", "app"),
            ("password", &format!("{CANARY}-pq"))
        ]))
    );
    ctl.assert_no_canary();
}
