//! Running releases past one machine. Today: the image registry that `release --push` fills
//! and that every node pulls from by digest.

pub mod registry;
