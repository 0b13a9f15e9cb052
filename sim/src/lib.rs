//! The deterministic simulator of Revenant (grows with the simulator issue).

pub mod fs;
