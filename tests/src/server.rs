//! Starting and stopping the real binary.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{ADMIN_EMAIL, ADMIN_PASSWORD};

/// A running `formaops serve`. Killed on drop if still running.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Everything the process wrote to stderr, collected in the background.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `bin serve` on `database_url`, on a free loopback port, with the e2e admin
    /// account, and waits until it listens (at most 60 s).
    pub fn start(bin: &Path, database_url: &str, workdir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .current_dir(workdir)
            .env("DATABASE_URL", database_url)
            .env("FORMAOPS_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("FORMAOPS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("formaops listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let log = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("formaops did not start listening within 60 s; stderr:\n{log}");
            }
        };
        Self { child, base, stderr }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for formaops") {
                return status;
            }
            assert!(Instant::now() < deadline, "formaops did not exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An SQLite URL for a new database file in `dir` (the server creates it).
pub fn sqlite_url(dir: &Path) -> String {
    let path: PathBuf = dir.join("e2e.db");
    format!("sqlite:///{}", path.display())
}
