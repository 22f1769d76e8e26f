//! An async replier serving many requests at once: each request is handled
//! in its own task (here, a simulated 10 ms of work), so slow requests do
//! not hold up the others. Pairs with `async_client`.
//!
//! ```sh
//! busbar daemon &
//! cargo run --release -p busbar --features tokio --example async_replier
//! ```

use std::sync::Arc;
use std::time::Duration;

use busbar::{AsyncEndpoint, Bus, Errno, TokioReactor};

#[tokio::main]
async fn main() -> Result<(), Errno> {
    let bus = Bus::connect_default()?; // $BUSBAR_SOCKET, or the default socket
    let ep = Arc::new(AsyncEndpoint::<TokioReactor>::new(bus.open()?)?);
    ep.endpoint().bind_replier("$.async.echo")?;
    // Room for many requests waiting at once.
    ep.endpoint().set_queue_limit(4096)?;
    eprintln!("serving $.async.echo (Ctrl-C stops)");
    loop {
        let request = ep.recv().await?;
        if !request.wants_us_to_reply() {
            continue;
        }
        let ep = ep.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await; // the work
            if let Err(e) = ep.endpoint().reply(&request, request.data.clone()) {
                eprintln!("reply: {e}");
            }
        });
    }
}
