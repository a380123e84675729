//! The `consentry` binary as a child process: one-shot commands and
//! servers on free ports (killed when dropped, a failed assertion included).

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary with no `CONSENTRY_*` variable inherited from the test's
/// environment.
fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_consentry"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CONSENTRY_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// Runs a command to completion.
pub fn consentry(args: &[&str], env: &[(&str, &str)]) -> Output {
    command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run consentry")
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `consentry serve` child process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for it.
    pub http: reqwest::Client,
}

impl Server {
    /// Starts `consentry serve` with `env` (a test JWT and unsubscribe secret
    /// unless given) and waits until `/healthz` answers. Its output goes to
    /// `log` when given (else nowhere: a full pipe would stall it).
    pub async fn start(env: &[(&str, &str)], log: Option<&std::path::Path>) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = command();
        cmd.arg("serve")
            .env("CONSENTRY_LISTEN", &listen)
            .env("CONSENTRY_JWT_SECRET", SERVER_JWT_SECRET)
            .env("CONSENTRY_UNSUBSCRIBE_SECRET", "process-test-unsubscribe")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        match log {
            Some(path) => cmd.stderr(std::fs::File::create(path).unwrap()),
            None => cmd.stderr(Stdio::null()),
        };
        let child = cmd.spawn().unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = Server {
            child,
            base: format!("http://{listen}"),
            http: reqwest::Client::new(),
        };
        server.wait_healthy(Duration::from_secs(60)).await;
        server
    }

    /// Waits until `/healthz` answers; panics after `limit`.
    pub async fn wait_healthy(&self, limit: Duration) {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self
                .http
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start within {limit:?}");
    }

    /// A token for this server (signed with its test secret).
    pub fn token(&self, sub: &str, role: &str) -> String {
        token(sub, role)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit (up to `limit`); its exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "the server did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs a GraphQL document with `token`; the status and JSON body.
    pub async fn graphql(
        &self,
        token: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The JWT secret [`Server::start`] gives its servers.
pub const SERVER_JWT_SECRET: &str = "process-test-jwt-secret";

/// A token the servers [`Server::start`] runs accept.
pub fn token(sub: &str, role: &str) -> String {
    let out = consentry(
        &["token", "--sub", sub, "--role", role],
        &[("CONSENTRY_JWT_SECRET", SERVER_JWT_SECRET)],
    );
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Peak and current resident memory of a process, in KiB (Linux).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}
