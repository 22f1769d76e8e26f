//! Round trips for every operation, and the "never panics" contract of the
//! decoders on random, truncated, corrupted and oversized input.

use std::sync::Arc;

use busbar_kernel::{
    Attachment, BindArgs, BindingInfo, BusId, BusInfo, BusStats, Capabilities, Credentials,
    EndpointId, EndpointStats, Errno, Flags, HandleId, Header, Message, MessageId, OpCode,
    OrigFrom, Outgoing, Quota, QuotaStats, Request, Response, SendArgs, SendOutcome, UserUsage,
};
use busbar_wire::*;
use bytes::Bytes;
use proptest::prelude::*;

fn sample_message() -> Message {
    let mut m = Message::new(
        Header {
            id: MessageId {
                network: 0,
                serial: 7,
            },
            in_reply_to: MessageId {
                network: 2,
                serial: 3,
            },
            to: EndpointId(4),
            from: EndpointId(5),
            orig_from: OrigFrom {
                network: 1,
                local: 9,
            },
            final_to: OrigFrom {
                network: 8,
                local: 6,
            },
            name: Arc::from("$.a.b"),
            data: Bytes::from_static(b"\x00\xffdata"),
            creds: Credentials {
                pid: 10,
                uid: 11,
                gid: 12,
            },
            fds: Some(Attachment {
                data_in_last: false,
                count: 2,
                payload: Arc::new(()),
            }),
        },
        Flags::WANT_A_REPLY | Flags(0x1234_0000),
    );
    m.lost = 3;
    m.handles = vec![HandleId(2), HandleId::INVALID];
    m.destination = HandleId(8);
    m
}

fn sample_outgoing() -> Outgoing {
    Outgoing {
        id: MessageId {
            network: 3,
            serial: 4,
        },
        orig_from: OrigFrom {
            network: 1,
            local: 2,
        },
        final_to: OrigFrom {
            network: 5,
            local: 6,
        },
        to: EndpointId(9),
        caps: Some(Box::new(Capabilities {
            handles: vec![HandleId(4), HandleId(5)],
            to_handles: vec![HandleId(6)],
            fds: Some(Attachment {
                data_in_last: true,
                count: 1,
                payload: Arc::new(()),
            }),
        })),
        ..Outgoing::request("$.x.y", vec![1, 2, 3]).with_flags(Flags::URGENT)
    }
}

fn endpoint_stats() -> EndpointStats {
    EndpointStats {
        id: EndpointId(3),
        pid: 1,
        uid: 2,
        queued: 4,
        set_aside: 5,
        queue_limit: 6,
        lost: 7,
        sent: 8,
        received: 9,
        outstanding_requests: 10,
        owed_replies: 11,
        bindings: 12,
        only_once: true,
        pending_send: Some(MessageId {
            network: 0,
            serial: 13,
        }),
        queued_bytes: 14,
        handles: 15,
        nodes: 16,
        last_sent: MessageId {
            network: 17,
            serial: 18,
        },
        kbus_compat: true,
    }
}

/// One request and one response of every operation.
fn samples() -> Vec<(Request, Response)> {
    let bind = BindArgs {
        name: "$.a.*".into(),
        replier: true,
    };
    let send = SendArgs {
        message: sample_outgoing(),
        deadline: Some(99),
    };
    let v = vec![
        (Request::CreateBus(()), Response::CreateBus(BusId(3))),
        (
            Request::Open(Credentials {
                pid: 1,
                uid: 2,
                gid: 3,
            }),
            Response::Open(EndpointId(8)),
        ),
        (Request::Close(()), Response::Close(())),
        (Request::Bind(bind.clone()), Response::Bind(())),
        (Request::Unbind(bind), Response::Unbind(())),
        (
            Request::Send(send.clone()),
            Response::Send(MessageId {
                network: 0,
                serial: 77,
            }),
        ),
        (Request::Recv(()), Response::Recv(Some(sample_message()))),
        (
            Request::TakeReply(MessageId {
                network: 0,
                serial: 5,
            }),
            Response::TakeReply(None),
        ),
        (Request::DiscardSend(()), Response::DiscardSend(true)),
        (
            Request::TakeSendOutcome(()),
            Response::TakeSendOutcome(Some(SendOutcome {
                id: MessageId {
                    network: 0,
                    serial: 2,
                },
                result: Err(Errno::ETIMEDOUT),
            })),
        ),
        (Request::SetQueueLimit(5), Response::SetQueueLimit(100)),
        (Request::SetOnlyOnce(true), Response::SetOnlyOnce(false)),
        (
            Request::SetReplierBindEvents(true),
            Response::SetReplierBindEvents(false),
        ),
        (
            Request::SetMaxMessageSize(1000),
            Response::SetMaxMessageSize(4 << 20),
        ),
        (
            Request::FindReplier("$.a.b".into()),
            Response::FindReplier(Some(EndpointId(2))),
        ),
        (
            Request::EndpointStats(()),
            Response::EndpointStats(endpoint_stats()),
        ),
        (
            Request::BusStats(()),
            Response::BusStats(BusStats {
                bus: BusId(1),
                endpoints: 2,
                bindings: 3,
                replier_bindings: 4,
                next_serial: 5,
                max_message_size: 6,
                replier_bind_events: true,
                set_aside: 7,
                endpoint_stats: vec![endpoint_stats(), endpoint_stats()],
                counters: busbar_kernel::BusCounters {
                    sent: 8,
                    delivered: 9,
                    lost: 10,
                    synthetic: vec![busbar_kernel::NameCount {
                        name: "$.KBUS.Replier.GoneAway".into(),
                        count: 11,
                    }],
                    refused: vec![busbar_kernel::ErrnoCount {
                        errno: 16,
                        count: 12,
                    }],
                },
            }),
        ),
        (
            Request::RecvBatch(64),
            Response::RecvBatch(vec![sample_message(), sample_message()]),
        ),
        (
            Request::SendBatch(vec![send.clone(), send]),
            Response::SendBatch(vec![
                Ok(MessageId {
                    network: 0,
                    serial: 1,
                }),
                Err(Errno::EBUSY),
            ]),
        ),
        (Request::SetMonitor(true), Response::SetMonitor(false)),
        (Request::CreateNode(()), Response::CreateNode(HandleId(3))),
        (
            Request::ReleaseHandle(HandleId(3)),
            Response::ReleaseHandle(()),
        ),
        (
            Request::DestroyNodes(vec![HandleId(1), HandleId(9)]),
            Response::DestroyNodes(()),
        ),
        (
            Request::SetQuota(Quota {
                messages: 1,
                bytes: 2,
                handles: 3,
                fds: 4,
            }),
            Response::SetQuota(Quota::default()),
        ),
        (
            Request::QuotaStats(()),
            Response::QuotaStats(QuotaStats {
                quota: Quota::default(),
                users: vec![UserUsage {
                    uid: 1000,
                    sender_uid: 7,
                    messages: 2,
                    bytes: 3,
                    handles: 4,
                    fds: 5,
                }],
            }),
        ),
        (Request::SetKbusCompat(true), Response::SetKbusCompat(false)),
        (
            Request::ListBindings(7),
            Response::ListBindings(vec![BindingInfo {
                id: 8,
                endpoint: EndpointId(3),
                pid: 4,
                uid: 5,
                replier: true,
                name: "$.a.*".into(),
            }]),
        ),
        (
            Request::BusInfo(()),
            Response::BusInfo(BusInfo {
                bus: BusId(1),
                buses: 2,
                max_message_size: 300,
                absolute_max_message_size: 400,
                replier_bind_events: true,
                connections: 13,
                fds_held: 14,
            }),
        ),
        (
            Request::PatternReplier("$.a.*".into()),
            Response::PatternReplier(Some(EndpointId(4))),
        ),
    ];
    // Every operation has a sample.
    let mut codes: Vec<OpCode> = v.iter().map(|(r, _)| r.code()).collect();
    codes.dedup();
    assert_eq!(codes, OpCode::ALL, "a sample per operation, in code order");
    v
}

fn one_frame(bytes: &[u8]) -> Frame {
    let mut r = FrameReader::new(1 << 20);
    r.buffer().extend_from_slice(bytes);
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(r.buffered(), 0);
    f
}

#[test]
fn every_operation_round_trips() {
    for (seq, (req, resp)) in samples().into_iter().enumerate() {
        let seq = seq as u32 + 1;
        let mut out = Vec::new();
        emit_request(&mut out, seq, 2, 9, &req, None, 0);
        let f = one_frame(&out);
        assert_eq!(f.header.seq, seq);
        let w = parse_request(&f).unwrap();
        assert_eq!(
            w,
            WireRequest {
                bus: 2,
                endpoint: 9,
                request: req.clone()
            }
        );

        for result in [Ok(resp.clone()), Err(Errno::EADDRNOTAVAIL)] {
            let mut out = Vec::new();
            emit_response(&mut out, seq, req.code(), FLAG_READABLE, &result);
            let f = one_frame(&out);
            assert_eq!(f.header.flags, FLAG_READABLE);
            assert_eq!(parse_response(&f).unwrap(), result);
        }
    }
}

#[test]
fn handshake_round_trips_and_checks_magic() {
    let mut out = Vec::new();
    emit_hello(&mut out);
    assert_eq!(parse_hello(&one_frame(&out)), Ok(VERSION));
    out[HEADER_LEN] ^= 1;
    assert!(parse_hello(&one_frame(&out)).is_err());
    let w = Welcome {
        version: 1,
        max_frame: 1 << 20,
        buses: 3,
    };
    let mut out = Vec::new();
    emit_welcome(&mut out, w);
    assert_eq!(parse_welcome(&one_frame(&out)), Ok(w));
}

#[test]
fn frames_split_across_reads_and_back_to_back() {
    let mut bytes = Vec::new();
    for (i, (req, _)) in samples().into_iter().enumerate() {
        emit_request(&mut bytes, i as u32, 0, 1, &req, Some(7), 0);
    }
    let mut r = FrameReader::new(1 << 20);
    let mut got = 0;
    for chunk in bytes.chunks(7) {
        r.buffer().extend_from_slice(chunk);
        while let Some(f) = r.next_frame().unwrap() {
            parse_request(&f).unwrap();
            got += 1;
        }
    }
    assert_eq!(got, OpCode::ALL.len());
}

#[test]
fn oversized_and_undersized_lengths_are_refused() {
    let mut r = FrameReader::new(1024);
    r.buffer().extend_from_slice(&2048u32.to_le_bytes());
    r.buffer().extend_from_slice(&[0; 12]);
    assert_eq!(r.next_frame().unwrap_err(), WireError::TooLong(2048));
    let mut r = FrameReader::new(1024);
    r.buffer().extend_from_slice(&3u32.to_le_bytes());
    r.buffer().extend_from_slice(&[0; 12]);
    assert!(r.next_frame().is_err());
}

#[test]
fn hostile_collection_lengths_do_not_allocate() {
    // A RecvBatch response claiming 4 billion messages in a tiny body.
    let mut out = Vec::new();
    emit_frame(
        &mut out,
        RESPONSE | OpCode::RecvBatch as u16,
        0,
        1,
        0,
        |b| {
            b.extend_from_slice(&u32::MAX.to_le_bytes());
        },
    );
    assert_eq!(parse_response(&one_frame(&out)), Err(WireError::Truncated));
}

#[test]
fn every_truncation_of_every_sample_fails_cleanly() {
    for (req, resp) in samples() {
        let mut out = Vec::new();
        emit_request(&mut out, 1, 0, 1, &req, None, 0);
        for cut in HEADER_LEN..out.len() {
            let mut f = out[..cut].to_vec();
            f[0..4].copy_from_slice(&(cut as u32).to_le_bytes());
            assert!(
                parse_request(&one_frame(&f)).is_err(),
                "{req:?} cut at {cut}"
            );
        }
        let mut out = Vec::new();
        emit_response(&mut out, 1, req.code(), 0, &Ok(resp));
        for cut in HEADER_LEN..out.len() {
            let mut f = out[..cut].to_vec();
            f[0..4].copy_from_slice(&(cut as u32).to_le_bytes());
            let r = parse_response(&one_frame(&f));
            // A few bodies end in an optional field or a collection whose
            // prefix is itself valid; everything else must be an error.
            if let Ok(Ok(v)) = r {
                panic!("truncated at {cut} still decoded: {v:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut r = FrameReader::new(4096);
        r.buffer().extend_from_slice(&bytes);
        while let Ok(Some(f)) = r.next_frame() {
            let _ = parse_request(&f);
            let _ = parse_response(&f);
            let _ = parse_hello(&f);
            let _ = parse_welcome(&f);
        }
    }

    #[test]
    fn corrupted_valid_frames_never_panic(i in 0usize..25, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let (req, resp) = samples().swap_remove(i);
        for response in [false, true] {
            let mut out = Vec::new();
            if response {
                emit_response(&mut out, 1, req.code(), 0, &Ok(resp.clone()));
            } else {
                emit_request(&mut out, 1, 0, 1, &req, None, 0);
            }
            for &(at, x) in &flips {
                let at = HEADER_LEN + at % (out.len() - HEADER_LEN).max(1);
                if at < out.len() {
                    out[at] ^= x;
                }
            }
            let f = one_frame(&out);
            let _ = parse_request(&f);
            let _ = parse_response(&f);
        }
    }
}
