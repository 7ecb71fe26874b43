//! The scenario suite: one trial per `scenarios/**/*.yaml`, so `cargo test`
//! runs them against the real kernel and libtest's name filters, `--list`
//! and `--format json` work. This is the two lines a user's crate has.

fn main() {
    pktfate::testing::main("../scenarios")
}
