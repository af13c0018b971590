//! A role's named probes (the loops `/healthz` watches, the components `/readyz` asks), shared
//! by the code that registers them and the admin route that asks them.

use std::sync::{Arc, Mutex, PoisonError};

/// Probes by name, in the order they were added; cheap to clone.
pub(crate) struct Named<P>(Arc<Mutex<Vec<(&'static str, P)>>>);

impl<P> Named<P> {
    pub(crate) fn add(&self, name: &'static str, probe: P) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, probe));
    }

    /// Each probe's answer to `ask`, by name.
    pub(crate) fn ask<T>(&self, ask: impl Fn(&P) -> T) -> Vec<(&'static str, T)> {
        let probes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        probes.iter().map(|(name, p)| (*name, ask(p))).collect()
    }
}

impl<P> Clone for Named<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<P> Default for Named<P> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<P> std::fmt::Debug for Named<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let probes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(probes.iter().map(|(name, _)| name))
            .finish()
    }
}
