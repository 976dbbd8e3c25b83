//! A Postgres outage: once it is confirmed, calls fail at once (not after the pool's 5 s
//! acquire timeout), and the store recovers by itself when the database answers again.
//!
//! The database is taken away with a TCP proxy that can be cut (connections dropped, new ones
//! refused) and restored on the same port.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use formaops_core::Error;
use formaops_core::store::Store;
use formaops_store::PgStore;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Forwards `addr` to `upstream` until dropped.
struct Proxy {
    tasks: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(addr: SocketAddr, upstream: String) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
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
                conns.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { tasks }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_outage_fails_at_once_and_recovers_by_itself() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let upstream = format!("{}:{}", db.options.get_host(), db.options.get_port());
    let addr = free_port();
    let proxy = Proxy::start(addr, upstream.clone()).await;
    // The production acquire timeout: without failing fast, each call would wait it out.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(db.options.clone().host("127.0.0.1").port(addr.port()))
        .await
        .unwrap();
    let store = PgStore::from_pool(pool).await.unwrap();
    store.ping().await.unwrap();

    drop(proxy);
    // The first call finds out (within the acquire timeout).
    let first = store.count_users().await.unwrap_err();
    assert!(matches!(first, Error::Unavailable { .. }), "{first:?}");
    // The probe confirms the outage at once (the connection is refused); calls that started
    // before that may still wait out the acquire timeout, every later one fails at once.
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let started = Instant::now();
        let err = store.ping().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        if started.elapsed() < Duration::from_millis(100) {
            break;
        }
        assert!(Instant::now() < deadline, "calls still wait {:?} after the outage", started.elapsed());
    }
    for _ in 0..20 {
        let started = Instant::now();
        let err = store.get_user(formaops_core::ids::UserId::new()).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(250), "took {:?}", started.elapsed());
    }

    // The database comes back on the same address: the store answers again by itself.
    let _proxy = Proxy::start(addr, upstream).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.count_users().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.ping().await.unwrap();
    store.close().await;
}
