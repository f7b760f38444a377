//! Tusk worker (being written).
