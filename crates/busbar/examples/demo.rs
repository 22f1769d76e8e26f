//! busbar demo: a replier, a listener and a requester on an in-process bus.
//!
//! Shows a real reply, what a listener sees (in the same order as everyone
//! else), a request the replier ignores, one it never reads, and the
//! synthetic replies the bus sends when the replier goes away.
//!
//! Run: `cargo run -p busbar --example demo`

use std::thread;
use std::time::Duration;

use busbar::{Bus, Message};

fn show(who: &str, m: &Message) {
    let kind = m.kind();
    println!(
        "{who:>9} got {kind:<12} id={} name={} from={} to={} in_reply_to={} data={:?}{}",
        m.id,
        m.name,
        m.from,
        m.to,
        m.in_reply_to,
        String::from_utf8_lossy(&m.data),
        if m.lost > 0 {
            format!(" (lost {} before this)", m.lost)
        } else {
            String::new()
        },
    );
}

fn main() -> Result<(), busbar::Errno> {
    let bus = Bus::in_process();

    let listener = bus.open()?;
    listener.bind("$.demo.*")?;
    let replier = bus.open()?;
    replier.bind_replier("$.demo.clock.time")?;
    let requester = bus.open()?;
    println!(
        "endpoints: listener={} replier={} requester={}\n",
        listener.id(),
        replier.id(),
        requester.id()
    );

    // 1. A real request and reply, the replier answering from another thread.
    let server = thread::spawn(move || -> Result<busbar::Endpoint, busbar::Errno> {
        let req = replier.recv()?;
        show("replier", &req);
        replier.reply(&req, "12:00")?;
        Ok(replier)
    });
    let reply = requester.call(
        "$.demo.clock.time",
        "what time is it?",
        Some(Duration::from_secs(10)),
    )?;
    show("requester", &reply);
    let replier = server.join().expect("replier thread")?;

    // 2. An announcement: listeners only, nobody listening is fine.
    requester.announce("$.demo.news", "the bus is up")?;

    // 3. Two more requests. The replier reads the first and never answers;
    //    the second stays unread. Then the replier goes away.
    let ignored = requester.request("$.demo.clock.time", "and now?")?;
    let unread = requester.request("$.demo.clock.time", "hello?")?;
    let taken = replier.recv()?;
    show("replier", &taken);
    println!("\n  replier closes with one request taken and one unread...\n");
    replier.close()?;

    let r1 = requester.wait_reply(ignored, Some(Duration::from_secs(10)))?;
    show("requester", &r1);
    let r2 = requester.wait_reply(unread, Some(Duration::from_secs(10)))?;
    show("requester", &r2);

    // 4. With no replier at all, a request is refused at once.
    match requester.request("$.demo.clock.time", "anyone?") {
        Err(e) => println!("requester request with no replier: {e}"),
        Ok(id) => println!("unexpected: request {id} accepted"),
    }

    // The listener saw everything under $.demo.*, in bus order (synthetic
    // replies go only to their requester).
    println!();
    while let Some(m) = listener.try_recv()? {
        show("listener", &m);
    }
    let stats = listener.stats()?;
    println!(
        "\nlistener stats: received={} queued={} lost={} limit={}",
        stats.received, stats.queued, stats.lost, stats.queue_limit
    );
    Ok(())
}
