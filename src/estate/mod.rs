//! The cluster estate beside the topics: what a snapshot recorded of the
//! cluster's ACLs, client quotas, SCRAM users and dynamic broker configs
//! (`vault ls --metadata`), and restoring them to a target cluster.

mod listing;
pub use listing::{EstateListing, PartListing};
