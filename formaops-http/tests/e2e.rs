//! End-to-end: the real `formaops` binary (always freshly built: `CARGO_BIN_EXE_formaops`)
//! on a fresh SQLite file and on a fresh Postgres database, driven over HTTP by the
//! scenarios in the `formaops-e2e` crate (`tests/`).
//!
//! Postgres: `DATABASE_URL` (a server the tests may create databases on) or
//! `postgres://postgres@127.0.0.1:5432/postgres`; the test fails loudly when none answers,
//! unless `FORMAOPS_SKIP_PG=1`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use formaops_e2e::server::{Server, sqlite_url};
use formaops_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, postgres, scenarios};

const BIN: &str = env!("CARGO_BIN_EXE_formaops");
const USER_PASSWORD: &str = "e2e user password";

/// `formaops users create` through the CLI, password from an environment variable.
fn create_user(database_url: &str, workdir: &Path, email: &str) {
    let out = Command::new(BIN)
        .args(["users", "create", "--email", email, "--password-env", "E2E_PW"])
        .current_dir(workdir)
        .env("DATABASE_URL", database_url)
        .env("E2E_PW", USER_PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running formaops users create");
    assert!(out.status.success(), "users create failed: {}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(uuid::Uuid::parse_str(id.trim()).is_ok(), "users create prints the new id, got {id:?}");
}

async fn run_all(database_url: &str, workdir: &Path) {
    let server =
        Server::start(Path::new(BIN), database_url, workdir, &[("FORMAOPS_MOCK_FAIL_PROVIDER", "true")]);
    create_user(database_url, workdir, "bob@e2e.test");
    create_user(database_url, workdir, "carol@e2e.test");

    scenarios::full_flow(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD, "mock-fail").await;
    scenarios::cross_tenant(&server.base, ("bob@e2e.test", USER_PASSWORD), ("carol@e2e.test", USER_PASSWORD))
        .await;
    scenarios::bad_input_fails_no_one_else(
        &server.base,
        ("bob@e2e.test", USER_PASSWORD),
        ("carol@e2e.test", USER_PASSWORD),
        Duration::from_secs(2),
    )
    .await;

    let stderr = server.stderr();
    assert!(!stderr.contains(ADMIN_PASSWORD), "a password reached the logs");
    assert!(!stderr.contains("fos_"), "a session token reached the logs");

    // Graceful shutdown on SIGTERM: exits 0.
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_all(&sqlite_url(dir.path()), dir.path()).await;
    assert!(dir.path().join("e2e.db").exists(), "the SQLite file was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end() {
    let Some(db) = postgres::create().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    run_all(&db.url, dir.path()).await;
    db.drop_database().await;
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let mut cmd = Command::new(BIN);
    cmd.args(["migrate"]).current_dir(dir.path()).env("DATABASE_URL", &url);
    let out = cmd.output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Start through the harness without the admin variables.
    let server = Server::start(
        Path::new(BIN),
        &url,
        dir.path(),
        &[("FORMAOPS_ADMIN_EMAIL", ""), ("FORMAOPS_ADMIN_PASSWORD", "")],
    );
    let stderr = wait_for(&server, "password:");
    let password = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(|p| p.trim().to_string())
        .expect("a generated password line");
    assert!(password.len() >= 24, "{password}");
    formaops_e2e::client::Api::new(&server.base).login("admin@localhost", &password).await;
    drop(server);

    // Second start: users exist, nothing printed.
    let server = Server::start(
        Path::new(BIN),
        &url,
        dir.path(),
        &[("FORMAOPS_ADMIN_EMAIL", ""), ("FORMAOPS_ADMIN_PASSWORD", "")],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.stderr().contains("password:"), "{}", server.stderr());
}

fn wait_for(server: &Server, needle: &str) -> String {
    for _ in 0..100 {
        let s = server.stderr();
        if s.contains(needle) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{needle:?} never appeared on stderr:\n{}", server.stderr());
}

#[test]
fn users_create_refuses_a_password_on_the_command_line_or_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let out = Command::new(BIN)
        .args(["users", "create", "--email", "x@y.z"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--password-stdin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["users", "create", "--email", "x@y.z", "--password", "hunter22"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("run");
    assert!(!out.status.success(), "there is no --password flag");
}

/// A TCP proxy to Postgres that can be cut, to take the database away from a running server
/// as an outage would (connections reset, new ones refused).
struct CutProxy {
    addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CutProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns.lock().expect("lock").push(conn);
            }
        });
        tasks.lock().expect("lock").push(accept);
        Self { addr, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_in_our_shape() {
    let Some(db) = postgres::create().await else { return };
    // postgres://user@HOST:PORT/db -> through the proxy.
    let after_at = db.url.split_once('@').map(|(_, r)| r).expect("user@host in the URL");
    let hostport = after_at.split('/').next().expect("host:port").to_string();
    let upstream = if hostport.contains(':') { hostport.clone() } else { format!("{hostport}:5432") };
    let proxy = CutProxy::start(upstream).await;
    let url = db.url.replacen(&format!("@{hostport}/"), &format!("@{}/", proxy.addr), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Path::new(BIN), &url, dir.path(), &[]);
    let api = formaops_e2e::client::Api::new(&server.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    api.get("/api/health").await.expect(200);

    proxy.cut();
    let health = api.get("/api/health").await;
    assert_eq!(health.status.as_u16(), 503, "{}", health.body);
    assert_eq!(health.body["database"], false);
    let r = api.get("/api/prompts").await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert!(r.headers.contains_key("retry-after"));
    // The outage is known now (a probe confirmed it): answers come at once, not after the
    // pool's 5 s acquire timeout.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/api/prompts", "/api/health", "/api/executions"] {
        let started = std::time::Instant::now();
        let r = api.get(path).await;
        assert_eq!(r.status.as_u16(), 503, "{path}: {}", r.body);
        assert!(started.elapsed() < Duration::from_secs(1), "{path} took {:?}", started.elapsed());
    }
    let text = r.body.to_string();
    assert!(
        !text.contains("postgres") && !text.contains(&proxy.addr.to_string()),
        "no database details leak: {text}"
    );
    drop(server);
    db.drop_database().await;
}

/// The binary serves with the edge limits: the header timeout from the environment closes a
/// half-sent request, and a declared body over the limit is answered 413 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_applies_the_header_timeout_and_the_declared_body_limit() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        Path::new(BIN),
        &sqlite_url(dir.path()),
        dir.path(),
        &[("FORMAOPS_HEADER_TIMEOUT", "1")],
    );
    let addr = server.base.trim_start_matches("http://").to_string();

    let mut half = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    half.write_all(b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.expect("write");
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            match half.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a half-sent request was still open after 4 s");

    let started = std::time::Instant::now();
    let mut big = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    big.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n0123456789")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = big.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if answer.windows(17).any(|w| w == b"payload_too_large") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
