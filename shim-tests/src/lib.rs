//! Real programs run over shunt in namespaces, and the test bed they share.

pub mod cases;
pub mod over;
pub mod testbed;
