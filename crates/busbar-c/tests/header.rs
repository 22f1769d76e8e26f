//! `include/busbar.h` is what cbindgen makes of this crate now: a change to
//! the API that is not in the committed header fails here. Regenerate it
//! with `BUSBAR_BLESS=1 cargo test -p busbar-c --test header`.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/busbar.h");
    if std::env::var_os("BUSBAR_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/busbar.h differs from what cbindgen generates from crates/busbar-c: \
         regenerate it with `BUSBAR_BLESS=1 cargo test -p busbar-c --test header` and commit it"
    );
}
