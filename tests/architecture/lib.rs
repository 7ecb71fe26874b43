//! Nothing: the checks are in tests/architecture.rs.
