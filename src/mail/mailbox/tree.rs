//! The Mailbox hierarchy (RFC 8621 §2 `parentId`): ancestry, depth and cycle checks for
//! Mailbox/set, and the tree orderings of Mailbox/query (`sortAsTree`, `filterAsTree`,
//! RFC 8621 §2.3).
//!
//! Every walk is bounded by the number of Mailboxes, so a corrupt store with a cycle cannot
//! make one loop forever.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Mailbox;

pub type Mailboxes = BTreeMap<u64, Mailbox>;

/// The ancestors of `mailbox_id`, nearest first. Stops at a missing parent or a cycle.
pub fn ancestors(mailboxes: &Mailboxes, mailbox_id: u64) -> Vec<u64> {
    let mut found = Vec::new();
    let mut current = mailboxes
        .get(&mailbox_id)
        .and_then(|mailbox| mailbox.parent_id);
    while let Some(parent_id) = current {
        if parent_id == mailbox_id || found.contains(&parent_id) || found.len() > mailboxes.len() {
            break;
        }
        found.push(parent_id);
        current = mailboxes
            .get(&parent_id)
            .and_then(|mailbox| mailbox.parent_id);
    }
    found
}

/// One more than the number of ancestors a Mailbox placed under `parent_id` would have
/// (RFC 8621 §1.3.1 `maxMailboxDepth` counts this way).
pub fn depth_under(mailboxes: &Mailboxes, parent_id: Option<u64>) -> usize {
    match parent_id {
        None => 1,
        Some(parent_id) => ancestors(mailboxes, parent_id).len() + 2,
    }
}

/// Whether making `parent_id` the parent of `mailbox_id` would close a loop (RFC 8621 §2:
/// "There MUST NOT be a loop"): the new parent is the Mailbox itself or one of its descendants.
pub fn would_create_cycle(mailboxes: &Mailboxes, mailbox_id: u64, parent_id: u64) -> bool {
    parent_id == mailbox_id || ancestors(mailboxes, parent_id).contains(&mailbox_id)
}

/// The children of every Mailbox that has some.
pub fn children(mailboxes: &Mailboxes) -> HashMap<u64, Vec<u64>> {
    let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
    for (&mailbox_id, mailbox) in mailboxes {
        if let Some(parent_id) = mailbox.parent_id {
            children.entry(parent_id).or_default().push(mailbox_id);
        }
    }
    children
}

/// How many levels the subtree rooted at `mailbox_id` spans (1 for a leaf).
pub fn subtree_height(mailboxes: &Mailboxes, mailbox_id: u64) -> usize {
    let children = children(mailboxes);
    let mut height = 0;
    let mut level = vec![mailbox_id];
    let mut seen = HashSet::new();
    while !level.is_empty() && height <= mailboxes.len() {
        height += 1;
        level = level
            .iter()
            .flat_map(|id| children.get(id).into_iter().flatten().copied())
            .filter(|id| seen.insert(*id))
            .collect();
    }
    height
}

/// RFC 8621 §2.3 `sortAsTree`: orders `selected` so that every Mailbox comes after its
/// ancestors, and Mailboxes that are not related are ordered as their nearest ancestors with
/// a common parent are. `rank` is each Mailbox's position when all of them are sorted by the
/// query's comparators (ancestors may be outside `selected`, so every Mailbox has a rank).
pub fn sort_as_tree(mailboxes: &Mailboxes, rank: &HashMap<u64, usize>, selected: &mut [u64]) {
    // The path from the root, as ranks: comparing two paths compares, at the first level where
    // they differ, two Mailboxes with the same parent; a path that is a prefix of another (an
    // ancestor) comes first.
    let path = |mailbox_id: u64| -> Vec<usize> {
        ancestors(mailboxes, mailbox_id)
            .into_iter()
            .rev()
            .chain(std::iter::once(mailbox_id))
            .map(|id| rank.get(&id).copied().unwrap_or(usize::MAX))
            .collect()
    };
    let paths: HashMap<u64, Vec<usize>> = selected.iter().map(|&id| (id, path(id))).collect();
    selected.sort_by(|a, b| paths[a].cmp(&paths[b]));
}

/// RFC 8621 §2.3 `filterAsTree`: keeps a matching Mailbox only if all its ancestors match too.
pub fn filter_as_tree(mailboxes: &Mailboxes, matching: &[u64]) -> Vec<u64> {
    let matched: HashSet<u64> = matching.iter().copied().collect();
    matching
        .iter()
        .copied()
        .filter(|&mailbox_id| {
            ancestors(mailboxes, mailbox_id)
                .iter()
                .all(|ancestor| matched.contains(ancestor))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: &str, parent_id: Option<u64>) -> Mailbox {
        Mailbox {
            name: name.to_owned(),
            parent_id,
            role: None,
            sort_order: 0,
            is_subscribed: true,
            share_with: Default::default(),
            unsubscribed: Default::default(),
        }
    }

    /// 1 ─ 2 ─ 3, and 4 at the top.
    fn sample() -> Mailboxes {
        Mailboxes::from([
            (1, mailbox("a", None)),
            (2, mailbox("b", Some(1))),
            (3, mailbox("c", Some(2))),
            (4, mailbox("d", None)),
        ])
    }

    #[test]
    fn ancestry_depth_and_cycles() {
        let mailboxes = sample();
        assert_eq!(ancestors(&mailboxes, 3), vec![2, 1]);
        assert_eq!(depth_under(&mailboxes, None), 1);
        assert_eq!(depth_under(&mailboxes, Some(3)), 4);
        assert!(would_create_cycle(&mailboxes, 1, 3));
        assert!(would_create_cycle(&mailboxes, 2, 2));
        assert!(!would_create_cycle(&mailboxes, 3, 4));
        assert_eq!(subtree_height(&mailboxes, 1), 3);
        assert_eq!(subtree_height(&mailboxes, 4), 1);
    }

    #[test]
    fn a_stored_cycle_does_not_hang() {
        let mut mailboxes = sample();
        mailboxes.insert(1, mailbox("a", Some(3)));
        assert_eq!(ancestors(&mailboxes, 3).len(), 2);
        assert!(subtree_height(&mailboxes, 1) <= mailboxes.len() + 1);
    }

    #[test]
    fn tree_sort_puts_ancestors_first_and_orders_siblings_by_rank() {
        let mailboxes = sample();
        // Comparator order: d, c, b, a (reverse by name).
        let rank = HashMap::from([(4, 0), (3, 1), (2, 2), (1, 3)]);
        let mut selected = vec![4, 3, 2, 1];
        sort_as_tree(&mailboxes, &rank, &mut selected);
        assert_eq!(selected, vec![4, 1, 2, 3]);
    }

    #[test]
    fn tree_filter_drops_mailboxes_whose_ancestor_does_not_match() {
        let mailboxes = sample();
        assert_eq!(filter_as_tree(&mailboxes, &[1, 3, 4]), vec![1, 4]);
        assert_eq!(filter_as_tree(&mailboxes, &[1, 2, 3]), vec![1, 2, 3]);
    }
}
