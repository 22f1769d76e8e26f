//! The shared library's soname carries the ABI version: programs link
//! against `libbusbar.so.0` (scripts/install-c.sh installs the library
//! under that name).

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbusbar.so.0");
}
