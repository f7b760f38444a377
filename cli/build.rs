//! Links `tusk` as a position-dependent executable on Linux x86-64.
//!
//! Every task attempt is a fresh `tusk task` process. As a PIE, the binary
//! carries about 260 000 relative relocations that the dynamic loader
//! applies at each start, copying the pages it patches (4 MB of
//! `.data.rel.ro`); a position-dependent executable has them resolved at
//! link time and maps those pages shared from the page cache. Measured:
//! `tusk --version` 3.4 ms and 1 434 page faults as a PIE, 1.4 ms and 243
//! without; about 3% of the CPU of the TPC-H benchmark.
//!
//! The trade-off: the executable's own code and data sit at a fixed address
//! (shared libraries, stack and heap are still randomized). Build with
//! `TUSK_BUILD_PIE=1` to keep a PIE.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TUSK_BUILD_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && arch == "x86_64" && std::env::var_os("TUSK_BUILD_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
