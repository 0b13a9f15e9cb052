//! Sweeps: every scenario over a range of seeds, optionally sharded and on several
//! worker processes, with a reproduction file and trace for each failure.
