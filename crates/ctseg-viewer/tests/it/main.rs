//! Integration tests, one binary (linked once): each module is one former test file.

mod annotate_gui;
mod common;
mod training_gui;
mod viewer;
