//! placeholder: the harness lands with the performance work.
