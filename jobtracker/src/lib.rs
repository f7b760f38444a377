//! Tusk jobtracker (being written).
