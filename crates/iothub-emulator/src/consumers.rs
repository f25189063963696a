//! Readers of the built-in endpoint: consumer groups and who reads which partition.
//!
//! Rules (Event Hubs features and quotas, as the built-in endpoint applies them):
//! - every hub has the consumer group `$Default`; others exist when they are created (here:
//!   a builder option, a flag, or the data dir's `consumer-groups.txt`). Names are matched
//!   without regard to case;
//! - each consumer group reads every partition independently;
//! - at most [`MAX_READERS_PER_PARTITION`] readers per partition and consumer group;
//! - an owner-level ("epoch") reader takes a partition over: readers with a lower or equal
//!   epoch, and readers without one, are disconnected (`amqp:link:stolen`); a reader whose
//!   epoch is lower than the owner's, or a reader without an epoch while an owner reads, is
//!   refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

/// The consumer group every hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// Readers one partition of one consumer group may have at once (Event Hubs quota).
pub const MAX_READERS_PER_PARTITION: usize = 5;

/// Why a reader could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    /// No such consumer group.
    #[error("The consumer group '{0}' does not exist on this hub.")]
    NoSuchGroup(String),
    /// A reader with a higher epoch owns the partition.
    #[error("A receiver with epoch {owner} already reads this partition; epoch {asked} is lower.")]
    EpochTooLow {
        /// The owner's epoch.
        owner: i64,
        /// The epoch asked for (none counts as lower than any).
        asked: String,
    },
    /// The partition already has the most readers allowed.
    #[error(
        "Partition {partition} of consumer group '{group}' already has {MAX_READERS_PER_PARTITION} readers."
    )]
    TooManyReaders {
        /// Consumer group.
        group: String,
        /// Partition.
        partition: u32,
    },
}

struct Reader {
    id: u64,
    epoch: Option<i64>,
    stolen: watch::Sender<Option<i64>>,
}

type Key = (String, u32);

/// The consumer groups of a hub and the readers of each partition.
pub struct ConsumerGroups {
    names: Vec<String>,
    readers: Arc<Mutex<HashMap<Key, Vec<Reader>>>>,
    next_id: Mutex<u64>,
}

impl std::fmt::Debug for ConsumerGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroups")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// A reader's hold on a partition. Dropping it frees the place. `stolen` changes to
/// `Some(epoch)` when a reader with that epoch takes the partition over.
#[derive(Debug)]
pub struct ReaderLease {
    key: Key,
    id: u64,
    readers: Weak<Mutex<HashMap<Key, Vec<Reader>>>>,
    /// Set when another reader took the partition over (its epoch).
    pub stolen: watch::Receiver<Option<i64>>,
}

impl Drop for ReaderLease {
    fn drop(&mut self) {
        if let Some(readers) = self.readers.upgrade() {
            let mut all = readers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = all.get_mut(&self.key) {
                list.retain(|r| r.id != self.id);
                if list.is_empty() {
                    all.remove(&self.key);
                }
            }
        }
    }
}

impl ConsumerGroups {
    /// `$Default` plus `extra` (duplicates and case variants ignored).
    pub fn new(extra: &[String]) -> Self {
        let mut names = vec![DEFAULT_CONSUMER_GROUP.to_owned()];
        for name in extra {
            let name = name.trim();
            if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.to_owned());
            }
        }
        ConsumerGroups {
            names,
            readers: Arc::default(),
            next_id: Mutex::new(0),
        }
    }

    /// The consumer groups, `$Default` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The stored spelling of a consumer group, if it exists.
    pub fn find(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// Starts reading `partition` in `group`, with an owner level if `epoch` is given.
    ///
    /// # Errors
    /// [`ConsumerError::NoSuchGroup`], [`ConsumerError::EpochTooLow`] or
    /// [`ConsumerError::TooManyReaders`].
    pub fn claim(
        &self,
        group: &str,
        partition: u32,
        epoch: Option<i64>,
    ) -> Result<ReaderLease, ConsumerError> {
        let group = self
            .find(group)
            .ok_or_else(|| ConsumerError::NoSuchGroup(group.to_owned()))?
            .to_owned();
        let key = (group.to_ascii_lowercase(), partition);
        let mut all = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        let list = all.entry(key.clone()).or_default();
        let owner = list.iter().filter_map(|r| r.epoch).max();
        match (owner, epoch) {
            (Some(owner), Some(asked)) if asked < owner => {
                return Err(ConsumerError::EpochTooLow {
                    owner,
                    asked: asked.to_string(),
                });
            }
            (Some(owner), None) => {
                return Err(ConsumerError::EpochTooLow {
                    owner,
                    asked: "(none)".to_owned(),
                });
            }
            (_, Some(asked)) => {
                // Take over: every other reader is disconnected.
                for reader in list.drain(..) {
                    reader.stolen.send_replace(Some(asked));
                }
            }
            (None, None) => {
                if list.len() >= MAX_READERS_PER_PARTITION {
                    return Err(ConsumerError::TooManyReaders { group, partition });
                }
            }
        }
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let (stolen_tx, stolen) = watch::channel(None);
        list.push(Reader {
            id,
            epoch,
            stolen: stolen_tx,
        });
        Ok(ReaderLease {
            key,
            id,
            readers: Arc::downgrade(&self.readers),
            stolen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_found_in_any_case() {
        let groups = ConsumerGroups::new(&["analytics".into(), "ANALYTICS".into(), " ".into()]);
        assert_eq!(groups.names(), ["$Default", "analytics"]);
        assert_eq!(groups.find("$default"), Some("$Default"));
        assert!(matches!(
            groups.claim("nope", 0, None),
            Err(ConsumerError::NoSuchGroup(_))
        ));
    }

    #[test]
    fn an_epoch_reader_takes_over_and_lower_ones_are_refused() {
        let groups = ConsumerGroups::new(&[]);
        let plain = groups.claim("$Default", 0, None).expect("plain reader");
        let other_partition = groups.claim("$Default", 1, None).expect("partition 1");
        let first = groups.claim("$Default", 0, Some(1)).expect("epoch 1");
        assert_eq!(*plain.stolen.borrow(), Some(1));
        assert_eq!(*other_partition.stolen.borrow(), None);
        assert!(matches!(
            groups.claim("$Default", 0, None),
            Err(ConsumerError::EpochTooLow { owner: 1, .. })
        ));
        assert!(matches!(
            groups.claim("$Default", 0, Some(0)),
            Err(ConsumerError::EpochTooLow { owner: 1, .. })
        ));
        let second = groups.claim("$Default", 0, Some(2)).expect("epoch 2");
        assert_eq!(*first.stolen.borrow(), Some(2));
        drop(second);
        drop(first);
        drop(plain);
        // Once the owner is gone, plain readers may read again.
        let _again = groups.claim("$Default", 0, None).expect("plain again");
    }

    #[test]
    fn at_most_five_readers_per_partition_and_group() {
        let groups = ConsumerGroups::new(&["cg2".into()]);
        let held: Vec<_> = (0..MAX_READERS_PER_PARTITION)
            .map(|_| groups.claim("$Default", 2, None).expect("reader"))
            .collect();
        assert!(matches!(
            groups.claim("$Default", 2, None),
            Err(ConsumerError::TooManyReaders { .. })
        ));
        let _other_group = groups
            .claim("cg2", 2, None)
            .expect("another group reads too");
        drop(held);
        let _freed = groups
            .claim("$Default", 2, None)
            .expect("a place was freed");
    }
}
