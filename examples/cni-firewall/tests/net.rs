//! Every scenario under `tests/net` is one test: `cargo test --test net`
//! (as root), `cargo test --test net -- hostport` for one, `-- --list`.

fn main() {
    pktfate::testing::main("tests/net")
}
