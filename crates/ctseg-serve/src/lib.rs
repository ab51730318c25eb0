//! `ctseg serve`: an HTTP service over ctseg's models (MONAI Label-compatible API).
