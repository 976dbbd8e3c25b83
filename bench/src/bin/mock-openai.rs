//! `mock-openai`: an OpenAI-compatible fake for load tests, on loopback only.
//!
//! ```text
//! mock-openai --port 0 --port-file /tmp/mock.port --latency-ms 20
//! ```

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use formaops_bench::loopback::loopback_bind;
use formaops_bench::mock::{MockConfig, MockState, router};

#[derive(Debug, Parser)]
#[command(about = "OpenAI-compatible mock (POST /v1/chat/completions) with a fixed latency, loopback only")]
struct Args {
    /// Loopback address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port (0: any free port; see --port-file).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the bound port once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Latency added to every completion, in milliseconds (changeable at run time with
    /// `PUT /_bench/latency?ms=N`).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// The assistant reply (default: a short JSON object, valid for JSON output validation).
    #[arg(long)]
    content: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let addr = loopback_bind(args.bind, args.port)?;
    let mut config = MockConfig { latency_ms: args.latency_ms, ..MockConfig::default() };
    if let Some(content) = args.content {
        config.content = content;
    }
    let state = MockState::new(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        if let Some(path) = &args.port_file {
            // Write then rename, so a reader never sees a partial file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, local.port().to_string())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
        println!("mock-openai listening on http://{local} (latency {} ms)", config.latency_ms);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })
}
