//! A small bounded map from text (a GraphQL document, a bearer token) to
//! what consentry worked out from it, so work that depends only on the text
//! is done once. Keys longer than the cache's limit are never kept; when
//! the cache is full it starts over, which costs one recomputation per
//! entry and needs no bookkeeping on the hot path.

use std::collections::HashMap;
use std::sync::Mutex;

/// See the module documentation.
#[derive(Debug)]
pub struct TextCache<V> {
    entries: Mutex<HashMap<String, V>>,
    max_entries: usize,
    max_key_bytes: usize,
}

impl<V: Clone> TextCache<V> {
    /// Holds at most `max_entries` values under keys of at most
    /// `max_key_bytes` bytes.
    pub fn new(max_entries: usize, max_key_bytes: usize) -> Self {
        TextCache {
            entries: Mutex::default(),
            max_entries,
            max_key_bytes,
        }
    }

    fn keeps(&self, key: &str) -> bool {
        key.len() <= self.max_key_bytes
    }

    /// The value kept under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.keeps(key) {
            return None;
        }
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Keeps `value` under `key` (unless the key is too long).
    pub fn insert(&self, key: &str, value: V) {
        if !self.keeps(key) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max_entries {
                entries.clear();
            }
            entries.insert(key.to_owned(), value);
        }
    }

    /// Forgets the value under `key`.
    pub fn remove(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_starts_over() {
        let cache = TextCache::new(2, 16);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c"), Some(3));
    }

    #[test]
    fn a_long_key_is_not_kept() {
        let cache = TextCache::new(2, 3);
        cache.insert("abcd", 1);
        assert_eq!(cache.get("abcd"), None);
        cache.insert("abc", 1);
        assert_eq!(cache.get("abc"), Some(1));
    }
}
