//! Integration tests, one binary (linked once): each module is one former test file.

mod backends;
mod common;
mod pytorch_interop;
mod pytorch_parity;
mod training;
