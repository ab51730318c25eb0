//! The viewer's panels. Each reads the state it is handed (the persisted
//! [`crate::settings::Settings`] it may edit in place, plus a read-only view of the
//! study) and returns [`crate::command::Command`]s for everything else; the shell
//! applies them after the frame.

pub mod menu;
pub mod model;
pub mod start;
pub mod status;
pub mod structures;
