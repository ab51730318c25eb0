//! Integration tests, one binary (linked once): each module is one former test file.

mod backends;
mod common;
mod cpu_conv;
mod pytorch_interop;
mod pytorch_parity;
mod training;
