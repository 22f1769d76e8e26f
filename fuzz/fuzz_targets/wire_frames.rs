//! Feeds arbitrary bytes to the frame splitter and every frame decoder:
//! none may panic, whatever the input.
#![no_main]

use busbar_wire::{FrameReader, parse_hello, parse_request, parse_response, parse_welcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = FrameReader::new(1 << 16);
    r.buffer().extend_from_slice(data);
    while let Ok(Some(f)) = r.next_frame() {
        let _ = parse_request(&f);
        let _ = parse_response(&f);
        let _ = parse_hello(&f);
        let _ = parse_welcome(&f);
    }
});
