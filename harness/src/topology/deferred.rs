//! Namespace deletions a suite holds back, so the kernel frees many
//! namespaces in one pass instead of one pass per scenario.
//!
//! The kernel frees a namespace in a work item (`cleanup_net`) that takes
//! every namespace queued so far, and holds RTNL through RCU grace periods
//! while it unregisters their devices. Every scenario still setting up
//! waits on RTNL (links, addresses, routes). Deleted as each scenario
//! ended, a suite's namespaces made the kernel run that pass again and
//! again in the middle of the other scenarios' set-up.

use std::sync::{Mutex, PoisonError};

use super::teardown;

/// How many namespaces are held at most before they are deleted at once:
/// enough for the shipped suite (31 scenarios, ~70 namespaces) to free all
/// of its namespaces at its end, few enough that a long suite does not
/// keep hundreds of namespaces and their devices alive.
pub const HELD_AT_MOST: usize = 128;

/// Deletes a namespace by its name under /run/netns.
type Delete = fn(&str) -> std::io::Result<()>;

/// Namespaces whose deletion waits. Each stays registered with
/// [`teardown`] until deleted, so a signal deletes it as any other; what
/// is still held when this is dropped (at the suite's end, or on a panic)
/// is deleted then. Problems go to the process's teardown reporter: the
/// scenarios they belong to have been reported already.
pub struct DeferredDeletions {
    held: Mutex<Vec<String>>,
    at_most: usize,
    delete: Delete,
}

impl Default for DeferredDeletions {
    fn default() -> Self {
        Self::with(HELD_AT_MOST, teardown::delete_netns)
    }
}

impl DeferredDeletions {
    fn with(at_most: usize, delete: Delete) -> Self {
        DeferredDeletions {
            held: Mutex::new(vec![]),
            at_most,
            delete,
        }
    }

    /// Holds `real_name` for deletion later; once [`HELD_AT_MOST`] are
    /// held, deletes them all now.
    pub fn hold(&self, real_name: &str) {
        let full = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.push(real_name.to_string());
            held.len() >= self.at_most
        };
        if full {
            self.delete_held();
        }
    }

    /// Deletes every namespace held.
    pub fn delete_held(&self) {
        let names = std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner));
        for n in names {
            match (self.delete)(&n) {
                Ok(()) => teardown::release(&n),
                Err(e) => teardown::report(&format!("deleting namespace {n}: {e}")),
            }
        }
    }
}

impl Drop for DeferredDeletions {
    fn drop(&mut self) {
        self.delete_held();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DELETED: Mutex<Vec<String>> = Mutex::new(vec![]);

    // A deleter's type, though this one cannot fail.
    #[allow(clippy::unnecessary_wraps)]
    fn record(name: &str) -> std::io::Result<()> {
        DELETED.lock().unwrap().push(name.to_string());
        Ok(())
    }

    fn deleted() -> Vec<String> {
        DELETED.lock().unwrap().clone()
    }

    #[test]
    fn held_namespaces_are_deleted_together_when_full_and_when_dropped() {
        let later = DeferredDeletions::with(3, record);
        later.hold("pftest-a");
        later.hold("pftest-b");
        assert!(deleted().is_empty(), "nothing deleted while there is room");
        later.hold("pftest-c");
        assert_eq!(deleted(), ["pftest-a", "pftest-b", "pftest-c"]);
        later.hold("pftest-d");
        assert_eq!(deleted().len(), 3);
        drop(later);
        assert_eq!(deleted(), ["pftest-a", "pftest-b", "pftest-c", "pftest-d"]);
    }
}
