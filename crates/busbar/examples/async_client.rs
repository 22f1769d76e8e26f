//! An async client making 1,000 concurrent calls through one endpoint, to
//! the `async_replier` example. With the replier's 10 ms of work per
//! request done concurrently, the whole batch takes little more than 10 ms
//! plus the bus's own time.
//!
//! ```sh
//! cargo run --release -p busbar --features tokio --example async_client
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar::{AsyncEndpoint, Bus, Errno, TokioReactor};
use tokio::task::JoinSet;

const CALLS: u32 = 1_000;

#[tokio::main]
async fn main() -> Result<(), Errno> {
    let bus = Bus::connect_default()?;
    let ep = Arc::new(AsyncEndpoint::<TokioReactor>::new(bus.open()?)?);
    // Each outstanding request holds a slot in our queue until its reply.
    ep.endpoint().set_queue_limit(CALLS + 16)?;
    let start = Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..CALLS {
        let ep = ep.clone();
        calls.spawn(async move {
            let call = ep.call("$.async.echo", i.to_le_bytes().to_vec());
            match tokio::time::timeout(Duration::from_secs(10), call).await {
                Ok(Ok(reply)) if reply.is_synthetic() => Err(format!("{}", reply.name)),
                Ok(Ok(reply)) if reply.data[..] == i.to_le_bytes() => Ok(()),
                Ok(Ok(_)) => Err("a reply with the wrong data".to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no reply in 10 s".to_string()),
            }
        });
    }
    let mut failed = 0;
    while let Some(done) = calls.join_next().await {
        if let Err(e) = done.expect("a call task panicked") {
            failed += 1;
            if failed == 1 {
                eprintln!("a call failed: {e} (is the async_replier example running?)");
            }
        }
    }
    println!(
        "{} of {CALLS} calls answered in {:.1} ms",
        CALLS - failed,
        start.elapsed().as_secs_f64() * 1e3
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
