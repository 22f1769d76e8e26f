//! Bad input from the network and bad arguments.

use super::*;

#[test]
fn bad_input_is_counted_and_dropped() {
    use zenoh::Wait;
    let p = pair(&[], &[]);
    let (a, b) = (p.a.bus(), p.b.bus());
    let l = a.open().unwrap();
    l.bind("$.in.*").unwrap();
    let r = a.open().unwrap();
    r.bind_replier("$.in.svc").unwrap();
    let s = b.open().unwrap();
    until_crossing(&s, &l, "$.in.probe");

    let mut config = zenoh::Config::default();
    config
        .insert_json5(
            "connect/endpoints",
            &format!("[{:?}]", zsock(&p.dir, "z.sock")),
        )
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let z = zenoh::open(config).wait().unwrap();
    // Garbage, a truncated envelope, an empty one, a valid one under
    // another name's key, and a request on the announcement path.
    let envelope = |kind: Kind, name: &str, flags: Flags| {
        let header = busbar::Header {
            id: MessageId {
                network: 9,
                serial: 1,
            },
            in_reply_to: MessageId::NONE,
            to: EndpointId::BUS,
            from: EndpointId(3),
            orig_from: OrigFrom::default(),
            final_to: OrigFrom::default(),
            name: name.into(),
            data: Bytes::new(),
            creds: Default::default(),
            fds: None,
        };
        Envelope {
            kind,
            origin: 9,
            instance: 1,
            seq: 1,
            message: Message::new(header, flags),
        }
        .encode()
    };
    let good = envelope(Kind::Announcement, "$.in.y", Flags::default());
    let puts: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![],
        good.clone(),
        envelope(Kind::Request, "$.in.x", Flags::WANT_A_REPLY),
    ];
    // Sent once this session sees the bridge's subscriber and queryable
    // (declarations cross asynchronously).
    let publisher = z.declare_publisher("busbar/t/in/x").wait().unwrap();
    let querier = z
        .declare_querier("busbar-bridge/t/1/request/in/svc")
        .timeout(Duration::from_secs(5))
        .wait()
        .unwrap();
    let end = Instant::now() + PATIENCE;
    while !(publisher.matching_status().wait().unwrap().matching()
        && querier.matching_status().wait().unwrap().matching())
    {
        assert!(Instant::now() < end, "never saw the bridge on Zenoh");
        std::thread::sleep(Duration::from_millis(10));
    }
    for v in puts {
        publisher.put(v).wait().unwrap();
    }
    let replies = querier
        .get()
        .payload(b"not a request".to_vec())
        .wait()
        .unwrap();
    while replies.recv().is_ok() {}
    p.ba.wait_log("dropped bad input");
    p.ba.wait_log("(6 so far");
    assert_quiet(&l, "nothing bad was delivered");
    assert_quiet(&r, "nothing bad reached the replier");
    // And the bridge still works.
    s.announce("$.in.after", "ok").unwrap();
    assert_eq!(&next(&l).data[..], b"ok");
    drop(z);
}

#[test]
fn bad_arguments_say_what_to_do() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_busbar-zenoh"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (args, says) in [
        (&["--namespace", "a/b"][..], "bad namespace"),
        (&["--names", "$.a.**"][..], "give patterns like"),
        (&["--listen", "foo"][..], "give PROTOCOL/ADDRESS"),
        (&["--connect", "ftp/h:1"][..], "give PROTOCOL/ADDRESS"),
        (&["--connect", "tcp/"][..], "give PROTOCOL/ADDRESS"),
        (&["--network-id", "0"][..], "--network-id"),
        (&["--rescan", "0"][..], "between 1 and 60000"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let dir = Dir::new();
    let missing = dir.path("none.sock");
    let (code, err) = run(&["--socket", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no busbar daemon socket"), "{err}");
}
