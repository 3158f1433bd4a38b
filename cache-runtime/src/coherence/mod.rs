//! Coherence: what keeps every process's memory tier and tag versions in
//! step with the store. Tag versions this process knows (`known`) and their
//! periodic confirmation (`confirm`), the backplane that carries other
//! processes' invalidations and key writes (`backplane`, `key_writes`), the
//! queue of invalidations the store has not confirmed yet (`invalidation`),
//! and the outage grace (`outage`). The store itself is `remote`'s.

pub(crate) mod backplane;
pub(crate) mod confirm;
pub(crate) mod invalidation;
pub(crate) mod key_writes;
pub(crate) mod known;
pub(crate) mod outage;
