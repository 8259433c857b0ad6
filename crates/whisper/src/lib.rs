//! The whisper format.
