//! The cluster estate beside the topics: what a snapshot recorded of the
//! cluster's ACLs, client quotas, SCRAM users and dynamic broker configs
//! (`vault ls --metadata`), and restoring them to a target cluster
//! (`vault restore --estate`): plan against the target, refuse conflicts,
//! apply.

mod apply;
mod listing;
mod plan;
pub use apply::{EstateOutcome, apply_estate, check_conflicts, plan_estate};
pub use listing::{EstateListing, PartListing, entity_words};
pub use plan::{EstateInputs, EstateParts, EstatePlan, QuotaSet, UserUpsert};
