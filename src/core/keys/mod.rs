//! Master keys: the backends that wrap and unwrap the data key (spec §5).
