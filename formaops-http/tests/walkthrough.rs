//! The README's walk-through ("Datasets and experiments"), run as written: the block between
//! `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->` goes to `bash -euo pipefail`
//! against the real `formaops` binary on a fresh SQLite database, with `TOKEN` from a login and
//! the binary on `PATH` (its `experiment run` is the CLI under test). Needs `bash`, `curl` and
//! `jq`, as the README says; a missing one fails the test with its name (never skipped).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use formaops_e2e::client::Api;
use formaops_e2e::server::{Server, sqlite_url};
use formaops_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_formaops");
const README: &str = include_str!("../../README.md");

/// The shell block between the walk-through markers, without its fences.
fn walkthrough_block() -> String {
    let start = README.find("<!-- walkthrough:start -->").expect("README has the walk-through start marker");
    let end = README.find("<!-- walkthrough:end -->").expect("README has the walk-through end marker");
    let block = &README[start..end];
    let body_start = block.find("```sh\n").expect("the walk-through is a ```sh block") + "```sh\n".len();
    let body_end = block.rfind("```").expect("the walk-through block is closed");
    block[body_start..body_end].to_string()
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "the README walk-through needs `{tool}` on PATH (apt-get install -y {tool})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_runs_as_written() {
    for tool in ["bash", "curl", "jq"] {
        require(tool);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Path::new(BIN), &sqlite_url(dir.path()), dir.path(), &[]);
    let api = Api::new(&server.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = api.token.clone().expect("logged in");
    let bin_dir = Path::new(BIN).parent().expect("the binary has a directory");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let script = walkthrough_block();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("TOKEN", token)
            .env("FORMAOPS_URL", &server.base)
            .env("PATH", path)
            .env_remove("FORMAOPS_API_KEY")
            .output()
            .map(|o| (o, server))
    })
    .await
    .expect("the walk-through thread")
    .expect("running bash");
    let (out, server) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walk-through failed ({}):\n{stdout}\n{stderr}\nserver:\n{}",
        out.status,
        server.stderr()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // Three executions of version 1 through `production`.
    assert_eq!(lines.iter().filter(|l| **l == "COMPLETED").count(), 3, "{stdout}");
    assert!(lines.contains(&r#"{"name":"staging","version":2}"#), "{stdout}");
    // The CLI's comparison table: both versions, three rows each done, none failed.
    let row = |v: &str, label: &str| {
        lines.iter().any(|l| {
            let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect();
            cells.len() >= 4 && cells[0] == v && cells[1] == label && cells[2] == "3" && cells[3] == "0"
        })
    };
    assert!(row("v1", "production") && row("v2", "staging"), "{stdout}");
    assert!(stderr.contains("3 rows x production (v1), staging (v2)"), "{stderr}");
    assert!(stdout.contains(": COMPLETED; rows and outputs"), "{stdout}");
    // The same comparison over REST: both versions passed validation on every row.
    assert!(
        lines.iter().any(|l| l.starts_with(r#"{"version":1,"requested":"production","passRate":1,"#)),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(r#"{"version":2,"requested":"staging","passRate":1,"#)),
        "{stdout}"
    );
    // Promotion, execution by label (version 2 ran), rollback, and the history of all three moves.
    assert!(lines.contains(&r#"{"status":"COMPLETED","promptVersion":2}"#), "{stdout}");
    assert_eq!(
        lines.last().copied(),
        Some(r#"[{"from":2,"to":1},{"from":1,"to":2},{"from":null,"to":1}]"#),
        "{stdout}"
    );
    // The experiment ran each row once per version: 3 traffic + 6 experiment + 1 by label.
    let listed = api.get("/api/executions?limit=100").await.expect(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(10), "{listed}");
    server.terminate(Duration::from_secs(10));
}
