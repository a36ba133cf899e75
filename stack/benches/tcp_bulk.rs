//! Bulk TCP in memory: shunt against smoltcp (being written).
fn main() {}
