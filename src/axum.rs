//! axum adapter
