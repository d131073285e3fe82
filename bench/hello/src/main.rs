//! A bare axum server answering `GET /` with a small JSON document, on
//! 127.0.0.1 and the port given as the only argument: what an HTTP service
//! built on the same stack as `magnum api` can do on this machine at most.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

const BODY: &str = r#"{"name": "hello", "description": "bench/run's ceiling"}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: bench-hello PORT")?
        .parse()?;
    let app = Router::new().route(
        "/",
        get(|| async { ([(CONTENT_TYPE, "application/json")], BODY) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("bench-hello on http://127.0.0.1:{port}/");
    axum::serve(listener, app).await?;
    Ok(())
}
