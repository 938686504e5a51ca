//! Real Git servers on loopback for the tests: `git daemon`, `git http-backend`
//! behind a small HTTP server with basic auth (git_http_server.py), and OpenSSH's
//! `sshd` with a generated host key and user key. Each is killed on drop.

use super::{run_ok, tool};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 15s");
}

/// A running server process.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Server {
    /// The server's process id (for measuring its CPU time in benches).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server now (the port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `git daemon` serving every repository under `base` at git://127.0.0.1:PORT/NAME.
pub fn git_daemon(base: &Path) -> Server {
    let port = free_port();
    // Run git-daemon itself: `git daemon` would fork it, and killing `git` would
    // leave the server running.
    let exec_path =
        String::from_utf8(run_ok(Command::new(tool("git")).arg("--exec-path"))).expect("utf-8");
    let mut child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start git daemon");
    wait_for_port(port, "git daemon", &mut child);
    Server { child, port }
}

/// `git http-backend` behind basic auth (`user`/`password`) at
/// http://127.0.0.1:PORT/NAME.
pub fn git_http(base: &Path, user: &str, password: &str) -> Server {
    let port = free_port();
    let script = super::project_root().join("tests/support/git_http_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(base)
        .args([user, password, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 git http server");
    wait_for_port(port, "git http server", &mut child);
    Server { child, port }
}

/// An `sshd` on loopback accepting `user_key` for the current user.
pub struct Sshd {
    /// The server.
    pub server: Server,
    /// A known_hosts file with the server's host key.
    pub known_hosts: PathBuf,
    /// The user's private key.
    pub user_key: PathBuf,
    /// The login name.
    pub user: String,
}

/// Starts sshd with fresh host and user keys in `dir`.
pub fn sshd(dir: &Path) -> Sshd {
    let keygen = tool("ssh-keygen");
    let host_key = dir.join("host_ed25519");
    let user_key = dir.join("user_ed25519");
    for k in [&host_key, &user_key] {
        run_ok(
            Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(k),
        );
    }
    let authorized = dir.join("authorized_keys");
    std::fs::copy(dir.join("user_ed25519.pub"), &authorized).expect("authorized_keys");
    let user = String::from_utf8(run_ok(Command::new("id").arg("-un")))
        .expect("utf-8")
        .trim()
        .to_string();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             AllowUsers {user}\nLogLevel INFO\n",
            hk = host_key.display(),
            pid = dir.join("sshd.pid").display(),
            ak = authorized.display(),
        ),
    )
    .expect("sshd_config");
    // sshd needs its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd.log");
    let mut child = Command::new(tool("sshd"))
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sshd");
    wait_for_port(port, "sshd", &mut child);
    let host_pub = std::fs::read_to_string(dir.join("host_ed25519.pub")).expect("host key");
    let mut parts = host_pub.split_whitespace();
    let (kind, key) = (parts.next().expect("type"), parts.next().expect("key"));
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n"))
        .expect("known_hosts");
    Sshd {
        server: Server { child, port },
        known_hosts,
        user_key,
        user,
    }
}

/// Runs git with a fixed identity in `dir`.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new(tool("git"))
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args),
    );
    String::from_utf8(out).expect("utf-8").trim().to_string()
}

/// A work repository holding a copy of `content` (committed) and its bare clone
/// `base/NAME.git` to serve.
pub fn make_repo(base: &Path, name: &str, content: &Path) -> (PathBuf, PathBuf) {
    let work = base.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).expect("work dir");
    copy_tree(content, &work);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    let bare = base.join(format!("{name}.git"));
    run_ok(
        Command::new(tool("git"))
            .args(["clone", "-q", "--bare"])
            .arg(&work)
            .arg(&bare),
    );
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    (work, bare)
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A loopback "Git server" that accepts connections and never answers (issue 11: a
/// hung server). Returns its port; the connections stay open until the test ends.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Processes (pid, command line with NULs as spaces) whose command line contains
/// `marker`, found through /proc (issue 11: a helper left running, or a password in
/// argv as `ps` shows it).
pub fn processes_with(marker: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(marker) {
            found.push((pid, line));
        }
    }
    found
}
