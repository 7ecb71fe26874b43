use pktfate::tracer::*;
use std::time::Duration;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ns: u32 = args[1].parse().unwrap();
    let t0 = std::time::Instant::now();
    let mut t = Tracer::start(&TraceSpec { netns: vec![ns], filters: vec![], stacks: true }).unwrap();
    eprintln!("attached in {:?}: {:?}", t0.elapsed(), t.backend().hooks());
    let end = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < end {
        for e in t.poll(Duration::from_millis(100)).unwrap() {
            println!("{:x} {} {} ns={} if={} {} reason={:?} at={:?} aux={:?}\n   {}", e.skb, e.hook, e.comm, e.netns, e.ifindex, e.packet.tuple(), e.reason, e.at, e.aux, e.stack.join(" <- "));
        }
    }
    eprintln!("lost {}", t.lost().unwrap());
}
