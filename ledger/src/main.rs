//! modelgate-ledger: keeps budget counters in Redis so several Envoy gateways
//! running modelgate.wasm share exact budgets. Stateless: every answer comes
//! from one atomic Lua script per budget key (see `store`). README.md has the
//! protocol.

mod config;
mod http;
mod protocol;
mod store;

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelgate-ledger: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match store::Store::new(&config.redis_url, config.redis_timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modelgate-ledger: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("modelgate-ledger: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().map_or_else(|_| config.listen.clone(), |a| a.to_string());
    println!(
        "modelgate-ledger {} listening on {local}, redis {} (timeout {} ms)",
        env!("CARGO_PKG_VERSION"),
        config::redact(&config.redis_url),
        config.redis_timeout.as_millis()
    );
    let app = http::router(Arc::new(http::App::new(store, &config.key)));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown()).await {
        eprintln!("modelgate-ledger: server error: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM (Kubernetes, compose) stops the server gracefully.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
