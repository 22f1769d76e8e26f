//! Metrics in the Prometheus / OpenMetrics text format (prometheus-client),
//! from what the bus reports to any client: `BusStats` (with the bus's
//! counters) and `BusInfo` (the daemon's connections and fds). `busbar
//! metrics` prints them; with `metrics_listen` set, the daemon serves them
//! over HTTP from a thread that is a client of its own socket.
//!
//! Per bus (label `bus`): messages sent, copies delivered, copies lost,
//! synthetic messages by name, refused sends by errno, endpoints, bindings,
//! replier bindings, queued messages and bytes. Per daemon: buses,
//! connections, fds held.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use busbar::{Bus, BusId, Errno};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn counter_family(r: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    r.register(name, help, f.clone());
    f
}

fn gauge_family(r: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    r.register(name, help, f.clone());
    f
}

fn bus_label(bus: u32) -> Labels {
    vec![("bus".into(), bus.to_string())]
}

fn with(mut l: Labels, k: &str, v: String) -> Labels {
    l.push((k.into(), v));
    l
}

/// The metrics of bus `only` (or every bus) of the daemon `bus` is
/// connected to, as OpenMetrics text.
pub fn render(bus: &Bus, only: Option<u32>) -> Result<String, Errno> {
    let info = bus.info()?;
    let mut r = Registry::with_prefix("busbar");
    let sent = counter_family(&mut r, "messages_sent", "Messages the bus accepted");
    let delivered = counter_family(
        &mut r,
        "copies_delivered",
        "Copies queued for receivers (monitors and synthetic messages included)",
    );
    let lost = counter_family(
        &mut r,
        "copies_lost",
        "Copies lost because a listener's queue was full",
    );
    let synthetic = counter_family(
        &mut r,
        "synthetic_messages",
        "Messages made by the bus itself, by name",
    );
    let refused = counter_family(&mut r, "sends_refused", "Sends refused, by errno");
    let endpoints = gauge_family(&mut r, "endpoints", "Open endpoints");
    let bindings = gauge_family(&mut r, "bindings", "Bindings (listeners and repliers)");
    let repliers = gauge_family(&mut r, "replier_bindings", "Replier bindings");
    let queued = gauge_family(&mut r, "queued_messages", "Messages queued, all endpoints");
    let queued_bytes = gauge_family(&mut r, "queued_bytes", "Bytes queued, all endpoints");
    let buses = Gauge::<i64>::default();
    r.register("buses", "Buses the daemon serves", buses.clone());
    let connections = Gauge::<i64>::default();
    r.register("connections", "Client connections", connections.clone());
    let fds = Gauge::<i64>::default();
    r.register(
        "fds_held",
        "File descriptors the daemon holds outside the queues",
        fds.clone(),
    );
    buses.set(i64::from(info.buses));
    connections.set(i64::from(info.connections));
    fds.set(i64::try_from(info.fds_held).unwrap_or(i64::MAX));

    let ids: Vec<u32> = match only {
        Some(n) => vec![n],
        None => (0..info.buses).collect(),
    };
    for id in ids {
        let s = bus.bus(BusId(id)).stats()?;
        let l = bus_label(id);
        let c = &s.counters;
        sent.get_or_create(&l).inc_by(c.sent);
        delivered.get_or_create(&l).inc_by(c.delivered);
        lost.get_or_create(&l).inc_by(c.lost);
        for n in &c.synthetic {
            synthetic
                .get_or_create(&with(l.clone(), "name", n.name.to_string()))
                .inc_by(n.count);
        }
        for e in &c.refused {
            let name = Errno::from_number(e.errno)
                .map_or_else(|| e.errno.to_string(), |x| x.name().to_string());
            refused
                .get_or_create(&with(l.clone(), "errno", name))
                .inc_by(e.count);
        }
        endpoints.get_or_create(&l).set(i64::from(s.endpoints));
        bindings.get_or_create(&l).set(i64::from(s.bindings));
        repliers
            .get_or_create(&l)
            .set(i64::from(s.replier_bindings));
        let q: u64 = s.endpoint_stats.iter().map(|e| u64::from(e.queued)).sum();
        let qb: u64 = s.endpoint_stats.iter().map(|e| e.queued_bytes).sum();
        queued
            .get_or_create(&l)
            .set(i64::try_from(q).unwrap_or(i64::MAX));
        queued_bytes
            .get_or_create(&l)
            .set(i64::try_from(qb).unwrap_or(i64::MAX));
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).map_err(|_| Errno::EIO)?;
    Ok(out)
}

/// Serves `GET /metrics` on `addr` from a thread, each request rendered
/// through a client connection to the daemon's own `socket`. Returns the
/// address bound (for port 0).
pub fn serve_http(addr: SocketAddr, socket: PathBuf) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("busbar-metrics".into())
        .spawn(move || {
            let mut bus: Option<Bus> = None;
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &socket, &mut bus);
            }
        })?;
    Ok(bound)
}

/// One HTTP request: `GET /metrics` gets the metrics, anything else 404.
fn answer(mut stream: TcpStream, socket: &PathBuf, bus: &mut Option<Bus>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if !request.starts_with("GET ") || (path != "/metrics" && path != "/") {
        return stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    let body = (|| {
        if bus.is_none() {
            *bus = Some(Bus::connect(socket)?);
        }
        let r = render(bus.as_ref().expect("connected above"), None);
        if r.is_err() {
            *bus = None; // reconnect next time
        }
        r
    })();
    match body {
        Ok(body) => write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        Err(e) => write!(
            stream,
            "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nX-Busbar-Error: {}\r\n\r\n",
            e.name()
        ),
    }
}
