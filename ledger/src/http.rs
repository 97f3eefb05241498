//! The HTTP surface: routes, the bearer key, errors, metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::protocol::{
    self, Amount, DrawRemaining, ReserveAnswer, ReserveRequest, SettleAnswer, SettleRequest, SettledDraw, MAX_BODY,
};
use crate::store::{Store, Unavailable};

#[derive(Default)]
struct Metrics {
    reserve_admitted: AtomicU64,
    reserve_exhausted: AtomicU64,
    settle_settled: AtomicU64,
    settle_unknown: AtomicU64,
    expired_charged: AtomicU64,
    errors_redis: AtomicU64,
    errors_bad_request: AtomicU64,
    errors_unauthorized: AtomicU64,
}

pub struct App {
    store: Store,
    /// `Bearer <key>`, compared in constant time.
    expected_authorization: Vec<u8>,
    metrics: Metrics,
    /// Whether the last Redis call worked: a change is logged once.
    redis_up: AtomicBool,
}

impl App {
    pub fn new(store: Store, key: &str) -> Self {
        Self {
            store,
            expected_authorization: format!("Bearer {key}").into_bytes(),
            metrics: Metrics::default(),
            redis_up: AtomicBool::new(true),
        }
    }

    fn redis_ok(&self) {
        if !self.redis_up.swap(true, Ordering::Relaxed) {
            eprintln!("modelgate-ledger: redis answers again");
        }
    }

    fn redis_failed(&self, e: &Unavailable) -> Response {
        self.metrics.errors_redis.fetch_add(1, Ordering::Relaxed);
        if self.redis_up.swap(false, Ordering::Relaxed) {
            eprintln!("modelgate-ledger: redis unavailable: {}", e.0);
        }
        error(StatusCode::SERVICE_UNAVAILABLE, format!("redis unavailable: {}", e.0))
    }

    fn swept(&self, n: u64) {
        if n > 0 {
            self.metrics.expired_charged.fetch_add(n, Ordering::Relaxed);
        }
    }
}

type Shared = Arc<App>;

pub fn router(app: Shared) -> Router {
    let protected = Router::new()
        .route("/v1/reserve", post(reserve))
        .route("/v1/settle", post(settle))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), authorize));
    // /healthz carries no budget data and answers probes (kubelet, Envoy's
    // health checker) that hold no key.
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    #[derive(Serialize)]
    struct E {
        error: String,
    }
    json(status, &E { error: message })
}

async fn authorize(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let given = req.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes).unwrap_or_default();
    if bool::from(given.ct_eq(&app.expected_authorization)) {
        next.run(req).await
    } else {
        app.metrics.errors_unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong `authorization: Bearer <key>`".into());
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        resp
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path: POST /v1/reserve, POST /v1/settle, GET /healthz, GET /metrics".into())
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
}

/// The body parsed into `T` and checked by `validate`, or the error answer's
/// status and message (the field it is about first).
fn read<T: for<'de> serde::Deserialize<'de>>(
    app: &App,
    body: Result<Bytes, BytesRejection>,
    validate: fn(&T) -> Result<(), String>,
) -> Result<T, (StatusCode, String)> {
    let result = match body {
        Ok(bytes) => {
            protocol::parse(&bytes).and_then(|r: T| validate(&r).map(|()| r)).map_err(|e| (StatusCode::BAD_REQUEST, e))
        }
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err((StatusCode::PAYLOAD_TOO_LARGE, format!("body: larger than {MAX_BODY} bytes")))
        }
        Err(e) => Err((e.status(), format!("body: {}", e.body_text()))),
    };
    if result.is_err() {
        app.metrics.errors_bad_request.fetch_add(1, Ordering::Relaxed);
    }
    result
}

const NOTHING: Amount = Amount { tokens: 0, nano_usd: 0 };

/// Best effort: frees what a reservation call held on its first `upto`
/// draws before it stopped. What cannot be freed now is charged in full when
/// its hold expires, or freed by a settle of this reservation with charge 0.
/// Bounded by one Redis timeout in all, so the answer stays fast.
async fn let_go(app: &Shared, req: &ReserveRequest, upto: usize) {
    let release = async {
        for earlier in &req.draws[..upto] {
            let _ = app.store.settle(&earlier.key, &req.reservation, earlier.window_end_ms, NOTHING).await;
        }
    };
    let _ = tokio::time::timeout(app.store.timeout(), release).await;
}

async fn reserve(State(app): State<Shared>, body: Result<Bytes, BytesRejection>) -> Response {
    let req = match read(&app, body, ReserveRequest::validate) {
        Ok(r) => r,
        Err((status, e)) => return error(status, e),
    };
    let mut answers: Vec<DrawRemaining> = Vec::with_capacity(req.draws.len());
    for (i, d) in req.draws.iter().enumerate() {
        let outcome = match app
            .store
            .reserve(
                &d.key,
                &req.reservation,
                req.hold_ms,
                d.window_end_ms,
                (d.limit.tokens, d.limit.nano_usd),
                d.amount,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let_go(&app, &req, i).await;
                return app.redis_failed(&e);
            }
        };
        if outcome.status == 3 {
            // The gateway's window is over by Redis's clock: its counter
            // would expire at once. Nothing is admitted on it.
            let_go(&app, &req, i).await;
            return error(
                StatusCode::BAD_REQUEST,
                format!("draws[{i}].window_end_ms: the window ended before now by Redis's clock (is the gateway's clock behind?)"),
            );
        }
        app.swept(outcome.swept);
        answers.push(DrawRemaining {
            key: d.key.clone(),
            remaining: protocol::remaining(&d.limit, outcome.used, outcome.held),
        });
        if outcome.status == 0 {
            // Not admitted: release the draws this call reserved (a settle
            // with charge 0), so the whole reservation holds nothing.
            for (j, earlier) in req.draws[..i].iter().enumerate() {
                match app.store.settle(&earlier.key, &req.reservation, earlier.window_end_ms, NOTHING).await {
                    Ok(o) => {
                        app.swept(o.swept);
                        if let Some(a) = answers.get_mut(j) {
                            a.remaining = protocol::remaining(&earlier.limit, o.used, o.held);
                        }
                    }
                    Err(e) => return app.redis_failed(&e),
                }
            }
            app.redis_ok();
            app.metrics.reserve_exhausted.fetch_add(1, Ordering::Relaxed);
            return json(
                StatusCode::OK,
                &ReserveAnswer { admitted: false, exhausted: Some(d.key.clone()), draws: answers },
            );
        }
    }
    app.redis_ok();
    app.metrics.reserve_admitted.fetch_add(1, Ordering::Relaxed);
    json(StatusCode::OK, &ReserveAnswer { admitted: true, exhausted: None, draws: answers })
}

async fn settle(State(app): State<Shared>, body: Result<Bytes, BytesRejection>) -> Response {
    let req = match read(&app, body, SettleRequest::validate) {
        Ok(r) => r,
        Err((status, e)) => return error(status, e),
    };
    let mut answers = Vec::with_capacity(req.draws.len());
    for d in &req.draws {
        // A failure part-way is safe to retry: draws already settled answer
        // `settled: false` and change nothing.
        let outcome = match app.store.settle(&d.key, &req.reservation, d.window_end_ms, d.charge).await {
            Ok(o) => o,
            Err(e) => return app.redis_failed(&e),
        };
        app.swept(outcome.swept);
        let settled = outcome.status == 1;
        let counter = if settled { &app.metrics.settle_settled } else { &app.metrics.settle_unknown };
        counter.fetch_add(1, Ordering::Relaxed);
        answers.push(SettledDraw {
            key: d.key.clone(),
            settled,
            remaining: protocol::remaining(&d.limit, outcome.used, outcome.held),
        });
    }
    app.redis_ok();
    json(StatusCode::OK, &SettleAnswer { draws: answers })
}

async fn healthz(State(app): State<Shared>) -> Response {
    match app.store.ping().await {
        Ok(()) => {
            app.redis_ok();
            (StatusCode::OK, "ok\n").into_response()
        }
        Err(e) => {
            app.metrics.errors_redis.fetch_add(1, Ordering::Relaxed);
            if app.redis_up.swap(false, Ordering::Relaxed) {
                eprintln!("modelgate-ledger: redis unavailable: {}", e.0);
            }
            (StatusCode::SERVICE_UNAVAILABLE, format!("redis unavailable: {}\n", e.0)).into_response()
        }
    }
}

async fn metrics(State(app): State<Shared>) -> Response {
    let m = &app.metrics;
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let text = format!(
        "# HELP modelgate_ledger_reserve_total Reserve calls answered, by result.\n\
         # TYPE modelgate_ledger_reserve_total counter\n\
         modelgate_ledger_reserve_total{{result=\"admitted\"}} {}\n\
         modelgate_ledger_reserve_total{{result=\"exhausted\"}} {}\n\
         # HELP modelgate_ledger_settle_draws_total Settled draws, by result (unknown: already settled or expired).\n\
         # TYPE modelgate_ledger_settle_draws_total counter\n\
         modelgate_ledger_settle_draws_total{{result=\"settled\"}} {}\n\
         modelgate_ledger_settle_draws_total{{result=\"unknown\"}} {}\n\
         # HELP modelgate_ledger_expired_reservations_charged_total Holds that expired unsettled and were charged in full.\n\
         # TYPE modelgate_ledger_expired_reservations_charged_total counter\n\
         modelgate_ledger_expired_reservations_charged_total {}\n\
         # HELP modelgate_ledger_errors_total Requests answered with an error, by kind.\n\
         # TYPE modelgate_ledger_errors_total counter\n\
         modelgate_ledger_errors_total{{kind=\"redis\"}} {}\n\
         modelgate_ledger_errors_total{{kind=\"bad_request\"}} {}\n\
         modelgate_ledger_errors_total{{kind=\"unauthorized\"}} {}\n",
        g(&m.reserve_admitted),
        g(&m.reserve_exhausted),
        g(&m.settle_settled),
        g(&m.settle_unknown),
        g(&m.expired_charged),
        g(&m.errors_redis),
        g(&m.errors_bad_request),
        g(&m.errors_unauthorized),
    );
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}
